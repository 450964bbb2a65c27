"""mirkit.Tagger against the `mirkit tag` command on the same files (same Rust code path:
scores must agree to the digits the CLI prints), arrays against files, batches, pickling."""

from __future__ import annotations

import json
import pickle
import subprocess

import numpy as np
import pytest

import mirkit
from conftest import BRAHMS, TRUMPET, shared_clips


@pytest.fixture(scope="module")
def tagger():
    return mirkit.Tagger()


def cli_scores(bin_: str, path, model: str) -> dict:
    out = subprocess.run(
        [bin_, "tag", str(path), "--model", model, "--format", "json", "--top-k", "100"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (rec,) = json.loads(out)
    return rec["scores"]


@pytest.mark.parametrize("model", ["musicnn-mtt", "won2020-musicnn-mtat"])
def test_scores_match_the_cli(mirkit_bin, model):
    t = mirkit.Tagger(model)
    for path in [TRUMPET, BRAHMS]:
        ours = t.tag(path)
        cli = cli_scores(mirkit_bin, path, model)
        assert set(cli) <= set(ours)
        for tag, v in cli.items():
            # the CLI prints f32 scores as shortest decimals: equal to 1e-6
            assert abs(ours[tag] - v) <= 1e-6, (model, path.name, tag, ours[tag], v)


def test_tagger_properties_and_top_k(tagger):
    assert tagger.name == "musicnn-mtt" and len(tagger.tags) == 50
    assert tagger.sample_rate == 16000 and tagger.window_secs > 0
    top = tagger.tag(BRAHMS, top_k=3)
    assert list(top)[0] == "classical" and len(top) == 3
    vals = list(top.values())
    assert vals == sorted(vals, reverse=True)
    assert "musicnn-mtt" in mirkit.models()


def test_array_input_equals_file_input(tagger):
    # the file's samples at their native rate, mono: the same resampler and windows
    y, sr = mirkit.load(BRAHMS, sr=None)
    a = tagger.scores(y, sr)
    f = tagger.scores(BRAHMS)
    assert np.max(np.abs(a - f)) <= 1e-5
    g = tagger.taggram(BRAHMS)
    assert g.shape == (15, 50)
    assert np.allclose(g.mean(axis=0), f, atol=1e-6)
    e = tagger.embed(y, sr)
    assert e.shape == (200,)
    assert np.max(np.abs(e - tagger.embed(BRAHMS))) <= 1e-4 * np.max(np.abs(e))
    every = tagger.embed(TRUMPET, layers="all")
    assert every.shape[0] > 1000
    # window pooling: max ≥ mean element-wise; both concatenated, mean first
    mx = tagger.embed(TRUMPET, layers="all-max")
    assert mx.shape == every.shape and np.all(mx >= every - np.abs(every) * 4 * np.finfo(np.float32).eps)
    both = tagger.embed(TRUMPET, layers="all-mean-max")
    assert np.array_equal(both, np.concatenate([every, mx]))
    with pytest.raises(mirkit.ParameterError, match="all-mean-max"):
        tagger.embed(TRUMPET, layers="every")


def test_batch_keeps_going_past_a_bad_file(tagger, tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 8)
    paths = [TRUMPET, bad, BRAHMS]
    out = tagger.tag_batch(paths, on_error="skip")
    assert out[1] is None
    assert out[0] == pytest.approx(tagger.tag(TRUMPET), abs=1e-6)
    with pytest.raises(mirkit.MirkitError, match="bad.wav"):
        tagger.tag_batch(paths)
    cols = tagger({"path": np.array([str(p) for p in paths], dtype=object)})
    assert cols["scores"].shape == (3, 50)
    assert np.isnan(cols["scores"][1]).all() and "bad.wav" in cols["error"][1]
    assert cols["error"][0] == "" and cols["top_tags"][2].startswith("classical")
    E = tagger.embed_batch([TRUMPET, BRAHMS])
    assert E.shape == (2, 200)


def test_pickles_by_name(tagger):
    t2 = pickle.loads(pickle.dumps(tagger))
    assert t2.name == tagger.name
    assert np.array_equal(t2.scores(TRUMPET), tagger.scores(TRUMPET))


def test_every_shared_clip_tags(tagger):
    rows = tagger.tag_batch(shared_clips(), top_k=1)
    assert all(r is not None and len(r) == 1 for r in rows)


def test_thumbnail_is_inside_the_track(tagger):
    start, end = tagger.thumbnail(BRAHMS, seconds=10)
    assert 0 <= start < end <= 45.9 and abs(end - start - 10) < 1e-9
    with pytest.raises(mirkit.MirkitError, match="positive"):
        tagger.thumbnail(BRAHMS, seconds=0)
