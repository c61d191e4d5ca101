"""The generated agent script: golden text, replay reproduces the run, off fails cleanly, bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from codegen.build_run import BuildError, build_from_run
from codegen.render import AgentSpec, ProgramSpec, render_agent
from rlmine.store import Store, get_agent
from rlmine.trace import Iteration, LLMCall, Run, Trace

GOLDEN = Path(__file__).parent / "golden" / "agent_small.py.txt"
LOG = "".join(
    f"2025-01-0{1 + i % 3} {'ERROR' if i % 4 == 0 else 'INFO'} svc{i % 2} message {i}\n" for i in range(40)
)
QUESTION = "Which service logged the most ERROR lines, according to the classifier?"
PROMPT = "Classify these services: svc0,svc0,svc0,svc0,svc0,svc0,svc0,svc0,svc0,svc0"


def _trace(run_id: str = "01RUNAAAAAAAAAAAAAAAAAAAAA") -> Trace:
    cells = [
        ("Look first.", "print(context[:100])\nprint(len(context))", None),
        (
            "Collect the error services and ask the sub-LM.",
            "rows = [l.split() for l in context.splitlines()]\n"
            "errs = [r[2] for r in rows if r[1] == 'ERROR']\n"
            "verdict = llm_query('Classify these services: ' + ','.join(errs))\nprint(verdict)",
            None,
        ),
        ("Answer.", "SUBMIT(verdict.strip())", None),
    ]
    its = tuple(
        Iteration(run_id=run_id, index=i, reasoning=r, code=c, error=e, submitted=i == 2)
        for i, (r, c, e) in enumerate(cells)
    )
    call = LLMCall(
        id="01CALLAAAAAAAAAAAAAAAAAAAA", run_id=run_id, iteration=1, role="sub", model="sim-sub",
        prompt=PROMPT, response=" svc0 \n", tokens_in=20, tokens_out=2,
    )  # fmt: skip
    run = Run(
        id=run_id, engine="rlmine", status="submitted", question=QUESTION, final_answer="svc0",
        root_model="sim", sub_model="sim-sub",
    )  # fmt: skip
    return Trace(run=run, iterations=its, calls=(call,)).with_totals()


@pytest.fixture
def built(tmp_path: Path) -> tuple[Store, Path, str]:
    store = Store.open(tmp_path / "t.duckdb", create=True)
    store.save_traces([_trace()])
    context = tmp_path / "log.txt"
    context.write_text(LOG)
    return store, context, "01RUNAAAAAAAAAAAAAAAAAAAAA"


def _run(script: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the script with no site-packages (-S): it may use the standard library only."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    cmd = [sys.executable, "-I", "-S", str(script), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)


def test_rendered_script_matches_the_golden_file() -> None:
    from codegen.candidates import run_program
    from rlmine.store import ReplCell

    trace = _trace()
    cells = [
        ReplCell(trace.run.id, it.index, 0, it.code or "", False, None, it.reasoning or "")
        for it in trace.iterations
    ]
    program = run_program(trace.run.id, cells, QUESTION, {})
    spec = AgentSpec(
        title="Agent built from run 01RUNAAAAAAAAAAAAAAAAAAAAA",
        task=None,
        programs=(ProgramSpec(program.params.shape, program.statements, (trace.run.id,), program.uses_llm),),
        default_question=QUESTION,
        default_model="sim-sub",
        replay={PROMPT: " svc0 \n"},
        version="0.0-test",
        date="2026-01-01",
        item_models={
            "is each service below failing?": {
                "labels": ["no", "yes"], "intercept": [-0.5], "ngrams": 1, "threshold": 0.9,
                "terms": {"error": [1.4, 3.2], "svc": [1.0, 0.1]},
            }
        },
    )  # fmt: skip
    script = render_agent(spec).script
    if os.environ.get("RLMINE_UPDATE_GOLDEN"):
        GOLDEN.write_text(script)
    assert script == GOLDEN.read_text()


def test_replay_reproduces_the_run_and_off_fails_cleanly(
    built: tuple[Store, Path, str], tmp_path: Path
) -> None:
    store, context, run_id = built
    result = build_from_run(store, run_id, context)
    assert result.agent_id is not None and result.rendered is not None
    script = tmp_path / "agent.py"
    script.write_text(result.rendered.script)
    audit = tmp_path / "audit.jsonl"
    done = _run(script, "--context", str(context), "--llm", "replay", "--json", "--llm-audit", str(audit))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["answer"] == "svc0" and report["llm_calls"] == 1
    assert json.loads(audit.read_text())["prompt"] == PROMPT
    off = _run(script, "--context", str(context), "--llm", "off")
    assert off.returncode == 3 and off.stdout == ""
    assert off.stderr.startswith("Error: ") and len(off.stderr.strip().splitlines()) == 1
    # A context of the same shape with other data: its prompt was never recorded, replay says so.
    other = tmp_path / "other.txt"
    other.write_text(LOG.replace("svc0", "svc7"))
    miss = _run(script, "--context", str(other), "--llm", "replay")
    assert miss.returncode == 3 and "no recorded answer" in miss.stderr
    with store.reader() as con:
        stored = get_agent(con, result.agent_id)
    assert stored["script"] == result.rendered.script and stored["source_runs"] == [run_id]


def test_script_passes_ruff_and_py_compile(built: tuple[Store, Path, str], tmp_path: Path) -> None:
    store, context, run_id = built
    rendered = build_from_run(store, run_id, context).rendered
    assert rendered is not None
    script = tmp_path / "agent.py"
    script.write_text(rendered.script)
    subprocess.run([sys.executable, "-m", "py_compile", str(script)], check=True)
    root = Path(__file__).resolve().parents[1]
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(root / "pyproject.toml"), str(script)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout


def test_bad_inputs_each_give_one_line(built: tuple[Store, Path, str], tmp_path: Path) -> None:
    store, context, run_id = built
    script = tmp_path / "agent.py"
    rendered = build_from_run(store, run_id, context).rendered
    assert rendered is not None
    script.write_text(rendered.script)
    missing = _run(script, "--context", str(tmp_path / "nope.txt"), "--llm", "replay")
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "no context at" in missing.stderr
    live = _run(script, "--context", str(context), "--llm", "live")
    assert live.returncode == 2 and "needs an endpoint" in live.stderr and live.stderr.count("\n") == 1
    with pytest.raises(BuildError, match="no agent built"):
        # the recorded answer differs from what the code computes: nothing is emitted
        with store.writer() as con:
            con.execute("UPDATE runs SET final_answer = 'svc1' WHERE id = ?", [run_id])
        build_from_run(store, run_id, context)


def test_set_iteration_order_is_the_same_on_every_run(tmp_path: Path) -> None:
    from codegen.params import question_shape

    spec = AgentSpec(
        title="order",
        task=None,
        programs=(
            ProgramSpec(
                question_shape("any", {}).shape,
                ("words = {w for w in context.split()}", "SUBMIT(','.join(words))"),
                ("r",),
                False,
            ),
        ),
        default_question="any",
        default_model="m",
        replay={},
    )
    script = tmp_path / "agent.py"
    script.write_text(render_agent(spec).script)
    context = tmp_path / "words.txt"
    context.write_text(" ".join(f"word{i}" for i in range(50)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHASHSEED", "PYTHONPATH")}
    outs = {
        subprocess.run(
            [sys.executable, str(script), "--context", str(context), "--llm", "off"],
            capture_output=True, text=True, env=env, check=True,
        ).stdout
        for _ in range(4)
    }  # fmt: skip
    assert len(outs) == 1 and outs.pop().count(",") == 49


class _FixedLM:
    """Answers every prompt with the recorded verdict (the test's stand-in for a provider)."""

    model = "fixed"

    def complete(self, messages: object, **_: object) -> object:
        from recorder.lm.base import LMResponse

        return LMResponse(text=" svc0 \n", model=self.model, tokens_in=20, tokens_out=2)


def test_live_mode_retries_a_server_error_and_reports_usage(
    built: tuple[Store, Path, str], tmp_path: Path
) -> None:
    import urllib.request

    from recorder.lm.server import FaultConfig, SimServer

    store, context, run_id = built
    rendered = build_from_run(store, run_id, context).rendered
    assert rendered is not None
    script = tmp_path / "agent.py"
    script.write_text(rendered.script)
    with SimServer(lambda _m: _FixedLM(), faults=FaultConfig(error_500_every=2)) as server:  # type: ignore[arg-type,return-value]
        body = json.dumps({"model": "fixed", "messages": [{"role": "user", "content": "warm-up"}]}).encode()
        request = urllib.request.Request(
            f"{server.base_url}/chat/completions", body, {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(
            request, timeout=10
        ) as answer:  # request 1: the agent's first is 2, a 500
            assert answer.status == 200
        audit = tmp_path / "audit.jsonl"
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        done = subprocess.run(
            [sys.executable, str(script), "--context", str(context), "--llm", "live", "--api-base", server.base_url,
             "--model", "fixed", "--json", "--llm-audit", str(audit)],
            capture_output=True, text=True, env=env, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert server.request_count == 3  # warm-up, the 500, the retry
    report = json.loads(done.stdout)
    assert report == {**report, "answer": "svc0", "llm_calls": 1, "tokens_in": 20, "tokens_out": 2}
    assert json.loads(audit.read_text())["mode"] == "live"
