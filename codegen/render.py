"""Render an agent script from its programs with Jinja2 (the template is layout only).

Every decision — which programs, their order, the default LLM mode, whether replay
answers are embedded or go to a side-car file — is made here; the template only lays
the values out. Values enter the script as Python literals (``repr``/``pformat``),
so the rendered file is deterministic for the same inputs.
"""

from __future__ import annotations

import hashlib
import json
import pprint
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import jinja2

from codegen.cascade import runtime_source
from codegen.params import QuestionShape
from codegen.program import program_source

MAX_EMBEDDED_REPLAY_CHARS = 2_000_000  # above this the replay answers go to a side-car JSON file


@dataclass(frozen=True, slots=True)
class ProgramSpec:
    shape: QuestionShape
    statements: tuple[str, ...]
    source_runs: tuple[str, ...]
    uses_llm: bool


@dataclass(frozen=True)
class AgentSpec:
    title: str
    task: str | None
    programs: tuple[ProgramSpec, ...]
    default_question: str
    default_model: str
    replay: dict[str, str]  # prompt → response, from the source runs' sub-calls
    tactic_sequence: tuple[str, ...] = ()
    validation: dict[str, Any] = field(default_factory=dict)
    version: str = "0"
    date: str = ""
    filename: str = "agent.py"
    item_models: dict[str, dict[str, Any]] = field(default_factory=dict)  # codegen.distill's, by question

    @property
    def source_runs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r for p in self.programs for r in p.source_runs))


@dataclass(frozen=True, slots=True)
class RenderedAgent:
    script: str
    sidecar_name: str | None  # file name the script reads replay answers from, next to itself
    sidecar: str | None  # its JSON text


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("codegen", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML
    )


def _provenance(spec: AgentSpec) -> list[str]:
    lines = [f"task: {spec.task or '(none: built from one run)'}"]
    lines.append(f"source runs ({len(spec.source_runs)}): " + ", ".join(spec.source_runs))
    lines.append("tactic sequence: " + (" → ".join(spec.tactic_sequence) or "(the miner has not run)"))
    for index, program in enumerate(spec.programs):
        lines.append(f"shape {index}: {program.shape.template[:160]}")
    if spec.item_models:
        lines.append(
            f"distilled item models ({len(spec.item_models)}), answering confident items without the LLM: "
            + "; ".join(
                f"{q[:60]!r} (threshold {m['threshold']:.3f})" for q, m in sorted(spec.item_models.items())
            )
        )
    if spec.validation:
        lines.append("validation: " + ", ".join(f"{k}={v}" for k, v in sorted(spec.validation.items())))
    lines.append(f"rlmine version: {spec.version}; generated: {spec.date}")
    return lines


def _docstring_safe(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')


def _literal(value: Any) -> str:
    return pprint.pformat(value, width=100, sort_dicts=True)


def _json_literal(value: Any) -> str:
    """A Python string literal holding ``value`` as JSON (sorted keys: deterministic)."""
    return repr(json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")))


def render_agent(spec: AgentSpec) -> RenderedAgent:
    """The script text (and side-car replay file, when the answers are large)."""
    programs = []
    for index, program in enumerate(spec.programs):
        runs = ", ".join(program.source_runs[:4]) + (" …" if len(program.source_runs) > 4 else "")
        programs.append(
            {
                "comment": f"shape {index}: from run(s) {runs}",
                "source": program_source(f"solve_{index}", program.statements).rstrip("\n"),
            }
        )
    replay = {
        hashlib.sha256(p.encode("utf-8", "surrogatepass")).hexdigest(): r for p, r in spec.replay.items()
    }
    replay = dict(sorted(replay.items()))
    size = sum(len(v) + 70 for v in replay.values())
    sidecar_name = sidecar = None
    if size > MAX_EMBEDDED_REPLAY_CHARS:
        stem = spec.filename[:-3] if spec.filename.endswith(".py") else spec.filename
        sidecar_name = f"{stem}.replay.json"
        sidecar = json.dumps(replay, ensure_ascii=False, indent=0, sort_keys=True) + "\n"
        embedded: dict[str, str] = {}
    else:
        embedded = replay
    uses_llm = any(p.uses_llm for p in spec.programs)
    script = (
        _environment()
        .get_template("agent.py.j2")
        .render(
            title=_docstring_safe(spec.title),
            version=spec.version,
            date=spec.date,
            filename=spec.filename,
            provenance=[_docstring_safe(line) for line in _provenance(spec)],
            default_question=repr(spec.default_question),
            default_model=repr(spec.default_model),
            llm_default=repr("live" if uses_llm else "off"),
            replay_file=repr(sidecar_name),
            programs=programs,
            shapes=_literal([p.shape.to_dict() for p in spec.programs]),
            program_table="[" + ", ".join(f"solve_{i}" for i in range(len(programs))) + "]",
            replay=_json_literal(embedded),
            cascade_runtime=runtime_source().rstrip("\n"),
            item_models=_json_literal(spec.item_models),
            has_item_models=bool(spec.item_models),
        )
    )
    return RenderedAgent(script, sidecar_name, sidecar)


def check_script(script: str, name: str = "agent.py") -> None:
    """Raise SyntaxError when ``script`` is not valid Python (a hand edit gone wrong)."""
    compile(script, name, "exec")


def program_sources(programs: Sequence[ProgramSpec]) -> list[str]:
    return [program_source(f"solve_{i}", p.statements) for i, p in enumerate(programs)]
