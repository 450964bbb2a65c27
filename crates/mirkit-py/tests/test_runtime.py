"""Threads, the GIL, fork, and zero-copy at the boundary."""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import mirkit
from conftest import BRAHMS, TRUMPET


def noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def test_thread_count_is_settable_and_results_do_not_depend_on_it():
    y, sr = mirkit.load(BRAHMS, duration=20.0)
    t = mirkit.Tagger()
    before = mirkit.get_num_threads()
    try:
        mirkit.set_num_threads(1)
        assert mirkit.get_num_threads() == 1
        one = (mirkit.feature.melspectrogram(y=y, sr=sr), t.taggram(y, sr))
        mirkit.set_num_threads(2)
        assert mirkit.get_num_threads() == 2
        two = (mirkit.feature.melspectrogram(y=y, sr=sr), t.taggram(y, sr))
    finally:
        mirkit.set_num_threads(0)
    assert mirkit.get_num_threads() == before
    assert np.array_equal(one[0], two[0])
    assert np.array_equal(one[1], two[1])


def test_rayon_num_threads_is_the_default():
    code = "import mirkit; print(mirkit.get_num_threads())"
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env={**__import__("os").environ, "RAYON_NUM_THREADS": "3"}, timeout=60,
    )
    assert r.stdout.strip() == "3", r.stderr


def test_gil_is_released_during_numeric_work():
    # while one thread runs a long native call, another Python thread keeps running
    y = noise(22050 * 600)
    ticks = 0
    done = threading.Event()

    def work():
        mirkit.feature.melspectrogram(y=y, sr=22050)
        mirkit.effects.time_stretch(y[: 22050 * 60], rate=1.1)
        done.set()

    th = threading.Thread(target=work)
    t0 = time.perf_counter()
    th.start()
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    th.join()
    elapsed = time.perf_counter() - t0
    # with the GIL held the loop would not run at all until the call returned
    assert elapsed > 0.05
    assert ticks >= 10, (ticks, elapsed)


def _child(q):
    y, sr = mirkit.load(TRUMPET)
    S = mirkit.feature.melspectrogram(y=y, sr=sr)
    scores = mirkit.Tagger().scores(TRUMPET)
    q.put((S.sum(dtype=np.float64), scores.tolist()))


def test_safe_after_fork():
    # the parent has used the pool (threads started); forked children must not hang on it
    y, sr = mirkit.load(TRUMPET)
    S = mirkit.feature.melspectrogram(y=y, sr=sr)
    scores = mirkit.Tagger().scores(TRUMPET)
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_child, args=(q,)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [q.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    for total, sc in got:
        assert total == S.sum(dtype=np.float64)
        assert np.array_equal(np.asarray(sc, dtype=np.float32), scores)


def test_outputs_are_handed_over_without_copying():
    y = noise(22050 * 10)
    S = mirkit.feature.melspectrogram(y=y, sr=22050)
    # NumPy owns no buffer: it wraps the Rust allocation (PyO3's PySliceContainer)
    assert not S.flags.owndata and type(S.base).__name__ == "PySliceContainer"
    assert S.flags.c_contiguous and S.flags.writeable
    assert not mirkit.stft(y).flags.owndata
    assert not mirkit.load(TRUMPET)[0].flags.owndata


_PEAK = """
import resource, numpy as np, mirkit
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
y = np.random.default_rng(0).standard_normal(NSAMP).astype(np.float32)
mirkit.feature.melspectrogram(y=y[:22050], sr=22050, n_mels=8)  # warm up: pool, plans
base = peak()
S = mirkit.feature.melspectrogram(y=y, sr=22050, n_mels=8, n_fft=4096, hop_length=4096)
print(peak() - base, y.nbytes, S.nbytes)
"""


def test_large_inputs_are_not_copied():
    # a 512 MB signal: a copy anywhere on the way would raise the peak by 512 MB
    code = _PEAK.replace("NSAMP", str(128 * 1024 * 1024))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    grew, nbytes, out_bytes = map(int, r.stdout.split())
    assert grew < nbytes // 4, (grew, nbytes, out_bytes)
