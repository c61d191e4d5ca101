"""The fallback strategy for questions of no known family: read the head, ask the sub-LLM.

A real model facing an unfamiliar task does about this; the simulator uses it
so that any task still gets a plausible, runnable trace.
"""

from __future__ import annotations

import json
from typing import Any

from ..cell import Cell, Stmt
from ..plan import Plan, Turn
from ..style import Style
from .common import Strategy, Writer, submit_stmt

__all__ = ["STRATEGIES"]


def ask_head(p: dict[str, Any], st: Style) -> Plan:
    w = Writer(st, ("answer", "instr", "sample"), question=json.dumps(p["question"]))
    explore = [
        w.show("type and size", "(type(context).__name__, len(context))", "measure"),
        Stmt("print(str(context)[:1000])", "peek", essential=False),
    ]
    ask = [
        w.s("$sample = str(context)[:60000]", "sample"),
        w.s("$instr = $question", "map_llm"),
        w.s(
            '$answer = llm_query("Answer the question from the text below.\\nQuestion: " + $instr + "\\n\\n" + $sample)',
            "map_llm",
        ),
        w.show("sub-LLM answer", "$answer[:300]", "peek"),
    ]
    turns = (
        Turn("I do not recognise this kind of task. Let me look at the data.", Cell.of(explore)),
        Turn("I will ask the sub-LLM to answer from the beginning of the context.", Cell.of(ask)),
        Turn("Submitting what the sub-LLM said.", Cell.of([submit_stmt(w)])),
    )
    return Plan("generic", "ask_head", False, turns, (w["answer"],), '""')


STRATEGIES: tuple[Strategy, ...] = (Strategy("ask_head", False, ask_head, "ask the sub-LLM about the head"),)
