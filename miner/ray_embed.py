"""Embedding on a Ray cluster: :class:`RayEmbedder` spreads ``encode`` over Ray actors.

Each actor builds the named embedder once (all-MiniLM-L6-v2 is loaded once per actor,
not per call) and encodes the work units sent to it. To store the same cache rows as the
local path, the work is cut exactly as the local encode cuts it: for the sentence
embedder, its token-budget batches (:meth:`~miner.embed.SentenceEmbedder.plan_batches`,
planned by one actor), each encoded on its own, which is the very batch the local encode
runs; for per-text embedders (hashing), plain chunks. The embedder keeps the inner
embedder's ``name``, so the cache is shared with local minings and vectors computed on
either path are reused by the other.

Only the embedding moves: the driver (``rlmine mine``) still reads the steps, writes the
cache and clusters. Ray is imported only when this embedder is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import numpy as np

from miner.embed import Embedder, Progress, get_embedder
from rlmine.errors import UserError
from rlmine.ray_connect import connect, import_ray

__all__ = ["RayEmbedder"]

_CHUNK = 256  # texts per work unit for embedders without planned batches
_UNIT_TEXTS = 512  # planned batches are grouped into units of about this many texts


class _EmbedWorker:
    """The actor's body: one embedder, built once, for every unit sent here."""

    def __init__(self, embedder: str) -> None:
        self.embedder: Embedder = get_embedder(embedder)

    def plan(self, texts: Sequence[str]) -> list[list[int]] | None:
        plan = getattr(self.embedder, "plan_batches", None)
        if plan is None or not getattr(self.embedder, "token_batching", True):
            return None
        batches: list[list[int]] = plan(texts)
        return batches

    def encode(self, texts: Sequence[str], batches: list[list[int]]) -> list[np.ndarray]:
        return [self.embedder.encode([texts[i] for i in batch]) for batch in batches]


def _units(batches: list[list[int]], actors: int) -> list[list[list[int]]]:
    """Consecutive batches grouped into units of about ``_UNIT_TEXTS`` texts, smaller when
    there are few texts so that every actor gets some (two units each)."""
    total = sum(len(b) for b in batches)
    target = max(1, min(_UNIT_TEXTS, -(-total // (2 * actors))))
    units: list[list[list[int]]] = []
    size = 0
    for batch in batches:
        if not units or size + len(batch) > target:
            units.append([])
            size = 0
        units[-1].append(batch)
        size += len(batch)
    return units


class RayEmbedder:
    """An :class:`~miner.embed.Embedder` whose ``encode`` runs on ``actors`` Ray actors.

    ``address`` as for ``ray.init`` (None: ``$RAY_ADDRESS``, else a private local Ray on
    127.0.0.1 that :meth:`close` shuts down; an already initialised Ray is used as is).
    Use as a context manager, or call :meth:`close`, to release the actors.
    """

    def __init__(
        self,
        embedder: str = "minilm",
        *,
        actors: int = 2,
        address: str | None = None,
        num_cpus: float = 1.0,
        init_options: dict[str, Any] | None = None,
    ) -> None:
        if actors < 1:
            raise UserError(f"--ray-actors {actors} is below 1", "--ray-actors 2")
        self.inner = embedder
        self.name = get_embedder(embedder).name  # cheap: models load on first use
        self.n_actors = actors
        self.address = address
        self.num_cpus = num_cpus
        self.init_options = dict(init_options or {})
        self._ray = import_ray()
        self._owns_ray = False
        self._actors: list[Any] = []

    def _start(self) -> list[Any]:
        ray = self._ray
        if not self._actors:
            self._owns_ray = connect(self.address, self.init_options) or self._owns_ray
            actor = ray.remote(num_cpus=self.num_cpus)(_EmbedWorker)
            self._actors = [actor.remote(self.inner) for _ in range(self.n_actors)]
        return self._actors

    def encode(self, texts: Sequence[str], on_progress: Progress | None = None) -> np.ndarray:
        ray = self._ray
        actors = self._start()
        texts = list(texts)
        ref = ray.put(texts)
        planned = ray.get(actors[0].plan.remote(ref)) if texts else []
        if planned is None:  # a per-text embedder: any cut gives the same vectors
            step = max(1, min(_CHUNK, -(-len(texts) // (2 * len(actors)))))
            planned = [list(range(i, min(i + step, len(texts)))) for i in range(0, len(texts), step)]
        batches: list[list[int]] = planned
        units = _units(batches, len(actors))
        pending = {actors[n % len(actors)].encode.remote(ref, unit): unit for n, unit in enumerate(units)}
        parts: list[tuple[list[int], np.ndarray]] = []
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            unit = pending.pop(ready[0])
            vectors = ray.get(ready[0])
            for batch, block in zip(unit, vectors, strict=True):
                parts.append((batch, block))
            if on_progress is not None:
                on_progress(sum(len(b) for b in unit))
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        dim = parts[0][1].shape[1]
        out = np.zeros((len(texts), dim), dtype=np.float32)
        for batch, block in parts:
            out[batch] = block
        return out

    def close(self) -> None:
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []
        if self._owns_ray:
            self._ray.shutdown()
            self._owns_ray = False

    def __enter__(self) -> RayEmbedder:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
