"""A Ray Data pipeline on a local Ray (2 CPUs): a folder of real clips through
`map_batches(mirkit.Tagger, ...)` with an actor pool to Parquet; every file's scores are
checked against `mirkit tag` on the same folder."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import shared_clips

ray = pytest.importorskip("ray", reason="ray is in the test requirements (.ci/run installs it)")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
import ray_pipeline  # noqa: E402


def test_ray_pipeline_matches_the_cli(tmp_path, mirkit_bin):
    src = tmp_path / "music"
    src.mkdir()
    for p in shared_clips()[:6]:
        shutil.copy(p, src / p.name)
    (src / "broken.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff" * 64)
    out = tmp_path / "tags.parquet"
    try:
        ray_pipeline.run(str(src), str(out), cpus=2, batch_size=2)
        rows = ray.data.read_parquet(str(out)).take_all()
    finally:
        ray.shutdown()
    cli = json.loads(
        subprocess.run(
            [mirkit_bin, "tag", str(src), "--format", "json", "--top-k", "100"],
            capture_output=True, text=True,
        ).stdout
    )
    by_file = {Path(r["file"]).name: r["scores"] for r in cli}
    import mirkit

    tags = mirkit.Tagger().tags
    assert len(rows) == len(list(src.iterdir()))
    for r in rows:
        name = Path(r["path"]).name
        if name == "broken.mp3":
            assert r["error"] and np.isnan(np.asarray(r["scores"])).all()
            continue
        assert r["error"] == ""
        scores = np.asarray(r["scores"], dtype=np.float32)
        emb = np.asarray(r["embedding"], dtype=np.float32)
        assert scores.shape == (50,) and emb.shape == (200,)
        for tag, v in by_file[name].items():
            assert abs(scores[tags.index(tag)] - v) <= 1e-6, (name, tag)
        assert r["top_tags"].split(",")[0] == max(by_file[name], key=by_file[name].get)
