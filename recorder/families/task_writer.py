"""``make_task``: many seeded instances of a family, written as a task file + contexts.

Layout: ``out_dir/task.yaml`` and ``out_dir/contexts/<instance id><suffix>``.
Instance i gets its own question params (drawn from a ``random.Random`` seeded
by (family, seed, i)) and its own context seed, so a task is reproducible from
(family, size, instances, seed). Instances whose question kind differs from the
family's default carry their own ``question`` text (the task-level template is
the default kind's).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from rlmine.errors import UserError

from .base import Family
from .sizes import check_size, format_size
from .streaming import derive_seed

__all__ = ["TaskProgressFn", "make_task_with", "split_counts"]

TaskProgressFn = Callable[[int, int], None]  # (bytes done, bytes in all)
MAX_INSTANCES = 10_000


def split_counts(n: int, splits: Sequence[float]) -> list[int]:
    """Instances per split (largest remainder), e.g. 10 x (0.6, 0.2, 0.2) -> [6, 2, 2]."""
    if len(splits) != 3 or any(s < 0 for s in splits) or abs(sum(splits) - 1.0) > 1e-6:
        raise UserError(
            f"splits {tuple(splits)} must be three non-negative shares summing to 1", "0.6,0.2,0.2"
        )
    raw = [n * s for s in splits]
    counts = [int(x) for x in raw]
    by_remainder = sorted(range(3), key=lambda i: (-(raw[i] - counts[i]), i))
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    return counts


_COVER_TRIES = 200


def _draw_params(family: Family, seed: int, index: int, seen: set[tuple[str, ...]] | None) -> dict[str, Any]:
    """Instance ``index``'s params; with ``seen``, redrawn (deterministically) until their
    question category is one of those, keeping the first draw when none is after a while."""

    def draw(*attempt: int) -> dict[str, Any]:
        return family.make_instance_params(
            random.Random(derive_seed("params", family.name, seed, index, *attempt))
        )

    first = draw()
    category = family.question_category(first)
    if not seen or category in seen:
        return first
    # the same kind of question (the splits keep their mix of kinds) where train asked that kind
    wanted = {c for c in seen if c[0] == category[0]} or seen
    for attempt in range(1, _COVER_TRIES):
        params = draw(attempt)
        if family.question_category(params) in wanted:
            return params
    return first


def make_task_with(
    family: Family,
    out_dir: Path,
    *,
    size_bytes: int,
    instances: int,
    seed: int,
    splits: Sequence[float] = (0.6, 0.2, 0.2),
    progress: TaskProgressFn | None = None,
    name: str | None = None,
    covered: bool = False,
) -> Path:
    """Write the task file and contexts for ``family``; return the task file path.

    ``name`` defaults to ``<family>-<size>-s<seed>``. ``covered`` draws validation and test
    questions only from the categories the train split asks (:meth:`Family.question_category`),
    so an agent distilled from train runs is measured on questions its runs have seen."""
    check_size(size_bytes)
    if name is not None and (not name.strip() or any(c.isspace() for c in name)):
        raise UserError(f"task name {name!r} is empty or has spaces", "--name logs")
    if not 1 <= instances <= MAX_INSTANCES:
        raise UserError(f"{instances} instances is outside 1..{MAX_INSTANCES}", "--instances 30")
    counts = split_counts(instances, splits)
    contexts = Path(out_dir) / "contexts"
    try:
        contexts.mkdir(parents=True, exist_ok=True)
        probe = contexts / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {out_dir}: {exc.strerror or exc}", "another --out folder") from exc
    total = size_bytes * instances
    entries: list[dict[str, Any]] = []
    seen: set[tuple[str, ...]] = set()
    index = 0
    for split, count in zip(("train", "validation", "test"), counts, strict=True):
        for j in range(count):
            ident = f"{split}-{j:03d}"
            params = _draw_params(family, seed, index, seen if covered and split != "train" else None)
            if split == "train":
                seen.add(family.question_category(params))
            context = contexts / f"{ident}{family.context_suffix}"
            done_before = index * size_bytes

            def report(done: int, base: int = done_before) -> None:
                if progress is not None:
                    progress(min(base + done, total), total)

            result = family.write_context(
                context,
                params=params,
                seed=derive_seed("context", family.name, seed, index) % (1 << 31),
                size_bytes=size_bytes,
                on_progress=report,
            )
            entry: dict[str, Any] = {
                "id": ident,
                "split": split,
                "context": f"contexts/{context.name}",
                "params": params,
                "expected": result["expected"],
            }
            if params.get("kind", family.default_kind) != family.default_kind:
                entry["question"] = family.question_for(params)
            entries.append(entry)
            index += 1
            report(size_bytes)
    spec = {
        "name": name or f"{family.name}-{format_size(size_bytes).lower()}-s{seed}",
        "description": (
            f"{family.description} Generated by `rlmine tasks make` "
            f"({instances} instances of {format_size(size_bytes)}, seed {seed})."
        ),
        "family": family.name,
        "question": family.question_template,
        "checker": family.checker if isinstance(family.checker, str) else dict(family.checker),
        "budget": dict(family.budget),
        "instances": entries,
    }
    task_file = Path(out_dir) / "task.yaml"
    task_file.write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True, width=100))
    return task_file
