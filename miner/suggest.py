"""Merge suggestions from a language model: which mined tactics serve one purpose (decision 0023).

The miner's tactics are code shapes. Several shapes often carry one intent: decision 0020
found "prepare the data" written as ``import re``, ``context.splitlines()`` and
``json.loads(reply[...])``, side by side in the same runs, and no code signal measured joins
them. A model that reads the tactics' examples can propose the join. It is shown every tactic
(id, name, size, example, a few other members) and replies with groups of ids. The groups
become ordinary merge edits (decision 0022), so the user reviews them before they are applied
and can take any one back with ``rlmine tactics unedit``.

Pure functions: the prompt, and the reading of the reply. ``miner.curate`` does the I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MAX_TACTICS", "merge_prompt", "parse_groups"]

MAX_TACTICS = 100  # the largest ones; a prompt stays well inside any current context window
_EXAMPLE_CHARS = 400
_MEMBERS = 2

_PROMPT = """Below are recurring steps ("tactics") mined from the Python code that language models wrote, \
over many runs, to answer questions about a long text held in the variable `context`. \
Each tactic is one code shape; several shapes can serve one purpose in the analysis.

Group the tactics that serve the same purpose, even when their code looks different. \
Leave a tactic out when it has no partner. Do not group tactics only because they use the same function.

Reply with JSON only: a list of groups, each a list of two or more tactic ids, for example \
[["T3", "T7"], ["T2", "T5", "T9"]].

{tactics}
"""


def _clip(code: str, limit: int = _EXAMPLE_CHARS) -> str:
    code = code.strip()
    return code if len(code) <= limit else code[:limit].rstrip() + "\n..."


def _members(raw: Any) -> list[str]:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return []
    return [str(m) for m in raw] if isinstance(raw, list) else []


def merge_prompt(tactics: Sequence[Mapping[str, Any]]) -> str:
    """The prompt for ``tactics`` (rows of ``rlmine.store.list_tactics``, largest first)."""
    blocks = []
    for t in tactics[:MAX_TACTICS]:
        example = str(t.get("example") or "")
        others = [m for m in _members(t.get("members")) if m.strip() != example.strip()][:_MEMBERS]
        lines = [f"## {t['id']}: {t['label']} ({int(t['size'])} steps in {int(t['n_runs'])} runs)"]
        lines += ["```python", _clip(example), "```"]
        for other in others:
            lines += ["also written as:", "```python", _clip(other), "```"]
        blocks.append("\n".join(lines))
    return _PROMPT.format(tactics="\n\n".join(blocks))


_ARRAY = re.compile(r"\[.*\]", re.S)


def parse_groups(reply: str, sizes: Mapping[str, int]) -> list[list[str]]:
    """Groups of known tactic ids in a model's reply, largest tactic first in each group.

    ``sizes`` maps each tactic id shown to its size. Unknown ids are dropped, an id already in
    an earlier group stays there, and groups left with fewer than two ids are dropped. Raises
    ValueError when the reply holds no JSON list of lists.
    """
    found = _ARRAY.search(reply)
    data: Any = None
    if found:
        try:
            data = json.loads(found.group(0))
        except ValueError:
            data = None
    if not isinstance(data, list) or not all(isinstance(g, list) for g in data):
        raise ValueError("no JSON list of tactic-id groups")
    known = {k.upper(): k for k in sizes}
    taken: set[str] = set()
    groups: list[list[str]] = []
    for raw in data:
        ids = []
        for item in raw:
            tid = known.get(str(item).strip().upper())
            if tid is not None and tid not in taken and tid not in ids:
                ids.append(tid)
        if len(ids) >= 2:
            ids.sort(key=lambda t: (-sizes[t], t))
            taken.update(ids)
            groups.append(ids)
    return groups
