"""The ``incident-logs`` family: a day of multi-service server logs with planted incidents.

Each entry: ``2024-03-14T09:12:33.123Z ERROR payment-gateway [req=7f3a9c2e] <message>``,
sometimes followed by an indented stack trace. Two kinds of question:

* ``window`` — which service caused the most *customer-facing* failures in a time
  window. A culprit service has a burst of customer-facing errors in the window;
  a second service has even more (internal, background) errors in the window, and a
  third a larger customer-facing burst outside it. Counting ERROR lines, or
  forgetting the window, gives the wrong service: the effect text must be judged.
* ``root_cause`` — the most common root-cause category of one service's errors.
  That service's errors are dominated by one category while the rest of the log
  is dominated by another, and causes are phrased without their category's name.

Timestamps run over one day in proportion to the bytes written, so every size
spans the whole day. Answers are counted while writing; when the planted margin
is too thin (only possible for tiny logs) the log is redrawn with the next
attempt seed, deterministically.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from rlmine.errors import RlmineRuntimeError, UserError

from .base import Family, ProgressFn, require_param
from .log_data import (
    CATEGORIES,
    CAUSES,
    CUSTOMER_EFFECTS,
    DEBUG_MESSAGES,
    INFO_MESSAGES,
    INTERNAL_EFFECTS,
    JOINERS,
    PATHS,
    SERVICES,
    WARN_MESSAGES,
)
from .streaming import BATCH_LINES, ChunkWriter, fit_lines, make_rng

__all__ = ["IncidentLogsFamily"]

DAY_MS = 86_400_000
_MAX_ATTEMPTS = 8
# Flattened cause table: index -> (category index, template).
_CAUSE_LIST = [(ci, t) for ci, c in enumerate(CATEGORIES) for t in CAUSES[c]]
_CAUSE_START = np.cumsum([0] + [len(CAUSES[c]) for c in CATEGORIES])


def _minutes(hhmm: str) -> int:
    try:
        hours, minutes = (int(x) for x in hhmm.split(":"))
    except ValueError:
        raise UserError(f"incident-logs: cannot read the time {hhmm!r}", "a time like 09:30") from None
    return hours * 60 + minutes


@dataclass(frozen=True, slots=True)
class _Plan:
    """Who does what when: traffic and error probabilities per (segment, service)."""

    window_ms: tuple[int, int]  # the question's window (segment 1)
    burst_ms: tuple[int, int]  # the decoy burst outside it (segment 2)
    traffic: np.ndarray  # (3, n_services) cumulative service distribution per segment
    p_cf: np.ndarray  # (3, n_services) probability of a customer-facing error
    p_internal: np.ndarray  # (3, n_services)
    cause_cum: np.ndarray  # (n_services, n_categories) cumulative cause distribution


class IncidentLogsFamily(Family):
    name = "incident-logs"
    description = "A day of multi-service server logs; find the service behind an incident, or a root cause."
    checker = "exact"
    context_suffix = ".log"
    questions: ClassVar[Mapping[str, str]] = {
        "window": (
            "Which service caused the most customer-facing failures between {start} and {end} UTC on "
            "{date} (start inclusive, end exclusive)? A customer-facing failure is an ERROR entry about "
            "a request of a customer or user that failed; failures of background or internal jobs do "
            "not count. Answer with the service name only."
        ),
        "root_cause": (
            "What is the most common root-cause category of the ERROR entries logged by the service "
            "{service}? Answer with exactly one of: " + ", ".join(CATEGORIES) + "."
        ),
    }
    default_kind = "window"

    def make_instance_params(self, rng: random.Random) -> dict[str, Any]:
        date = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        if rng.random() < 0.5:
            start = rng.randint(4, 68) * 15  # 01:00 .. 17:00
            end = start + rng.choice([90, 120, 150, 180, 240])
            return {
                "kind": "window",
                "date": date,
                "start": f"{start // 60:02d}:{start % 60:02d}",
                "end": f"{end // 60:02d}:{end % 60:02d}",
            }
        return {"kind": "root_cause", "date": date, "service": rng.choice(SERVICES)}

    def write_context(
        self,
        path: Path,
        *,
        params: Mapping[str, Any],
        seed: int,
        size_bytes: int,
        on_progress: ProgressFn | None = None,
    ) -> dict[str, Any]:
        kind = str(params.get("kind", self.default_kind))
        require_param(self.name, params, "date", str)
        if kind == "window":
            start = _minutes(require_param(self.name, params, "start", str))
            end = _minutes(require_param(self.name, params, "end", str))
            if not 0 <= start < end <= 24 * 60:
                raise UserError(
                    f"incident-logs: bad window {start}..{end} minutes", "start < end within a day"
                )
        elif kind == "root_cause":
            if require_param(self.name, params, "service", str) not in SERVICES:
                raise UserError(f"incident-logs: unknown service {params['service']!r}", ", ".join(SERVICES))
        else:
            self.question_for(params)  # raises the unknown-kind error
        for attempt in range(_MAX_ATTEMPTS):
            result = _write_once(path, params, seed, attempt, size_bytes, on_progress)
            if result is not None:
                return result
        raise RlmineRuntimeError(
            f"incident-logs: no clear answer after {_MAX_ATTEMPTS} attempts at {size_bytes} bytes",
            "a larger size or another seed",
        )


def _make_plan(rng: np.random.Generator, params: Mapping[str, Any]) -> _Plan:
    n = len(SERVICES)
    base_traffic = rng.uniform(0.6, 1.4, size=n)
    traffic = np.tile(base_traffic, (3, 1))
    p_cf = np.full((3, n), 0.004)
    p_int = np.full((3, n), 0.012)
    causes = rng.dirichlet(np.ones(len(CATEGORIES)) * 2.0, size=n)
    window = burst = (-1, -1)
    if params.get("kind", "window") == "window":
        start, end = _minutes(params["start"]) * 60_000, _minutes(params["end"]) * 60_000
        window = (start, end)
        culprit, busy, decoy = (int(i) for i in rng.permutation(n)[:3])
        gap = 30 * 60_000
        room_after, room_before = DAY_MS - end - gap, start - gap
        length = max(0, min(2 * (end - start), max(room_after, room_before)))
        if room_after >= room_before:
            burst = (end + gap, end + gap + length)
        else:
            burst = (start - gap - length, start - gap)
        traffic[1, culprit] *= 3
        p_cf[1, culprit] = 0.35
        traffic[1, busy] *= 3
        p_int[1, busy] = 0.5
        traffic[2, decoy] *= 3
        p_cf[2, decoy] = 0.45
    else:
        # The service's errors are dominated by one category, the rest of the log by
        # another, and the rest of the log has more errors in all: forgetting the
        # service filter gives the other category.
        target = SERVICES.index(params["service"])
        dominant, elsewhere = (int(i) for i in rng.permutation(len(CATEGORIES))[:2])
        causes[:, elsewhere] += 2.0
        causes[:, dominant] *= 0.2
        causes[target] = 0.5 / (len(CATEGORIES) - 1)
        causes[target, dominant] = 0.5
        p_cf *= 2
        p_int *= 2
        traffic[:, target] *= 1.5  # loud enough to have errors even in a 100KB log
        p_cf[:, target] *= 3
        p_int[:, target] *= 3
    causes /= causes.sum(axis=1, keepdims=True)
    cum_traffic = np.cumsum(traffic / traffic.sum(axis=1, keepdims=True), axis=1)
    return _Plan(window, burst, cum_traffic, p_cf, p_int, np.cumsum(causes, axis=1))


def _write_once(
    path: Path,
    params: Mapping[str, Any],
    seed: int,
    attempt: int,
    size_bytes: int,
    on_progress: ProgressFn | None,
) -> dict[str, Any] | None:
    rng = make_rng("incident-logs", seed, attempt)
    plan = _make_plan(rng, params)
    pools = _Pools.make(rng)
    n_serv, n_cat = len(SERVICES), len(CATEGORIES)
    cf_in_window = np.zeros(n_serv, dtype=np.int64)
    errors_in_window = np.zeros(n_serv, dtype=np.int64)
    cf_all_day = np.zeros(n_serv, dtype=np.int64)
    causes_by_service = np.zeros((n_serv, n_cat), dtype=np.int64)
    clock, avg_len, entries = 0.0, 130.0, 0
    date = str(params["date"])
    with open(path, "wb") as fh, ChunkWriter(fh, on_progress=on_progress) as out:
        while out.bytes_written < size_bytes:
            room = size_bytes - out.bytes_written
            n = min(BATCH_LINES, room // 60 + 16)
            step = 0.98 * DAY_MS * avg_len / size_bytes  # end just before midnight
            times = np.minimum(clock + np.cumsum(rng.exponential(step, size=n)), DAY_MS - 1)
            batch = _draw_batch(rng, plan, times)
            lines = _format_batch(rng, pools, date, times, batch)
            keep = fit_lines(lines, room)
            out.write_lines(lines[:keep])
            avg_len = 0.8 * avg_len + 0.2 * (sum(len(x) + 1 for x in lines[:keep]) / keep)
            clock = float(times[keep - 1])
            entries += keep
            serv, level, cat = batch["service"][:keep], batch["level"][:keep], batch["category"][:keep]
            t = times[:keep]
            in_win = (t >= plan.window_ms[0]) & (t < plan.window_ms[1])
            cf_in_window += np.bincount(serv[in_win & (level == 4)], minlength=n_serv)
            errors_in_window += np.bincount(serv[in_win & (level >= 3)], minlength=n_serv)
            cf_all_day += np.bincount(serv[level == 4], minlength=n_serv)
            err = level >= 3
            np.add.at(causes_by_service, (serv[err], cat[err]), 1)
        total = out.bytes_written
    stats: dict[str, Any] = {"bytes": total, "entries": entries, "attempt": attempt}
    if params.get("kind", "window") == "window":
        answer, ok = _clear_winner(cf_in_window, SERVICES)
        stats |= {
            "customer_facing_in_window": dict(zip(SERVICES, cf_in_window.tolist(), strict=True)),
            "errors_in_window": dict(zip(SERVICES, errors_in_window.tolist(), strict=True)),
            "customer_facing_all_day": dict(zip(SERVICES, cf_all_day.tolist(), strict=True)),
        }
    else:
        row = causes_by_service[SERVICES.index(params["service"])]
        answer, ok = _clear_winner(row, CATEGORIES)
        stats |= {"causes": dict(zip(CATEGORIES, row.tolist(), strict=True))}
    return {"expected": answer, "stats": stats} if ok else None


def _clear_winner(counts: np.ndarray, names: tuple[str, ...]) -> tuple[str, bool]:
    """The top name, and whether it leads the runner-up by max(2, 10%)."""
    order = np.argsort(-counts, kind="stable")
    first, second = int(counts[order[0]]), int(counts[order[1]])
    return names[int(order[0])], first - second >= max(2, int(0.1 * first))


def _draw_batch(rng: np.random.Generator, plan: _Plan, times: np.ndarray) -> dict[str, np.ndarray]:
    """Service, level (0 debug, 1 info, 2 warn, 3 internal error, 4 customer-facing error), cause."""
    n = len(times)
    seg = np.zeros(n, dtype=np.int64)
    seg[(times >= plan.window_ms[0]) & (times < plan.window_ms[1])] = 1
    seg[(times >= plan.burst_ms[0]) & (times < plan.burst_ms[1])] = 2
    service = (rng.random(n)[:, None] > plan.traffic[seg]).sum(axis=1)
    service = np.minimum(service, len(SERVICES) - 1)
    p_cf, p_int = plan.p_cf[seg, service], plan.p_internal[seg, service]
    u = rng.random(n)
    level = np.select(
        [u < p_cf, u < p_cf + p_int, u < p_cf + p_int + 0.07, u < p_cf + p_int + 0.19],
        [4, 3, 2, 0],
        default=1,
    )
    category = (rng.random(n)[:, None] > plan.cause_cum[service]).sum(axis=1)
    category = np.minimum(category, len(CATEGORIES) - 1)
    return {"service": service, "level": level, "category": category}


_LEVEL_NAMES = ("DEBUG", "INFO ", "WARN ", "ERROR", "ERROR")
_CLOCK = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY_MS // 1000)]
_JOIN_PARTS = [tuple(j.replace("{effect}", "").split("{cause}")) for j in JOINERS]
_POOL_VARIANTS = 24


def _render_pool(rng: np.random.Generator, templates: tuple[str, ...]) -> list[str]:
    """Every template rendered with a few random slot fillings (formatting once, not per line)."""
    out = []
    for template in templates:
        for _ in range(_POOL_VARIANTS):
            n, ms, a, cid, oid, path, dep = rng.integers(1, 1 << 30, size=7).tolist()
            out.append(
                template.format(
                    n=n % 998 + 1,
                    ms=ms % 9000 + 5,
                    a=a % 5 + 1,
                    cid=f"c{cid % 999983:06d}",
                    oid=f"o{oid % 9999991:07d}",
                    path=PATHS[path % len(PATHS)],
                    dep=SERVICES[dep % len(SERVICES)],
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class _Pools:
    """Pre-rendered message variants drawn per line by index."""

    plain: tuple[list[str], list[str], list[str]]  # debug, info, warn
    effects: tuple[list[str], list[str]]  # internal, customer-facing
    causes: tuple[list[str], ...]  # per category

    @staticmethod
    def make(rng: np.random.Generator) -> _Pools:
        return _Pools(
            plain=(
                _render_pool(rng, DEBUG_MESSAGES),
                _render_pool(rng, INFO_MESSAGES),
                _render_pool(rng, WARN_MESSAGES),
            ),
            effects=(_render_pool(rng, INTERNAL_EFFECTS), _render_pool(rng, CUSTOMER_EFFECTS)),
            causes=tuple(_render_pool(rng, CAUSES[c]) for c in CATEGORIES),
        )


def _format_batch(
    rng: np.random.Generator, pools: _Pools, date: str, times: np.ndarray, batch: dict[str, np.ndarray]
) -> list[str]:
    n = len(times)
    ms = times.astype(np.int64).tolist()
    service, level, category = (batch[k].tolist() for k in ("service", "level", "category"))
    pick = rng.integers(0, 1 << 30, size=(3, n)).tolist()
    rid = rng.integers(0, 1 << 32, size=n).tolist()
    stack = (rng.random(n) < 0.2).tolist()
    plain, effects, causes = pools.plain, pools.effects, pools.causes
    out = []
    for i in range(n):
        lv, p, t = level[i], pick[0][i], ms[i]
        if lv >= 3:
            eff = effects[lv - 3]
            cause = causes[category[i]]
            sep, end = _JOIN_PARTS[pick[2][i] % 3]
            msg = eff[p % len(eff)] + sep + cause[pick[1][i] % len(cause)] + end
        else:
            table = plain[lv]
            msg = table[p % len(table)]
        svc = SERVICES[service[i]]
        line = f"{date}T{_CLOCK[t // 1000]}.{t % 1000:03d}Z {_LEVEL_NAMES[lv]} {svc} [req={rid[i]:08x}] {msg}"
        if lv >= 3 and stack[i]:
            line += (
                f"\n    at com.acme.{svc.replace('-', '')}.Handler.handle(Handler.java:{p % 400 + 10})"
                f"\n    at com.acme.core.Dispatcher.run(Dispatcher.java:{rid[i] % 200 + 20})"
            )
        out.append(line)
    return out
