"""The miner with the real embedding model, and on imported rlms / dspy traces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from miner_fixtures import make_db

import miner
from miner.embed import SentenceEmbedder
from recorder.importers import import_files

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.slow
def test_real_model_mines_and_token_batching_matches_plain_encode(tmp_path: Path) -> None:
    store = make_db(tmp_path / "real.duckdb", runs=12)
    embedder = SentenceEmbedder()
    result = miner.mine(store, task="logs", embedder=embedder)
    assert result.model == "all-MiniLM-L6-v2"
    assert result.n_embedded == result.n_distinct > 0
    assert len(result.tactics) >= 4 and result.consensus
    with store.reader() as con:
        dims = con.execute(
            "SELECT DISTINCT len(vector) FROM embeddings WHERE model = ?", [result.model]
        ).fetchall()
    assert dims == [(384,)]
    again = miner.mine(store, task="logs", embedder=embedder)
    assert again.n_embedded == 0 and [t.id for t in again.tactics] == [t.id for t in result.tactics]

    texts = ["print(len(v1))", "v1 = [v2[v3:v3 + NUM] for v3 in range(0, len(v2), NUM)]", "SUBMIT(v1)" * 40]
    batched = embedder.encode(texts)
    plain = SentenceEmbedder(token_batching=False).encode(texts)
    assert batched.shape == (3, 384)
    assert np.all(np.sum(batched * plain, axis=1) > 1 - 1e-3)


def test_imported_rlms_and_dspy_runs_mine_alongside_recorded_ones(tmp_path: Path) -> None:
    store = make_db(tmp_path / "mixed.duckdb", runs=12)
    rlms = import_files(store, "rlms", sorted((FIXTURES / "rlms").iterdir()))
    dspy = import_files(store, "dspy", sorted((FIXTURES / "dspy").iterdir()))
    assert rlms.runs > 0 and dspy.runs > 0
    result = miner.mine(store, embedder="hashing")  # every task, imported runs included
    with store.reader() as con:
        per_engine = con.execute(
            """
            SELECT r.engine, count(*), count(m.tactic_id)
            FROM mined_steps m JOIN runs r ON r.id = m.run_id GROUP BY r.engine ORDER BY 1
            """
        ).fetchall()
    engines = {e: (n, tagged) for e, n, tagged in per_engine}
    assert set(engines) >= {"rlmine", "rlms", "dspy"}, engines
    for engine in ("rlms", "dspy"):
        steps, tagged = engines[engine]
        assert steps > 0 and tagged > 0, (engine, steps, tagged)
    assert result.n_runs > 12


@pytest.mark.slow
def test_onnx_runtime_gives_the_torch_vectors_and_falls_back_when_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import miner.onnx_encoder as onnx_encoder
    from rlmine.errors import UserError

    texts = [
        "print(len(v1))",
        "v1 = [v2[v3:v3 + NUM] for v3 in range(0, len(v2), NUM)]",
        "v1 = llm_query_batched([STR + v2 for v2 in v3])\nv4 = sum(int(v5.strip() or 0) for v5 in v1)" * 6,
        "SUBMIT(v1)",
    ] * 40
    fast = SentenceEmbedder()  # auto: ONNX Runtime, installed by the miner extra
    fast_vectors = fast.encode(texts)
    assert fast.runtime == "onnx"
    slow = SentenceEmbedder(backend="torch")
    slow._model = fast._model
    assert slow.runtime == "torch"
    assert np.all(np.sum(fast_vectors * slow.encode(texts), axis=1) > 1 - 1e-5)
    # Batches run side by side, one per core: the vectors are those of one batch at a time.
    assert fast.token_budget == 1024 and slow.token_budget == 2048
    assert len(fast.plan_batches(texts)) > 2 and fast._runner().workers == onnx_encoder.available_cores()
    one_at_a_time = SentenceEmbedder(workers=1)
    one_at_a_time._model = fast._model
    assert np.array_equal(one_at_a_time.encode(texts), fast_vectors)
    with pytest.raises(UserError, match="embedding workers 0 is below 1"):
        SentenceEmbedder(workers=0)
    # A runtime whose vectors differ from torch's, or an export that fails, is not used.
    real_batch = onnx_encoder.OnnxEncoder.encode_batch
    monkeypatch.setattr(onnx_encoder.OnnxEncoder, "encode_batch", lambda self, t: -real_batch(self, t))
    assert onnx_encoder.onnx_encoder(fast._model) is None
    monkeypatch.setattr(onnx_encoder.OnnxEncoder, "__init__", lambda self, m: 1 / 0)
    assert onnx_encoder.onnx_encoder(fast._model) is None
    # Without onnxruntime, auto stays on torch; asking for onnx is a one-line error with the fix.
    monkeypatch.setattr(onnx_encoder, "onnx_missing", lambda: "onnxruntime")
    fallback = SentenceEmbedder()
    fallback._model = fast._model
    assert fallback.runtime == "torch"
    assert np.allclose(fallback.encode(texts[:4]), fast_vectors[:4], atol=1e-5)
    forced = SentenceEmbedder(backend="onnx")
    forced._model = fast._model
    with pytest.raises(UserError, match="onnxruntime is not installed"):
        forced.encode(texts[:4])
    with pytest.raises(UserError, match="unknown embedding backend"):
        SentenceEmbedder(backend="gpu")
