"""Reading a task file into plain data plus the line number of every key.

Validation wants to say ``task.yaml:17: instance 'x' has no id``, so parsing
keeps positions: a :class:`Document` holds the parsed value and a map from a
key path (``("instances", 3, "params")``) to its 1-based line. YAML positions
come from the composed node tree (``yaml.compose`` marks), so they are exact;
TOML (stdlib ``tomllib``, which keeps no positions) is indexed by scanning
table headers and ``key =`` lines, which covers the usual layouts but not keys
inside inline tables or arrays (best effort; those report their table's line).

Problems found while parsing (syntax errors, duplicate YAML keys) are
collected, not raised: the loader reports them together with everything else.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlmine.errors import UserError

__all__ = ["YAML_SUFFIXES", "Document", "Problem", "read_document"]

KeyPath = tuple[str | int, ...]
YAML_SUFFIXES = (".yaml", ".yml", ".json")  # JSON is read as YAML (a superset, for our purposes)
TOML_SUFFIXES = (".toml",)


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a task file, at a line when known."""

    line: int | None
    message: str

    def render(self, file: str) -> str:
        return f"{file}:{self.line}: {self.message}" if self.line else f"{file}: {self.message}"


@dataclass(slots=True)
class Document:
    """A parsed task file: ``data`` (None after a syntax error), key lines, parse problems."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line(self, *path: str | int) -> int | None:
        """The line of ``path``, else of its nearest ancestor that has one."""
        key: KeyPath = tuple(path)
        while key:
            if key in self.lines:
                return self.lines[key]
            key = key[:-1]
        return self.lines.get((), None)


def read_document(path: Path) -> Document:
    """Parse a YAML or TOML task file. Unreadable files raise a one-line :class:`UserError`."""
    if not path.exists():
        raise UserError(
            f"task file {path} does not exist", "check the path, or create one with `rlmine tasks make`"
        )
    if path.is_dir():
        hint = f"pass the task file inside it, e.g. {path / 'task.yaml'}"
        raise UserError(f"{path} is a directory, not a task file", hint)
    suffix = path.suffix.lower()
    if suffix not in YAML_SUFFIXES + TOML_SUFFIXES:
        raise UserError(
            f"{path} is not a task file (expected .yaml, .yml or .toml)",
            "rename it or pass the task's YAML file",
        )
    raw = path.read_bytes()
    if b"\0" in raw[:8192]:
        raise UserError(f"{path} is a binary file, not a task spec", "pass the task's YAML or TOML file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path} is not UTF-8 text (byte {exc.start})", "save the task file as UTF-8"
        ) from exc
    return _read_toml(text) if suffix in TOML_SUFFIXES else _read_yaml(text)


# --------------------------------------------------------------------------- YAML


def _read_yaml(text: str) -> Document:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        return Document(
            None, problems=[Problem(mark.line + 1 if mark else None, f"YAML syntax error: {what}")]
        )
    except yaml.YAMLError as exc:
        return Document(None, problems=[Problem(None, f"YAML error: {exc}")])
    finally:
        loader.dispose()
    doc = Document(data)
    if node is not None:
        doc.lines[()] = node.start_mark.line + 1
        _index_yaml(node, (), doc)
    return doc


def _index_yaml(node: yaml.Node, path: KeyPath, doc: Document) -> None:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen and key != "<<":
                doc.problems.append(
                    Problem(line, f"duplicate key {key!r} (first at line {seen[key]}); the last one wins")
                )
            seen.setdefault(key, line)
            doc.lines[(*path, key)] = line
            _index_yaml(value_node, (*path, key), doc)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            doc.lines[(*path, i)] = item.start_mark.line + 1
            _index_yaml(item, (*path, i), doc)


# --------------------------------------------------------------------------- TOML

_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)")
_ARRAY_HEADER = re.compile(r"^\s*\[\[\s*([^\[\]]+?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]")
_KEY_LINE = re.compile(
    r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*="""
)


def _read_toml(text: str) -> Document:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _TOML_AT.search(str(exc))
        message = _TOML_AT.sub("", str(exc)).strip()
        return Document(
            None, problems=[Problem(int(found.group(1)) if found else None, f"TOML syntax error: {message}")]
        )
    doc = Document(data)
    doc.lines[()] = 1
    _index_toml(text.splitlines(), doc)
    return doc


def _split_key(dotted: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", dotted)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _index_toml(lines: Iterable[str], doc: Document) -> None:
    arrays: dict[KeyPath, int] = {}  # array-of-tables path -> number of elements so far
    table: KeyPath = ()

    def resolve(parts: list[str]) -> KeyPath:
        out: KeyPath = ()
        for part in parts:
            out = (*out, part)
            if out in arrays:  # a sub-table of an array of tables belongs to its last element
                out = (*out, arrays[out] - 1)
        return out

    depth = 0  # inside a multi-line array or inline value: key lines there are not top-level keys
    for number, line in enumerate(lines, start=1):
        if depth == 0 and (array := _ARRAY_HEADER.match(line)):
            parts = _split_key(array.group(1))
            parent = resolve(parts[:-1])
            key = (*parent, parts[-1])
            arrays[key] = arrays.get(key, 0) + 1
            table = (*key, arrays[key] - 1)
            doc.lines.setdefault(key, number)
            doc.lines[table] = number
        elif depth == 0 and (header := _TABLE_HEADER.match(line)):
            table = resolve(_split_key(header.group(1)))
            doc.lines[table] = number
        elif depth == 0 and (key_line := _KEY_LINE.match(line)):
            doc.lines[(*table, *_split_key(key_line.group(1)))] = number
        depth = max(0, depth + _bracket_balance(line))


def _bracket_balance(line: str) -> int:
    """Net open brackets on a line, ignoring quoted strings and comments (approximate)."""
    stripped = re.sub(r'"(?:\\.|[^"\\])*"|\'[^\']*\'', "", line).split("#", 1)[0]
    if _ARRAY_HEADER.match(stripped) or _TABLE_HEADER.match(stripped):
        return 0
    return stripped.count("[") + stripped.count("{") - stripped.count("]") - stripped.count("}")
