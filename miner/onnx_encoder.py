"""all-MiniLM-L6-v2's transformer run by ONNX Runtime: the same vectors, about twice as fast on CPU.

The loaded SentenceTransformer's transformer is exported once per process by torch's
TorchScript exporter, into a temporary file that is read back and deleted. That takes about
1.5 s and downloads nothing. ONNX Runtime then runs it. The pooling is done here in NumPy, the way the model's own
``Pooling`` (mean over the attention mask) and ``Normalize`` modules do it. On load, a
self-check compares the vectors of texts of different lengths (so padding is exercised) with
the torch path. If they differ, or anything fails to import or export, :func:`onnx_encoder`
returns None and the caller stays on torch. Measured in decision 0024.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["OnnxEncoder", "available_cores", "onnx_encoder", "onnx_missing"]

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_CHECK = (
    "x = 1",
    "print(len(context))",
    'replies = llm_query_batched([f"Count the errors in this log:\\n{c}" for c in chunks])\n'
    "total = sum(int(r.strip() or 0) for r in replies)",
)
_CHECK_COSINE = 1 - 1e-5  # the two runtimes agree to float noise (measured: 1 - 2e-7)


def available_cores() -> int:
    """Cores this process may run on (its affinity, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def onnx_missing() -> str | None:
    """The package that is missing for the ONNX path, or None when both are there."""
    for name in ("onnxruntime", "onnx"):
        try:
            __import__(name)
        except ImportError:
            return name
    return None


class OnnxEncoder:
    """Encodes batches of texts as the SentenceTransformer ``model`` would (mean pooling, unit length).

    The session runs each batch on one thread, and :meth:`encode_batches` runs ``workers``
    batches at once (ONNX Runtime releases the GIL): whole batches side by side beat one
    batch split over the cores, whose threads wait on each other at every operator
    (decision 0024). A batch's vectors do not depend on what runs beside it.
    """

    def __init__(self, model: Any, workers: int | None = None) -> None:
        import onnxruntime as ort
        import torch

        self._tokenizer = model.tokenizer
        self._max_length = int(model.max_seq_length)
        transformer = model[0].auto_model

        class _Outputs(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = transformer

            def forward(self, ids: Any, mask: Any, types: Any) -> Any:
                return self.inner(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state

        sample = self._tokenizer(list(_CHECK[:2]), padding=True, return_tensors="pt")
        with (
            tempfile.TemporaryDirectory(prefix="rlmine-onnx-") as tmp,
            warnings.catch_warnings(),
            torch.no_grad(),
        ):
            path = Path(tmp) / "model.onnx"
            warnings.simplefilter("ignore")  # the tracer's notes on constant branches of BERT
            torch.onnx.export(
                _Outputs().eval(),
                tuple(sample[k] for k in _INPUTS),
                str(path),
                input_names=list(_INPUTS),
                output_names=["hidden"],
                dynamic_axes={k: {0: "batch", 1: "tokens"} for k in (*_INPUTS, "hidden")},
                opset_version=17,
                dynamo=False,
            )
            graph = path.read_bytes()
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.workers = workers or available_cores()
        self._session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def encode_batch(self, texts: Sequence[str]) -> np.ndarray:
        enc = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=self._max_length, return_tensors="np"
        )
        (hidden,) = self._session.run(None, {k: enc[k].astype(np.int64) for k in _INPUTS})
        mask = enc["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)

    def encode_batches(self, batches: Iterable[Sequence[str]]) -> Iterator[np.ndarray]:
        """Each batch's vectors, in the order given, ``workers`` batches running at a time."""
        if self.workers == 1:
            yield from map(self.encode_batch, batches)
            return
        with ThreadPoolExecutor(self.workers, thread_name_prefix="rlmine-onnx") as pool:
            yield from pool.map(self.encode_batch, batches)


def _pipeline_is_mean_pooled(model: Any) -> bool:
    kinds = [type(m).__name__ for m in model]
    if kinds != ["Transformer", "Pooling", "Normalize"]:
        return False
    pooling = model[1]
    # sentence-transformers 6 names it `pooling_mode`; older ones have `get_pooling_mode_str()`.
    mode = getattr(pooling, "pooling_mode", None) or getattr(pooling, "get_pooling_mode_str", lambda: "")()
    return bool(mode == "mean")


def onnx_encoder(model: Any, workers: int | None = None) -> OnnxEncoder | None:
    """An ONNX Runtime encoder equal to ``model`` (a loaded SentenceTransformer), else None.

    ``workers``: batches encoded at once (default: the cores this process may use)."""
    if onnx_missing() is not None or not _pipeline_is_mean_pooled(model):
        return None
    try:
        encoder = OnnxEncoder(model, workers) if workers else OnnxEncoder(model)
        ours = encoder.encode_batch(_CHECK)
    except Exception:  # an exporter or runtime that cannot take this model: torch still can
        return None
    theirs = model.encode(list(_CHECK), normalize_embeddings=True, convert_to_numpy=True)
    if float(np.sum(ours * theirs, axis=1).min()) < _CHECK_COSINE:
        return None
    return encoder
