"""Splitting a root-model reply into reasoning and code blocks.

Real models answer in many shapes: ```python, ```repl, ```py, a bare ``` fence,
several blocks in one reply, an unclosed last fence, or no block at all. The
reasoning is the reply with its code blocks removed. Windows line endings are
normalized first, and a block indented as a whole (a fence inside a numbered
list) is dedented, or it could not run.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass

# Languages whose fenced blocks are executed. A fence with another language
# (```json, ```text, ```bash) is shown to us as an example, not code to run.
RUNNABLE = {"python", "py", "python3", "repl", ""}

_FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})[ \t]*([A-Za-z0-9_+-]*)[^\n]*$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class ParsedReply:
    reasoning: str
    blocks: tuple[str, ...]

    @property
    def code(self) -> str:
        """The blocks joined in order, as one cell would hold them."""
        return "\n\n".join(self.blocks)


def parse_reply(text: str) -> ParsedReply:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    blocks: list[str] = []
    prose: list[str] = []
    pos = 0
    while True:
        opening = _FENCE.search(text, pos)
        if opening is None:
            prose.append(text[pos:])
            break
        fence, lang = opening.group(1), opening.group(2).lower()
        prose.append(text[pos : opening.start()])
        body_start = opening.end() + 1
        closing = re.compile(rf"^[ \t]*{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$", re.MULTILINE)
        end = closing.search(text, body_start)
        body = text[body_start : end.start() if end else len(text)]
        if lang in RUNNABLE:
            code = textwrap.dedent(body).rstrip("\n")
            if code.strip():
                blocks.append(code)
        else:
            prose.append(text[opening.start() : end.end() if end else len(text)])
        if end is None:
            break
        pos = end.end()
    reasoning = re.sub(r"\n{3,}", "\n\n", "".join(prose)).strip()
    return ParsedReply(reasoning=reasoning, blocks=tuple(blocks))
