"""A loopback OpenAI-compatible HTTP server in front of any LM (the simulator, a test fake).

Why: tests and offline demos drive the *real* client path (the ``openai`` SDK, our
retry policy, response parsing) against a server whose behaviour we control.
Stdlib only (``http.server``), one thread per connection, HTTP/1.1 keep-alive.

- ``POST /v1/chat/completions``: the request's ``model`` picks the LM through
  ``lm_factory`` (called once per model name, then cached); ``temperature``,
  ``seed`` and ``max_tokens`` (or ``max_completion_tokens``) are forwarded.
  See :mod:`recorder.lm.wire` for the response, including ``rlmine_metadata``.
- ``GET /v1/models``: the advertised models plus those served so far.
- Faults (:class:`FaultConfig`) are chosen by the chat request counter, so they are
  deterministic: request N, 2N, 3N, … of a kind gets the fault.

It binds to loopback only unless ``allow_remote=True``: it has no authentication.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from recorder.lm.base import LM, Message
from recorder.lm.retry import one_line
from recorder.lm.wire import completion_body
from rlmine.errors import RlmineError, UserError

__all__ = ["FaultConfig", "SimServer"]

log = logging.getLogger(__name__)

_MALFORMED_BODY = b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{"message": {"cont'


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """Deterministic fault injection; each ``*_every`` is None (off) or N ≥ 1 (requests N, 2N, …)."""

    rate_limit_every: int | None = None  # → 429 with Retry-After: retry_after_s
    retry_after_s: float = 1.0
    error_500_every: int | None = None  # → 500
    malformed_every: int | None = None  # → 200 with a truncated JSON body
    slow_every: int | None = None  # → sleep slow_s, then answer normally
    slow_s: float = 1.0

    def __post_init__(self) -> None:
        for name in ("rate_limit_every", "error_500_every", "malformed_every", "slow_every"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise UserError(f"{name} must be >= 1, got {value}", f"--{name.replace('_', '-')} 3")
        if self.retry_after_s < 0 or self.slow_s < 0:
            raise UserError("fault delays must be >= 0", "--slow-s 2")

    def fault_for(self, request_number: int) -> str | None:
        """The fault for the 1-based chat request number, if any (first match wins)."""
        for fault, every in (
            ("rate_limit", self.rate_limit_every),
            ("error_500", self.error_500_every),
            ("malformed", self.malformed_every),
            ("slow", self.slow_every),
        ):
            if every is not None and request_number % every == 0:
                return fault
        return None


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _error(status: int, message: str, kind: str, code: str | None = None) -> _Reply:
    payload = {"error": {"message": one_line(message, 500), "type": kind, "param": None, "code": code}}
    return _Reply(status, json.dumps(payload).encode())


def _messages(raw: Any) -> list[Message]:
    if not isinstance(raw, list) or not raw:
        raise ValueError("'messages' must be a non-empty list")
    out = []
    for item in raw:
        if not isinstance(item, dict) or not isinstance(item.get("role"), str):
            raise ValueError("each message needs a string 'role'")
        content = item.get("content")
        if isinstance(content, list):  # content parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        if not isinstance(content, str):
            raise ValueError("each message needs 'content' as a string or a list of text parts")
        out.append(Message(item["role"], content))
    return out


def _optional(body: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
        raise ValueError(f"'{name}' has the wrong type")
    return value


class SimServer:
    """Serve ``lm_factory(model)`` over the OpenAI chat-completions wire format on loopback."""

    def __init__(
        self,
        lm_factory: Callable[[str], LM],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        faults: FaultConfig | None = None,
        models: Sequence[str] = (),
        allow_remote: bool = False,
    ) -> None:
        if not allow_remote and not _is_loopback_host(host):
            raise UserError(
                f"refusing to serve on non-loopback host {host!r} (no authentication)", "--host 127.0.0.1"
            )
        self._factory = lm_factory
        self._host, self._port = host, port
        self.faults = faults or FaultConfig()
        self._advertised = list(models)
        self._lock = threading.Lock()
        self._lms: dict[str, LM] = {}
        self._count = 0
        self._log: list[tuple[str, int]] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> str:
        """Bind, serve in a background thread, and return the base URL (``http://HOST:PORT/v1``)."""
        if self._httpd is not None:
            return self.base_url
        server_cls = _HTTPServer6 if ":" in self._host else _HTTPServer
        try:
            self._httpd = server_cls((self._host, self._port), _Handler)
        except OSError as exc:
            raise UserError(
                f"cannot listen on {self._host}:{self._port}: {exc.strerror}", "--port 0"
            ) from None
        self._httpd.owner = self
        self._stopping.clear()
        httpd = self._httpd  # a short poll interval makes stop() quick
        self._thread = threading.Thread(
            target=lambda: httpd.serve_forever(poll_interval=0.05), name="rlmine-sim-server", daemon=True
        )
        self._thread.start()
        log.info("simulator server listening at %s", self.base_url)
        return self.base_url

    def stop(self) -> None:
        """Stop serving, drop open connections (waking slow requests), and release the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> SimServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not started")
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._httpd.server_address[1]}/v1"

    # -- observations for tests --------------------------------------------------
    @property
    def request_count(self) -> int:
        """Chat-completion requests received so far (faulted ones included)."""
        with self._lock:
            return self._count

    @property
    def log(self) -> list[tuple[str, int]]:
        """(model, HTTP status) of each chat-completion request, in arrival order."""
        with self._lock:
            return list(self._log)

    # -- request handling (called from handler threads) ---------------------------
    def models_reply(self) -> _Reply:
        with self._lock:
            names = list(dict.fromkeys([*self._advertised, *self._lms]))
        data = [{"id": name, "object": "model", "created": 0, "owned_by": "rlmine"} for name in names]
        return _Reply(200, json.dumps({"object": "list", "data": data}).encode())

    def chat_reply(self, raw_body: bytes) -> _Reply:
        with self._lock:
            self._count += 1
            number = self._count
        model = "?"
        try:
            body = json.loads(raw_body or b"null")
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
            if isinstance(body.get("model"), str) and body["model"]:
                model = body["model"]
            reply = self._answer(number, model, body)
        except ValueError as exc:
            reply = _error(400, f"invalid request: {exc}", "invalid_request_error")
        with self._lock:
            self._log.append((model, reply.status))
        return reply

    def _answer(self, number: int, model: str, body: dict[str, Any]) -> _Reply:
        fault = self.faults.fault_for(number)
        if fault == "rate_limit":
            reply = _error(429, "rate limited (rlmine simulator server, injected fault)", "rate_limit_error")
            return _Reply(429, reply.body, (("Retry-After", f"{self.faults.retry_after_s:g}"),))
        if fault == "error_500":
            return _error(500, "internal error (rlmine simulator server, injected fault)", "server_error")
        if fault == "malformed":
            return _Reply(200, _MALFORMED_BODY)
        if fault == "slow":
            self._stopping.wait(self.faults.slow_s)
        if model == "?":
            raise ValueError("'model' must be a non-empty string")
        messages = _messages(body.get("messages"))
        temperature = _optional(body, "temperature", (int, float))
        seed = _optional(body, "seed", int)
        max_tokens = _optional(body, "max_tokens", int)
        if max_tokens is None:
            max_tokens = _optional(body, "max_completion_tokens", int)
        try:
            lm = self._lm_for(model)
        except RlmineError as exc:
            return _error(404, exc.one_line(), "invalid_request_error", "model_not_found")
        try:
            response = lm.complete(messages, temperature=temperature, seed=seed, max_tokens=max_tokens)
        except UserError as exc:
            return _error(400, exc.one_line(), "invalid_request_error")
        except RlmineError as exc:
            return _error(502, exc.one_line(), "upstream_error")
        except Exception as exc:  # a bug in the LM behind us: report it, keep serving
            log.exception("LM %s failed", model)
            return _error(500, f"{type(exc).__name__}: {exc}", "server_error")
        payload = completion_body(
            response, model=model, completion_id=f"chatcmpl-{number:08d}", created=int(time.time())
        )
        try:
            return _Reply(200, json.dumps(payload).encode())
        except (TypeError, ValueError) as exc:
            return _error(500, f"LM metadata is not JSON: {exc}", "server_error")

    def _lm_for(self, model: str) -> LM:
        with self._lock:
            lm = self._lms.get(model)
            if lm is None:
                lm = self._lms[model] = self._factory(model)
            return lm


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for a deliberately slow request
    owner: SimServer

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake handler threads blocked on idle keep-alive connections."""
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is dropped after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out as two writes; without this, Nagle + delayed ACK
        # add ~40 ms to every keep-alive request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        if self.path.rstrip("/") == "/v1/models":
            self._send(self.server.owner.models_reply())
        else:
            self._send(_error(404, f"no route for GET {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        if self.path.rstrip("/") == "/v1/chat/completions":
            self._send(self.server.owner.chat_reply(raw))
        else:
            self._send(_error(404, f"no route for POST {self.path}", "invalid_request_error"))

    def _send(self, reply: _Reply) -> None:
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. its timeout)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s " + format, self.address_string(), *args)
