"""Reading an rlms ``RLMLogger`` log: validated, compacted entries, split into runs.

Facts about the format (from the rlms source, ``rlm/logger/rlm_logger.py`` and
``rlm/core/types.py``): a log is JSON lines; ``{"type": "metadata", ...}`` with
the run configuration comes first, optionally ``{"type": "run_context", ...}``
(the context payload and the ``root_prompt``), then one ``{"type":
"iteration", ...}`` per turn with the full message list sent (``prompt``), the
reply (``response``), the executed ``code_blocks`` (each with ``stdout``,
``stderr``, the REPL ``locals``, ``execution_time``, the sub-LM ``rlm_calls``
and, from 0.1.2 on, a ``final_answer``), the iteration's ``final_answer`` and
``iteration_time``.

Entries are compacted as soon as they are read (into named tuples: immutable,
and three times cheaper to build than frozen dataclasses, which counts at
thousands of runs a second) so a long log never sits in memory whole: ``locals`` (which can hold the context twice, megabytes) shrink
to names, types and sizes; the message list shrinks to its newest message, its
length and its total size; a sub-call's nested child trajectory becomes a
:class:`RunLog` of its own. Validation failures raise :class:`EntryError`,
which :func:`read_runs` turns into a one-line error naming the file and line.

One file normally holds one run. A logger reused for several completions
appends several runs to one file (writing its ``metadata`` once); a new run
starts at a ``metadata`` or ``run_context`` entry after iterations, when the
iteration counter goes back, or after a final answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from recorder.importers.base import loads_line
from recorder.importers.sniff import found, hint_for
from recorder.importers.sources import LineReader, SourceError
from rlmine.ids import sha256_text

ENTRY_TYPES = ("metadata", "run_context", "iteration")
# A lone user message longer than this is more likely the context than the question.
MAX_PLAIN_QUESTION = 20_000


class EntryError(ValueError):
    """An entry that does not have the shape of an rlms log entry."""


# A fenced block: the opening fence and its info string, then everything up to the first closing
# fence (or the end). Written as runs of non-backticks rather than a lazy ``.*?``: the same
# matches, five times faster (it runs over every reply).
_FENCE = re.compile(r"```[^\n`]*\n[^`]*(?:`(?!``)[^`]*)*(?:```|\Z)")
_FINAL_VAR = re.compile(r"^\s*FINAL_VAR\(", re.MULTILINE)
_FINAL = re.compile(r"^\s*FINAL\(", re.MULTILINE)
_EXCEPTION_LINE = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Timeout))\b(?::.*)?$")
_CALLABLE_REPR = re.compile(
    r"^<(module|function|builtin_function_or_method|method|type|class|[\w.]+)( '[^']*')?>$"
)
_ANSWER_FOLLOWING = re.compile(r"Answer the following:\s*(.+)", re.DOTALL)
_ROOT_PROMPT = re.compile(r'original prompt: "(.*)"\.(?:\s*\n|\s*$)', re.DOTALL)
_CONTEXT_META = re.compile(r"Your context is an? (\w+) with (\d+) total characters")


def text_of(value: Any) -> str | None:
    """A prompt or response as text: strings as they are, structures as JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _opt_float(value: Any) -> float | None:
    # A tuple, not ``int | float``: isinstance with a union is several times slower (per timing).
    return float(value) if isinstance(value, (int, float)) and value.__class__ is not bool else None


def summarize_value(value: Any) -> dict[str, Any]:
    """A REPL variable's type and size, never its value."""
    if isinstance(value, str):
        match = _CALLABLE_REPR.match(value) if value.startswith("<") and len(value) < 300 else None
        if match:
            return {"type": match.group(1)}
        return {"type": "str", "len": len(value)}
    if isinstance(value, list | dict):
        return {"type": type(value).__name__, "len": len(value)}
    return {"type": "NoneType" if value is None else type(value).__name__}


def _summaries(local_vars: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, value in local_vars.items():
        # Inline for the common cases (plain strings, lists; 5 variables a turn), as
        # summarize_value does them.
        cls = value.__class__
        if cls is str and not value.startswith("<"):
            out[str(name)] = {"type": "str", "len": len(value)}
        elif cls is list:
            out[str(name)] = {"type": "list", "len": len(value)}
        else:
            out[str(name)] = summarize_value(value)
    return out


class ContextInfo(NamedTuple):
    """What the log reveals about the run's context (never the context itself)."""

    kind: str | None = None
    chars: int | None = None
    sha256: str | None = None
    bytes: int | None = None

    def merge(self, other: ContextInfo) -> ContextInfo:
        return ContextInfo(
            kind=self.kind or other.kind,
            chars=self.chars if self.chars is not None else other.chars,
            sha256=self.sha256 or other.sha256,
            bytes=self.bytes if self.bytes is not None else other.bytes,
        )


NO_CONTEXT = ContextInfo()  # shared: most entries reveal nothing, and merging it changes nothing


def context_from_payload(payload: Any) -> ContextInfo:
    """Hash and size of a context value found in the log (a ``run_context`` payload or ``locals``)."""
    if isinstance(payload, str):
        return ContextInfo(
            "str", len(payload), sha256_text(payload), len(payload.encode("utf-8", "surrogatepass"))
        )
    if isinstance(payload, list | dict):
        return ContextInfo(type(payload).__name__)
    return NO_CONTEXT


class SubCall(NamedTuple):
    model: str | None
    prompt: str | None
    response: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost: float | None
    latency_s: float | None
    error: str | None
    extra: dict[str, Any]
    child: RunLog | None  # a nested child RLM (its trajectory was in the call's metadata)


class Block(NamedTuple):
    code: str
    stdout: str  # byte for byte as logged
    stderr: str
    execution_time: float | None
    locals: dict[str, dict[str, Any]]
    calls: tuple[SubCall, ...]
    final_answer: str | None
    error: str | None  # the exception line rlms appended to stderr, if the block raised


class IterationEntry(NamedTuple):
    number: int | None  # the logger's 1-based counter
    line: int | None
    logged_at: str | None
    prompt_last: str | None
    prompt_messages: int
    prompt_chars: int
    response: str
    blocks: tuple[Block, ...]
    final_answer: str | None  # the iteration's own (FINAL / FINAL_VAR, rlms <= 0.1.1)
    answer: str | None  # the final answer, wherever it landed (iteration or code block)
    iteration_time: float | None
    usage: tuple[int | None, int | None]
    question: str | None = None  # found in this entry's user messages
    context: ContextInfo = NO_CONTEXT
    system_sha256: str | None = None

    @property
    def final_style(self) -> str | None:
        if self.final_answer is None and self.answer is not None:
            return "answer"  # 0.1.2+: an `answer` set inside a code block
        if self.answer is None:
            return None
        if _FINAL_VAR.search(self.response):
            return "FINAL_VAR"
        return "FINAL" if _FINAL.search(self.response) else "final_answer"


def usage_totals(summary: Any) -> tuple[int | None, int | None, float | None]:
    """Tokens in/out and cost from an rlms ``usage_summary``; None where nothing is reported."""
    if not isinstance(summary, dict):
        return None, None, None
    if "model_usage_summaries" not in summary:  # a flat provider usage dict
        flat_in = summary.get("input_tokens", summary.get("prompt_tokens"))
        flat_out = summary.get("output_tokens", summary.get("completion_tokens"))
        return (
            flat_in if isinstance(flat_in, int) else None,
            flat_out if isinstance(flat_out, int) else None,
            _opt_float(summary.get("cost")),
        )
    models = summary.get("model_usage_summaries")
    tin: int | None = None
    tout: int | None = None
    costs: float | None = None  # summed in the log's order: float sums depend on it
    if isinstance(models, dict):
        for usage in models.values():
            if not isinstance(usage, dict):
                continue
            value = usage.get("total_input_tokens")
            if isinstance(value, int):
                tin = value if tin is None else tin + value
            value = usage.get("total_output_tokens")
            if isinstance(value, int):
                tout = value if tout is None else tout + value
            cost = _opt_float(usage.get("total_cost"))
            if cost is not None:
                costs = cost if costs is None else costs + cost
    total_cost = _opt_float(summary.get("total_cost"))
    return tin, tout, total_cost if total_cost is not None else costs


def _sub_call(raw: Any, line: int | None) -> SubCall:
    if not isinstance(raw, dict):
        raise EntryError(f"an rlm_calls item is {type(raw).__name__}, not an object")
    tin, tout, cost = usage_totals(raw.get("usage_summary"))
    meta = raw.get("metadata")
    trajectory = meta if isinstance(meta, dict) and isinstance(meta.get("iterations"), list) else None
    extra: dict[str, Any] = {}
    for key in ("error_type", "status_code"):
        if raw.get(key) is not None:
            extra[key] = raw[key]
    if isinstance(meta, dict) and trajectory is None:
        extra["metadata"] = meta
    model = raw.get("root_model")
    prompt, response, error = raw.get("prompt"), raw.get("response"), raw.get("error")
    # Positional, in field order (keywords cost a third more; this runs for every sub-call).
    return SubCall(
        model if isinstance(model, str) else None,
        prompt if prompt is None or prompt.__class__ is str else text_of(prompt),
        response if response is None or response.__class__ is str else text_of(response),
        tin,
        tout,
        cost,
        _opt_float(raw.get("execution_time")),
        error if error is None or error.__class__ is str else text_of(error),
        extra,
        run_log_from_trajectory(trajectory, line) if trajectory is not None else None,
    )


def _block(raw: Any, line: int | None, want_context: bool) -> tuple[Block, ContextInfo]:
    if not isinstance(raw, dict):
        raise EntryError(f"a code_blocks item is {type(raw).__name__}, not an object")
    code = raw.get("code")
    if not isinstance(code, str):
        raise EntryError('a code block has no "code" text')
    result = raw.get("result") or {}
    if not isinstance(result, dict):
        raise EntryError('a code block\'s "result" is not an object')
    local_vars = result.get("locals") or {}
    if not isinstance(local_vars, dict):
        raise EntryError('a code block\'s "locals" is not an object')
    context = NO_CONTEXT
    if want_context:
        for name in ("context", "context_0"):
            if name in local_vars:
                context = context_from_payload(local_vars[name])
                break
    calls = result.get("rlm_calls") or []
    if not isinstance(calls, list):
        raise EntryError('a code block\'s "rlm_calls" is not a list')
    answer = result.get("final_answer")
    if isinstance(answer, dict) and "content" in answer:
        answer = answer["content"]
    stderr = str(result.get("stderr") or "")
    return Block(
        code=code,
        stdout=str(result.get("stdout") or ""),
        stderr=stderr,
        error=exception_in(stderr),
        execution_time=_opt_float(result.get("execution_time")),
        locals=_summaries(local_vars),
        calls=tuple([_sub_call(c, line) for c in calls]),
        final_answer=text_of(answer),
    ), context


def _messages(prompt: Any) -> list[Any]:
    if isinstance(prompt, str | dict):
        return [prompt]
    return prompt if isinstance(prompt, list) else []


def _role_content(msg: Any) -> tuple[str, str]:
    if isinstance(msg, dict):
        content = msg.get("content")
        return str(msg.get("role", "user")), content if isinstance(content, str) else (text_of(content) or "")
    return "user", msg if isinstance(msg, str) else (text_of(msg) or "")


def _total_chars(msgs: list[Any]) -> int:
    total = 0
    for msg in msgs:  # a loop, not sum(map(...)): rlms logs repeat the whole conversation every turn
        content = msg.get("content") if msg.__class__ is dict else msg
        total += len(content) if content.__class__ is str else len(text_of(content) or "")
    return total


def question_in(text: str) -> str | None:
    for pattern in (_ANSWER_FOLLOWING, _ROOT_PROMPT):
        match = pattern.search(text)
        if match and match.group(1).strip():
            return match.group(1).strip()
    return None


def iteration_entry(
    raw: dict[str, Any], line: int | None, *, first: bool, want_context: bool
) -> IterationEntry:
    """Validate and compact one ``iteration`` entry.

    ``first``: read the question and context description from its messages;
    ``want_context``: hash the context if ``locals`` holds it (once per run: it is big).
    """
    response = raw.get("response")
    if response is not None and not isinstance(response, str):
        response = text_of(response)
    blocks_raw = raw.get("code_blocks") or []
    if not isinstance(blocks_raw, list):
        raise EntryError('"code_blocks" is not a list')
    context = NO_CONTEXT
    blocks = []
    for item in blocks_raw:
        block, found = _block(item, line, want_context and context.sha256 is None)
        if found is not NO_CONTEXT:
            context = context.merge(found)
        blocks.append(block)
    msgs = _messages(raw.get("prompt"))
    question = None
    system_sha = None
    if first:
        users: list[str] = []
        for role, content in map(_role_content, msgs):
            if role == "system" and system_sha is None:
                system_sha = sha256_text(content)
            if role != "user":
                continue
            users.append(content)
            question = question or question_in(content)
            meta = _CONTEXT_META.search(content)
            if meta:
                context = context.merge(ContextInfo(kind=meta.group(1), chars=int(meta.group(2))))
        if question is None and len(users) == 1 and 0 < len(users[0].strip()) <= MAX_PLAIN_QUESTION:
            question = users[0].strip()  # no rlms wording around it: the one user message is the question
    number = raw.get("iteration")
    usage = raw.get("usage_summary") or raw.get("usage")
    tin, tout, _ = usage_totals(usage) if isinstance(usage, dict) else (None, None, None)
    final = text_of(raw.get("final_answer"))
    answer = (
        final
        if final is not None
        else next((b.final_answer for b in blocks if b.final_answer is not None), None)
    )
    return IterationEntry(
        number=number if isinstance(number, int) and not isinstance(number, bool) else None,
        line=line,
        logged_at=raw.get("timestamp") if isinstance(raw.get("timestamp"), str) else None,
        prompt_last=_role_content(msgs[-1])[1] if msgs else None,
        prompt_messages=len(msgs),
        prompt_chars=_total_chars(msgs),
        response=response or "",
        blocks=tuple(blocks),
        final_answer=final,
        answer=answer,
        iteration_time=_opt_float(raw.get("iteration_time")),
        usage=(tin, tout),
        question=question,
        context=context,
        system_sha256=system_sha,
    )


def reasoning_of(response: str) -> str | None:
    """The reply without its fenced code blocks (those are the iteration's code)."""
    text = _FENCE.sub("", response).strip()
    return text or None


def exception_in(stderr: str) -> str | None:
    """The exception line rlms appends to stderr when a block raised (``\\nKeyError: 'x'``)."""
    if not stderr:
        return None
    for line in reversed(stderr.strip().splitlines()):
        if _EXCEPTION_LINE.match(line.strip()):
            return line.strip()
    return None


# ---------------------------------------------------------------------------- runs


@dataclass(slots=True)
class RunLog:
    """The compacted entries of one run, as read from a log or a nested trajectory."""

    metadata: dict[str, Any] = field(default_factory=dict)
    metadata_time: str | None = None
    own_metadata: bool = False  # the metadata entry was written for this run (its time is the start)
    root_prompt: str | None = None
    context: ContextInfo = NO_CONTEXT
    iterations: list[IterationEntry] = field(default_factory=list)
    first_line: int | None = None
    last_line: int | None = None
    # The run's identity, which a log still being written keeps as it grows: the sha256 of its
    # lines up to and including its first iteration (a metadata line alone is not enough: runs
    # started with one configuration at once can share it word for word).
    anchor: str | None = None

    def add(self, raw: dict[str, Any], line: int | None) -> None:
        entry = iteration_entry(
            raw, line, first=not self.iterations, want_context=self.context.sha256 is None
        )
        if entry.context is not NO_CONTEXT:
            self.context = self.context.merge(entry.context)
        self.iterations.append(entry)
        self.last_line = line

    def starts_new_run(self, raw: dict[str, Any]) -> bool:
        if not self.iterations:
            return False
        last = self.iterations[-1]
        number = raw.get("iteration")
        went_back = isinstance(number, int) and last.number is not None and number <= last.number
        return went_back or last.answer is not None


def _chain(anchor: str | None, raw: bytes) -> str:
    """``anchor`` extended by one line (the line's own bytes, without its line ending)."""
    digest = hashlib.sha256((anchor or "").encode())
    digest.update(raw.rstrip(b"\r\n"))
    return digest.hexdigest()


def read_runs(path: Path, reader: LineReader) -> list[RunLog]:
    """Split a log into runs, compacting each entry as it is read."""
    runs: list[RunLog] = []
    current = RunLog()
    for number, raw_line in reader:
        entry = loads_line(path, number, raw_line)
        kind = entry.get("type") if isinstance(entry, dict) else None
        if kind not in ENTRY_TYPES:
            shown = 'no "type"' if kind is None else f"type {kind!r}"
            raise SourceError(
                path,
                f"not an rlms log entry: found {found(entry)} ({shown}; an rlms entry has a type of "
                f"{', '.join(ENTRY_TYPES)})",
                line=number,
                hint=hint_for(entry, "rlms"),
            )
        if current.first_line is None:
            current.first_line = number
        fresh = kind != "iteration" and bool(current.iterations)
        if fresh or (kind == "iteration" and current.starts_new_run(entry)):
            runs.append(current)
            current = RunLog(
                metadata=current.metadata,
                metadata_time=current.metadata_time,
                first_line=number,
            )
        if not current.iterations:  # up to and including the run's first iteration
            current.anchor = _chain(current.anchor, raw_line)
        try:
            if kind == "metadata":
                current.metadata = {k: v for k, v in entry.items() if k not in ("type", "timestamp")}
                current.metadata_time = (
                    entry.get("timestamp") if isinstance(entry.get("timestamp"), str) else None
                )
                current.own_metadata = True
            elif kind == "run_context":
                root = entry.get("root_prompt")
                current.root_prompt = root if isinstance(root, str) and root.strip() else current.root_prompt
                current.context = current.context.merge(context_from_payload(entry.get("prompt")))
            else:
                current.add(entry, number)
        except EntryError as exc:
            raise SourceError(path, f"malformed {kind} entry: {exc}", line=number) from exc
        current.last_line = number
    runs.append(current)
    return runs


def run_log_from_trajectory(trajectory: dict[str, Any], line: int | None) -> RunLog:
    """A nested child RLM's trajectory (``{"run_metadata", "iterations"}``) as a run log."""
    meta = trajectory.get("run_metadata")
    log = RunLog(metadata=dict(meta) if isinstance(meta, dict) else {}, first_line=line, last_line=line)
    for raw in trajectory.get("iterations") or []:
        if not isinstance(raw, dict):
            raise EntryError("a nested trajectory iteration is not an object")
        try:
            log.add(raw, line)
        except EntryError as exc:
            raise EntryError(f"in a nested trajectory: {exc}") from exc
    return log
