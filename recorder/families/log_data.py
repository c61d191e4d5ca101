"""Phrase tables of the incident-logs family: services, messages, error effects and causes.

An ERROR message is an *effect* (what failed: a customer's request, or a
background job nobody sees) joined to a *cause* (one of the root-cause
categories), each with many phrasings. Few phrasings name their category, and
some name another one's keyword ("connection" in a database error), so keyword
rules misclassify; the simulator's oracle matches the templates exactly.
Slots: {n} a number, {a} an attempt (1-5), {ms} milliseconds, {cid} a customer id, {oid} an order id,
{path} an API path, {dep} a service name.
"""

from __future__ import annotations

__all__ = [
    "CATEGORIES",
    "CAUSES",
    "CUSTOMER_EFFECTS",
    "DEBUG_MESSAGES",
    "INFO_MESSAGES",
    "INTERNAL_EFFECTS",
    "JOINERS",
    "PATHS",
    "SERVICES",
    "WARN_MESSAGES",
]

SERVICES: tuple[str, ...] = (
    "checkout-api",
    "payment-gateway",
    "auth-service",
    "search-api",
    "inventory-svc",
    "notification-worker",
    "media-transcoder",
    "billing-batch",
)
PATHS: tuple[str, ...] = ("cart", "orders", "checkout", "products", "search", "invoices", "profile", "login")

CATEGORIES: tuple[str, ...] = (
    "database",
    "network",
    "authentication",
    "memory",
    "disk",
    "configuration",
    "third-party",
    "rate-limit",
)

CAUSES: dict[str, tuple[str, ...]] = {
    "database": (
        "could not acquire DB connection after {ms}ms",
        "deadlock detected on table orders",
        "SQLSTATE 40001 serialization failure, transaction rolled back",
        "replica lag exceeded {n}s so the query was rejected",
        "too many connections for role app_rw",
        "query cancelled by statement_timeout in postgres",
    ),
    "network": (
        "connection reset by peer",
        "no route to host 10.0.{n}.{ms}",
        "DNS resolution failed for {dep}.internal",
        "socket hang up while reading response",
        "broken pipe during TLS handshake",
        "packet loss to availability zone b above threshold",
    ),
    "authentication": (
        "JWT signature verification failed",
        "token expired and refresh was rejected",
        "OAuth provider returned invalid_grant",
        "service account credentials were revoked",
        "identity provider answered 401 Unauthorized",
        "session key not found in keystore",
    ),
    "memory": (
        "worker killed by the OOM killer",
        "java.lang.OutOfMemoryError: Java heap space",
        "GC overhead limit exceeded",
        "allocation of {n}MB failed",
        "container exceeded its memory limit and was restarted",
        "heap usage at 99 percent, request dropped",
    ),
    "disk": (
        "No space left on device",
        "write to /var/data failed with ENOSPC",
        "volume /mnt/cache is 100 percent full",
        "inode quota exhausted on /srv",
        "fsync failed on a read-only file system",
        "tmp quota exceeded while spooling upload",
    ),
    "configuration": (
        "missing required setting PAYMENT_API_URL",
        "feature flag schema invalid after deploy",
        "unknown key retries_max in service.yaml",
        "environment variable DB_HOST is empty",
        "invalid value -1 for max_pool_size",
        "bad route table after rollout of release {n}",
    ),
    "third-party": (
        "upstream vendor API returned 502 Bad Gateway",
        "Stripe API responded 500 Internal Server Error",
        "shipping partner endpoint unavailable",
        "geocoding provider returned an internal error",
        "SMS gateway sent a malformed response",
        "external fraud-check service is down",
    ),
    "rate-limit": (
        "429 Too Many Requests from {dep}",
        "throttled by the API gateway at 100 rps",
        "request budget exhausted for tenant {n}",
        "rate limiter rejected the call",
        "exceeded calls per minute allowance",
        "upstream asked us to back off for {n}s",
    ),
}

CUSTOMER_EFFECTS: tuple[str, ...] = (
    "Checkout failed for customer {cid}",
    "Returned HTTP 503 to client for GET /api/v1/{path}",
    "Order {oid} could not be placed and the user saw an error page",
    "Payment for order {oid} failed and the customer was shown an error",
    "Login request from user {cid} failed with status 500",
    "Search request aborted, shopper got an empty results page",
    "Request POST /api/v1/{path} failed, responded 502 to the caller",
    "Customer {cid} could not download their invoice",
    "Session for user {cid} dropped mid-checkout",
    "Cart update for shopper {cid} rejected with status 500",
    "Unable to serve the product page to a visitor",
    "Mobile app call for account {cid} failed with an error response",
)

INTERNAL_EFFECTS: tuple[str, ...] = (
    "Nightly reindex job aborted",
    "Cache warm-up task failed",
    "Metrics flush to collector failed",
    "Background thumbnail generation for batch {n} failed",
    "Scheduled report export failed",
    "Retry queue consumer crashed and will restart",
    "Internal health probe failed",
    "Log shipping to archive stalled",
    "Periodic token cleanup task failed",
    "Replica sync worker stopped",
    "Batch settlement job for ledger {n} aborted",
    "Housekeeping sweep of temp files failed",
)

JOINERS: tuple[str, ...] = ("{effect}: {cause}", "{effect} ({cause})", "{effect}; cause: {cause}")

INFO_MESSAGES: tuple[str, ...] = (
    "GET /api/v1/{path} 200 in {ms}ms",
    "POST /api/v1/{path} 201 in {ms}ms",
    "cache hit ratio 0.{n}",
    "processed {n} events from queue",
    "user session refreshed for customer {cid}",
    "health check ok",
    "scheduled job finished in {ms}ms",
    "config reloaded with no changes",
    "connected to upstream {dep}",
    "order {oid} confirmed",
)
DEBUG_MESSAGES: tuple[str, ...] = (
    "query plan cached for key {oid}",
    "payload size {n} bytes",
    "feature flag new_checkout evaluated for customer {cid}",
    "opened span for /api/v1/{path}",
)
WARN_MESSAGES: tuple[str, ...] = (
    "slow query took {ms}ms",
    "retrying call to {dep} (attempt {a}/5)",
    "connection pool at {n} percent capacity",
    "deprecated endpoint /api/v0/{path} called",
    "request to {dep} took {ms}ms, above SLO",
    "customer {cid} retried payment after a timeout",
    "token for customer {cid} close to expiry",
)
