"""``rlmine mine --executor ray``: embedding spread over Ray actors stores the same cache
rows (bit for bit) and finds the same tactics as the local path. A local Ray, loopback
only, 2 CPUs, no dashboard, started once for the module."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

ray = pytest.importorskip("ray")

from miner_fixtures import make_db  # noqa: E402
from test_cli_basics import invoke  # noqa: E402

from miner.embed import SentenceEmbedder  # noqa: E402
from miner.ray_embed import RayEmbedder  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", logging_level="ERROR")
    yield
    ray.shutdown()


def _embeddings(db: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT hash, model, vector FROM embeddings ORDER BY hash").fetchall()
    finally:
        con.close()


def _tactics(output: str) -> list[tuple[Any, ...]]:
    data = json.loads(output)
    return [(t["id"], t["label"], t["size"], t["members"], t["success_rate"]) for t in data["tactics"]]


def test_mine_with_ray_stores_the_same_cache_rows_and_tactics_as_local(tmp_path: Path) -> None:
    local_db, ray_db = tmp_path / "local.duckdb", tmp_path / "ray.duckdb"
    make_db(local_db)
    make_db(ray_db)
    local = invoke("mine", "--db", str(local_db), "--embedder", "hashing", "--json")
    remote = invoke(
        "mine",
        "--db",
        str(ray_db),
        "--embedder",
        "hashing",
        "--executor",
        "ray",
        "--ray-actors",
        "2",
        "--json",
    )
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    rows = _embeddings(ray_db)
    assert len(rows) == json.loads(remote.output)["n_embedded"] > 10
    assert rows == _embeddings(local_db)
    assert _tactics(remote.output) == _tactics(local.output)
    # incremental: a second Ray mining reuses the cache and embeds nothing
    again = invoke("mine", "--db", str(ray_db), "--embedder", "hashing", "--executor", "ray", "--json")
    assert json.loads(again.output)["n_embedded"] == 0


def test_the_real_model_on_ray_actors_gives_the_local_vectors_bit_for_bit() -> None:
    # Varied lengths, so that the token-budget plan has several batches for two actors.
    texts = [f"v{i} = [v2[v3:v3 + NUM] for v3 in range(0, len(v2), NUM)]\n" * (1 + i % 7) for i in range(21)]
    texts += ["print(len(v1))", "SUBMIT(v1)", "import re\nv1 = re.findall(STR, context)"]
    local_model = SentenceEmbedder()
    assert len(local_model.plan_batches(texts)) >= 2
    expected = local_model.encode(texts)
    progress: list[int] = []
    with RayEmbedder("minilm", actors=2) as embedder:
        assert embedder.name == local_model.name  # the cache is shared with local minings
        got = embedder.encode(texts, on_progress=progress.append)
    assert got.shape == expected.shape == (len(texts), 384)
    assert np.array_equal(got, expected)
    assert sum(progress) == len(texts) and len(progress) >= 2
