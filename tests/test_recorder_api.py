"""The recorder's Python face: one meaning per public name, and nothing heavy imported early."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import recorder
import recorder.lm
import recorder.sandbox

# Modules a user imports names from; a public name must not mean something else in any of them.
USER_MODULES = (
    "recorder.batch",
    "recorder.engine",
    "recorder.lm",
    "recorder.lm.registry",
    "recorder.lm.scripted",
    "recorder.sandbox",
    "recorder.sandbox.scripted",
    "recorder.tasks",
)


def test_exported_members() -> None:
    pinned = (Path(__file__).parent / "golden" / "recorder_names.txt").read_text().split()
    assert recorder.__all__ == pinned
    assert sorted(dir(recorder)) == sorted(recorder.__all__)


def test_each_public_name_is_one_object_with_one_signature() -> None:
    for name in recorder.__all__:
        exported = getattr(recorder, name)
        home = importlib.import_module(recorder.HOMES[name])
        assert exported is getattr(home, name), f"recorder.{name} is not {home.__name__}.{name}"
        for module_name in USER_MODULES:
            other = getattr(importlib.import_module(module_name), name, exported)
            assert other is exported, f"{module_name}.{name} is another object than recorder.{name}"
    assert recorder.run_rlm is importlib.import_module("recorder.engine").run_rlm
    assert "options" in inspect.signature(recorder.record).parameters
    for package in (recorder.lm, recorder.sandbox):
        for name in package.__all__:
            value = getattr(package, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                home = importlib.import_module(value.__module__)
                assert getattr(home, name) is value, f"{package.__name__}.{name}"


def test_run_rlm_with_lm_objects_never_imports_a_provider_sdk(tmp_path: Path) -> None:
    context = tmp_path / "ctx.txt"
    context.write_text("one\ntwo\n")
    script = textwrap.dedent(
        """
        import json, sys
        import recorder
        loaded_by_import = sorted(m for m in sys.modules if m.startswith("recorder."))
        from recorder import EngineOptions, ScriptedLM, ScriptedSandbox, cell_result, run_rlm

        box = ScriptedSandbox(["2\\n", cell_result(submit=2)])
        lm = ScriptedLM(["```python\\nprint(2)\\n```", "```python\\nSUBMIT(2)\\n```"])
        trace = run_rlm("lines?", sys.argv[1], lm=lm, options=EngineOptions(sandbox_factory=box.factory))
        from recorder.lm.registry import make_lm
        make_lm("sim")  # the simulator needs no SDK either
        print(json.dumps({
            "status": trace.run.status, "answer": trace.run.final_answer,
            "after_import": loaded_by_import,
            "sdks": sorted(m for m in ("openai", "litellm", "httpx") if m in sys.modules),
        }))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(context)], capture_output=True, text=True, timeout=120, check=True
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert (seen["status"], seen["answer"]) == ("submitted", "2")
    assert seen["after_import"] == []  # `import recorder` loads none of its modules
    assert seen["sdks"] == [], f"imported without need: {seen['sdks']}"
