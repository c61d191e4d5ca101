"""rlmine's interchange format: one self-contained JSON object per run, as JSON lines.

``docs/trace-format.md`` documents the format and ``docs/trace-format.schema.json``
is its JSON Schema. Every line carries ``"format": "rlmine-trace"``,
``"version": 2`` and a ``kind``:

* ``run`` — a top-level run: ``run`` (the ``runs`` columns, the context as a
  nested ``context`` object), ``iterations`` (each with its code ``blocks``),
  ``calls``, ``labels``, nested
  ``children`` (same shape, recursively), and the catalogue rows the run hangs
  off — ``task``, ``instance``, ``batch`` — so that a single line is enough to
  recreate it anywhere;
* ``task`` — a task with all its ``instances`` (also those no run used);
* ``batch`` — a batch.

Field names are the data model's (:mod:`rlmine.trace`), values are plain JSON
(timestamps as ISO-8601 text, JSON columns as nested JSON). Export then import
into a fresh database reproduces every row of every table. Importing keeps run
ids (so it is idempotent); tasks and batches are matched by name, and keep
their ids when the target has none by that id.

Version 2 added the iterations' ``blocks`` (the ``code_blocks`` table); a
version 1 file still imports (its iterations simply have no blocks).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from rlmine.store._export import prepare_out_dir
from rlmine.store._rows import block_from_row, call_from_row, iteration_from_row, label_from_row, run_from_row
from rlmine.store._schema import JSON_COLUMNS, SCHEMAS
from rlmine.trace import CodeBlock, Iteration, LLMCall, Run, StepLabel, Trace

FORMAT = "rlmine-trace"
VERSION = 2
KINDS = ("run", "task", "batch")
_CONTEXT_KEYS = ("path", "generator", "sha256", "bytes", "kind")


class RecordError(ValueError):
    """A record that does not follow the interchange format (the message names the field)."""


# ---------------------------------------------------------------------------- values → records


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _obj(value: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {f.name: _plain(getattr(value, f.name)) for f in fields(value) if f.name not in skip}


def _iteration_obj(it: Iteration) -> dict[str, Any]:
    obj = _obj(it, skip=("blocks",))
    # A block's run and iteration are its iteration's: not repeated.
    obj["blocks"] = [_obj(b, skip=("run_id", "iteration")) for b in it.blocks]
    return obj


def _body(trace: Trace) -> dict[str, Any]:
    run = _obj(trace.run, skip=("context",))
    run["context"] = _obj(trace.run.context)
    return {
        "run": run,
        "iterations": [_iteration_obj(i) for i in trace.iterations],
        "calls": [_obj(c) for c in trace.calls],
        "labels": [_obj(s) for s in trace.labels],
        "children": [_body(c) for c in trace.children],
    }


def record_from_trace(trace: Trace) -> dict[str, Any]:
    """A ``run`` record for a trace (without catalogue rows: see :func:`export_jsonl`)."""
    return {"format": FORMAT, "version": VERSION, "kind": "run", **_body(trace)}


# ---------------------------------------------------------------------------- records → values


def check_header(obj: Any) -> str:
    """The record's kind, after checking it is an rlmine record of a version this code reads."""
    if not isinstance(obj, dict):
        raise RecordError(f"a record must be a JSON object, got {type(obj).__name__}")
    if obj.get("format") != FORMAT:
        raise RecordError(
            f'not an rlmine trace record ("format" is {obj.get("format")!r}, expected {FORMAT!r})'
        )
    version = obj.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise RecordError(f'"version" must be a positive integer, got {version!r}')
    if version > VERSION:
        raise RecordError(
            f"written by a newer rlmine (format version {version}; this rlmine reads {VERSION})"
        )
    kind = obj.get("kind", "run")
    if kind not in KINDS:
        raise RecordError(f"unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
    return str(kind)


def _checked(value: Any, typ: pa.DataType, where: str, column: str) -> Any:
    if value is None:
        return None
    if column in JSON_COLUMNS:
        return value
    ok = (
        (pa.types.is_string(typ) and isinstance(value, str))
        or (pa.types.is_integer(typ) and isinstance(value, int) and not isinstance(value, bool))
        or (pa.types.is_floating(typ) and isinstance(value, int | float) and not isinstance(value, bool))
        or (pa.types.is_boolean(typ) and isinstance(value, bool))
        or (pa.types.is_timestamp(typ) and isinstance(value, str))
    )
    if not ok:
        raise RecordError(f"{where}.{column} has the wrong type ({type(value).__name__}: {value!r:.60})")
    if pa.types.is_timestamp(typ):
        try:
            datetime.fromisoformat(value)
        except ValueError as exc:
            raise RecordError(f"{where}.{column} is not an ISO-8601 timestamp: {value!r:.60}") from exc
    if pa.types.is_floating(typ):
        return float(value)
    return value


def _row(
    table: str,
    obj: Any,
    where: str,
    required: tuple[str, ...],
    renames: dict[str, str] | None = None,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise RecordError(f"{where} must be an object, got {type(obj).__name__}")
    src = dict(obj)
    for old, new in (renames or {}).items():
        if old in src:
            src[new] = src.pop(old)
    for key, value in (defaults or {}).items():
        if src.get(key) is None:
            src[key] = value
    row = {}
    for col in SCHEMAS[table]:
        if col.name in required and src.get(col.name) is None:
            raise RecordError(f"{where}.{_renames_back(col.name, renames)} is missing")
        row[col.name] = _checked(src.get(col.name), col.type, where, col.name)
    for key in ("params", "metadata", "context_generator"):
        if key in row and row[key] is not None and not isinstance(row[key], dict | list):
            raise RecordError(f"{where}.{key} must be a JSON object")
    return row


def _renames_back(column: str, renames: dict[str, str] | None) -> str:
    return next((old for old, new in (renames or {}).items() if new == column), column)


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key) or []
    if not isinstance(value, list):
        raise RecordError(f"{where}.{key} must be a list")
    return value


def _iteration_from_obj(obj: Any, where: str, rid: dict[str, Any]) -> Iteration:
    row = _row("iterations", obj, where, ("idx",), {"index": "idx"}, rid)
    blocks = tuple(
        block_from_row(
            _row(
                "code_blocks",
                b,
                f"{where}.blocks[{n}]",
                ("idx", "code", "ran"),
                {"index": "idx"},
                {**rid, "iteration": row["idx"]},
            )
        )
        for n, b in enumerate(_list(obj, "blocks", where))  # absent in version 1
    )
    return iteration_from_row(row, blocks)


def _trace_from_body(body: Any, where: str, parent: Run | None = None) -> Trace:
    if not isinstance(body, dict):
        raise RecordError(f"{where} must be an object")
    raw_run = body.get("run")
    if not isinstance(raw_run, dict):
        raise RecordError(f"{where}.run is missing")
    flat = {k: v for k, v in raw_run.items() if k != "context"}
    ctx = raw_run.get("context") or {}
    if not isinstance(ctx, dict):
        raise RecordError(f"{where}.run.context must be an object")
    flat.update({f"context_{k}": ctx.get(k) for k in _CONTEXT_KEYS})
    defaults = {"parent_run_id": parent.id} if parent else {}
    run = run_from_row(_row("runs", flat, f"{where}.run", ("id", "engine", "status"), defaults=defaults))
    rid = {"run_id": run.id}
    iterations = tuple(
        _iteration_from_obj(it, f"{where}.iterations[{n}]", rid)
        for n, it in enumerate(_list(body, "iterations", where))
    )
    calls = tuple(
        call_from_row(_row("llm_calls", c, f"{where}.calls[{n}]", ("id", "role"), defaults=rid))
        for n, c in enumerate(_list(body, "calls", where))
    )
    labels = tuple(
        label_from_row(
            _row(
                "step_labels",
                s,
                f"{where}.labels[{n}]",
                ("iteration", "line_start", "line_end", "tactic"),
                defaults=rid,
            )
        )
        for n, s in enumerate(_list(body, "labels", where))
    )
    children = tuple(
        _trace_from_body(c, f"{where}.children[{n}]", run)
        for n, c in enumerate(_list(body, "children", where))
    )
    return Trace(run=run, iterations=iterations, calls=calls, labels=labels, children=children)


def trace_from_record(obj: Any) -> Trace:
    """The trace in a ``run`` record; :class:`RecordError` names the first bad field."""
    kind = check_header(obj)
    if kind != "run":
        raise RecordError(f"a {kind} record holds no run")
    return _trace_from_body(obj, "record")


@dataclass(frozen=True, slots=True)
class Catalog:
    """The catalogue rows a record carries (plain dicts as in the record)."""

    task: dict[str, Any] | None = None
    instance: dict[str, Any] | None = None
    batch: dict[str, Any] | None = None
    instances: tuple[dict[str, Any], ...] = field(default_factory=tuple)


def _opt_obj(obj: dict[str, Any], key: str, need: str) -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get(need), str) or not value[need]:
        raise RecordError(f"record.{key} must be an object with a {need!r}")
    return value


def catalog_from_record(obj: dict[str, Any]) -> Catalog:
    instances = tuple(_list(obj, "instances", "record"))
    if not all(isinstance(i, dict) and isinstance(i.get("id"), str) for i in instances):
        raise RecordError('record.instances must be objects with an "id"')
    return Catalog(
        task=_opt_obj(obj, "task", "name"),
        instance=_opt_obj(obj, "instance", "id"),
        batch=_opt_obj(obj, "batch", "name"),
        instances=instances,
    )


# ---------------------------------------------------------------------------- reading the database


def _records(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    cur = con.execute(sql, list(params))
    names = [d[0] for d in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _task_obj(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "spec": _json(row["spec"]),
        "question": row["question"],
        "checker": row["checker"],
        "source_path": row["source_path"],
        "created_at": _plain(row["created_at"]),
    }


def _instance_obj(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "split": row["split"],
        "question": row["question"],
        "expected": _json(row["expected"]),
        "context": {
            "path": row["context_path"],
            "generator": _json(row["context_generator"]),
            "sha256": row["context_sha256"],
            "bytes": row["context_bytes"],
        },
        "metadata": _json(row["metadata"]),
    }


def _batch_obj(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "task_id": row["task_id"],
        "params": _json(row["params"]),
        "created_at": _plain(row["created_at"]),
    }


@dataclass(frozen=True, slots=True)
class CatalogRows:
    """Every task, instance and batch of a database, as record objects."""

    tasks: dict[str, dict[str, Any]]
    instances: dict[tuple[str, str], dict[str, Any]]
    batches: dict[str, dict[str, Any]]


def read_catalog(con: duckdb.DuckDBPyConnection) -> CatalogRows:
    return CatalogRows(
        tasks={r["id"]: _task_obj(r) for r in _records(con, "SELECT * FROM tasks ORDER BY name")},
        instances={
            (r["task_id"], r["id"]): _instance_obj(r)
            for r in _records(con, "SELECT * FROM instances ORDER BY task_id, id")
        },
        batches={r["id"]: _batch_obj(r) for r in _records(con, "SELECT * FROM batches ORDER BY name")},
    )


def read_task(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, Any] | None:
    """One task as a record object (``spec`` parsed), or None."""
    rows = _records(con, "SELECT * FROM tasks WHERE id = ?", [task_id])
    return _task_obj(rows[0]) if rows else None


def read_instances(con: duckdb.DuckDBPyConnection, task_id: str) -> dict[str, dict[str, Any]]:
    """A task's instances by id, as record objects (``expected`` parsed)."""
    return {
        r["id"]: _instance_obj(r)
        for r in _records(con, "SELECT * FROM instances WHERE task_id = ?", [task_id])
    }


def _in(con: duckdb.DuckDBPyConnection, sql: str, ids: list[str]) -> list[dict[str, Any]]:
    return _records(con, sql.replace("IN_IDS", "IN (SELECT unnest(?::VARCHAR[]))"), [ids])


@dataclass(frozen=True, slots=True)
class _Parts:
    """Rows of one chunk of runs, grouped by run id, to assemble traces from."""

    runs: dict[str, Run]
    iterations: dict[str, list[Iteration]]
    calls: dict[str, list[LLMCall]]
    labels: dict[str, list[StepLabel]]
    kids: dict[str, list[str]]

    def build(self, rid: str, path: frozenset[str]) -> Trace:
        children = tuple(self.build(c, path | {c}) for c in self.kids.get(rid, ()) if c not in path)
        return Trace(
            run=self.runs[rid],
            iterations=tuple(self.iterations[rid]),
            calls=tuple(self.calls[rid]),
            labels=tuple(self.labels[rid]),
            children=children,
        )


def iter_traces(
    con: duckdb.DuckDBPyConnection, *, task_id: str | None = None, chunk: int = 500, runs_only: bool = False
) -> Iterator[Trace]:
    """Top-level runs (with nested children) in id order, read ``chunk`` runs at a time.

    ``runs_only`` reads just the top-level runs' rows (no iterations, calls,
    labels or children): enough to re-score them.
    """
    tree = con.execute("SELECT id, parent_run_id, task_id FROM runs ORDER BY id").fetchall()
    known = {r[0] for r in tree}
    kids: dict[str, list[str]] = defaultdict(list)
    roots = []
    for rid, parent, task in tree:
        if parent is not None and parent in known and parent != rid:
            kids[parent].append(rid)
        elif task_id is None or task == task_id:
            roots.append(rid)
    for start in range(0, len(roots), chunk):
        part = roots[start : start + chunk]
        if runs_only:
            by_id = {r["id"]: run_from_row(r) for r in _in(con, "SELECT * FROM runs WHERE id IN_IDS", part)}
            yield from (Trace(run=by_id[rid]) for rid in part)
            continue
        members, todo, seen = [], list(part), set()
        while todo:
            rid = todo.pop()
            if rid not in seen:
                seen.add(rid)
                members.append(rid)
                todo.extend(kids.get(rid, ()))
        runs = {r["id"]: run_from_row(r) for r in _in(con, "SELECT * FROM runs WHERE id IN_IDS", members)}
        blocks: dict[tuple[str, int], list[CodeBlock]] = defaultdict(list)
        for r in _in(
            con, "SELECT * FROM code_blocks WHERE run_id IN_IDS ORDER BY run_id, iteration, idx", members
        ):
            blocks[(r["run_id"], int(r["iteration"]))].append(block_from_row(r))
        its: dict[str, list[Iteration]] = defaultdict(list)
        for r in _in(con, "SELECT * FROM iterations WHERE run_id IN_IDS ORDER BY run_id, idx", members):
            key = (r["run_id"], int(r["idx"]))
            its[r["run_id"]].append(iteration_from_row(r, tuple(blocks.get(key, ()))))
        calls: dict[str, list[LLMCall]] = defaultdict(list)
        for r in _in(
            con,
            "SELECT * FROM llm_calls WHERE run_id IN_IDS "
            "ORDER BY run_id, iteration NULLS FIRST, started_at, id",
            members,
        ):
            calls[r["run_id"]].append(call_from_row(r))
        labels: dict[str, list[StepLabel]] = defaultdict(list)
        for r in _in(
            con,
            "SELECT * FROM step_labels WHERE run_id IN_IDS ORDER BY run_id, iteration, line_start",
            members,
        ):
            labels[r["run_id"]].append(label_from_row(r))

        parts = _Parts(runs, its, calls, labels, kids)
        for rid in part:
            yield parts.build(rid, frozenset({rid}))


def export_jsonl(con: duckdb.DuckDBPyConnection, out_dir: Path) -> tuple[Path, int]:
    """Write ``out_dir/runs.jsonl``: task and batch records, then one record per top-level run."""
    prepare_out_dir(out_dir)
    cat = read_catalog(con)
    by_task: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (task_id, _), inst in cat.instances.items():
        by_task[task_id].append(inst)
    path = out_dir / "runs.jsonl"
    head = {"format": FORMAT, "version": VERSION}
    n_runs = 0
    with open(path, "w", encoding="utf-8") as out:

        def write(record: dict[str, Any]) -> None:
            out.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")

        for task_id, task in cat.tasks.items():
            write({**head, "kind": "task", "task": task, "instances": by_task.get(task_id, [])})
        for batch in cat.batches.values():
            write({**head, "kind": "batch", "batch": batch})
        for trace in iter_traces(con):
            run = trace.run
            record = record_from_trace(trace)
            record["task"] = cat.tasks.get(run.task_id) if run.task_id else None
            record["instance"] = (
                cat.instances.get((run.task_id, run.instance_id)) if run.task_id and run.instance_id else None
            )
            record["batch"] = cat.batches.get(run.batch_id) if run.batch_id else None
            write(record)
            n_runs += 1
    return path, n_runs


__all__ = [
    "FORMAT",
    "KINDS",
    "VERSION",
    "Catalog",
    "CatalogRows",
    "RecordError",
    "catalog_from_record",
    "check_header",
    "export_jsonl",
    "iter_traces",
    "read_catalog",
    "read_instances",
    "read_task",
    "record_from_trace",
    "trace_from_record",
]
