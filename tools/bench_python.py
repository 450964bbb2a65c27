#!/usr/bin/env python3
"""The Python package against what Python users run today, side by side in one process
run, with ratios (librosa 0.11, Won et al. 2020's PyTorch Musicnn with the authors'
weights, Ray Data 2.60):

1. `mirkit.feature.melspectrogram` on a NumPy array vs `librosa.feature.melspectrogram`
   (60 s and 10 min of 22.05 kHz noise; one thread each);
2. `mirkit.load` + log-mel on a file vs `librosa.load` + log-mel (a 10-minute 44.1 kHz
   stereo WAV and an Ogg clip; resampled to 22.05 kHz, 128 mels, `power_to_db`);
3. a Ray Data pipeline (`ray.init(num_cpus=2)`, an actor pool of 2 with one thread each,
   batches of 2 paths) over a folder of real clips: `mirkit.Tagger("won2020-musicnn-mtat")`
   vs the same pipeline calling `librosa.load(sr=16000)` + Won 2020's PyTorch Musicnn-MTAT
   (3 s windows, batches of 16, mean of sigmoid scores — the same model and windowing);
   `--ray-copies N` puts N copies of the clips in the folder (default 2, ~15 min of music).

Timings alternate between the two sides; each figure is the median over --reps with the
range (this machine is shared and noisy). Needs a release build of the module:

    (cd crates/mirkit-py && maturin develop --release)   # in a venv with torch, librosa, ray
    python tools/bench_python.py [--reps 5] [--no-ray] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(ROOT, "..", "shared", "data")
WEIGHTS = os.path.join(SHARED, "weights", "won2020", "mtat", "musicnn.pth")
BRAHMS = os.path.join(ROOT, "data", "clips", "brahms_hungarian_dance_5.hq.ogg")


def timed(fn, reps):
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def pair(name, ours, theirs, reps, results):
    """Alternates the two sides `reps` times; prints medians, ranges and the ratio."""
    a, b = [], []
    ours(), theirs()  # warm up (plans, caches, imports)
    for _ in range(reps):
        a += timed(ours, 1)
        b += timed(theirs, 1)
    ma, mb = statistics.median(a), statistics.median(b)
    ratios = sorted(y / x for x, y in zip(a, b))
    print(
        f"{name:58s} mirkit {ma * 1e3:9.1f} ms  reference {mb * 1e3:9.1f} ms  "
        f"speed-up {mb / ma:5.1f}x (per pair {ratios[0]:.1f}-{ratios[-1]:.1f}x)",
        flush=True,
    )
    results.append({"work": name, "mirkit_s": ma, "reference_s": mb, "speedup": mb / ma,
                    "speedup_range": [ratios[0], ratios[-1]], "reps": reps})


def bench_features(reps, results):
    import librosa

    import mirkit

    rng = np.random.default_rng(0)
    for secs in (60, 600):
        y = rng.standard_normal(22050 * secs).astype(np.float32)
        pair(
            f"melspectrogram, {secs} s array (defaults)",
            lambda: mirkit.feature.melspectrogram(y=y, sr=22050),
            lambda: librosa.feature.melspectrogram(y=y, sr=22050),
            reps, results,
        )
        pair(
            f"log-mel power_to_db(melspectrogram), {secs} s array",
            lambda: mirkit.power_to_db(mirkit.feature.melspectrogram(y=y, sr=22050), ref=np.max),
            lambda: librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050), ref=np.max),
            reps, results,
        )
    y = rng.standard_normal(22050 * 60).astype(np.float32)
    pair(
        "mfcc (20), 60 s array",
        lambda: mirkit.feature.mfcc(y=y, sr=22050),
        lambda: librosa.feature.mfcc(y=y, sr=22050),
        reps, results,
    )


def ten_minute_wav(folder):
    """10 minutes of 44.1 kHz stereo 16-bit WAV tiled from the Brahms clip."""
    import soundfile as sf

    x, sr = sf.read(BRAHMS, dtype="float32")
    n = 600 * sr
    reps = -(-n // len(x))
    y = np.tile(x, (reps, 1))[:n]
    p = os.path.join(folder, "ten_min_44k.wav")
    sf.write(p, y, sr, subtype="PCM_16")
    return p


def bench_load(reps, results, folder):
    import librosa

    import mirkit

    def ours(p):
        y, sr = mirkit.load(p)
        return mirkit.power_to_db(mirkit.feature.melspectrogram(y=y, sr=sr), ref=np.max)

    def theirs(p):
        y, sr = librosa.load(p)
        return librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr), ref=np.max)

    wav = ten_minute_wav(folder)
    pair("load + log-mel, 10 min 44.1 kHz stereo WAV", lambda: ours(wav), lambda: theirs(wav),
         reps, results)
    pair("load + log-mel, 45.8 s 44.1 kHz stereo Ogg", lambda: ours(BRAHMS),
         lambda: theirs(BRAHMS), reps, results)


class TorchMusicnn:
    """Ray actor: librosa.load at 16 kHz + Won 2020's PyTorch Musicnn-MTAT."""

    def __init__(self):
        import torch

        torch.set_num_threads(1)
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        from make_model_fixtures import Musicnn

        self.torch = torch
        self.m = Musicnn()
        self.m.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=False))
        self.m.eval()

    def __call__(self, batch):
        import librosa

        rows = []
        for p in batch["path"]:
            y, _ = librosa.load(str(p), sr=16000)
            n = max(1, len(y) // 48000)
            y = np.pad(y, (0, max(0, 48000 - len(y))))
            x = self.torch.from_numpy(y[: n * 48000].reshape(n, 48000))
            with self.torch.no_grad():
                s = self.torch.cat([self.m(x[i:i + 16]) for i in range(0, n, 16)]).mean(0)
            rows.append(s.numpy())
        out = dict(batch)
        out["scores"] = np.stack(rows).astype(np.float32)
        return out


def ray_run(cls, kwargs, paths, out):
    import ray

    ds = ray.data.from_items([{"path": p} for p in paths])
    ds = ds.map_batches(cls, fn_constructor_kwargs=kwargs, batch_size=2, batch_format="numpy",
                        concurrency=2, num_cpus=1)
    ds.write_parquet(out)


def bench_ray(reps, results, folder, copies=2):
    import ray

    import mirkit

    clips = sorted(
        os.path.join(SHARED, "clips", f) for f in os.listdir(os.path.join(SHARED, "clips"))
        if f.endswith(".ogg")
    )
    src = os.path.join(folder, "music")
    os.makedirs(src, exist_ok=True)
    paths = []
    for k in range(copies):
        for c in clips:
            d = os.path.join(src, f"{k}_{os.path.basename(c)}")
            shutil.copy(c, d)
            paths.append(d)
    secs = sum(mirkit.load(p, sr=None, duration=None)[0].shape[-1] / 44100 for p in clips) * copies
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    n = [0]

    def out():
        n[0] += 1
        return os.path.join(folder, f"out{n[0]}")

    try:
        pair(
            f"Ray Data, 2 actors, {len(paths)} files (~{secs / 60:.0f} min of music)",
            lambda: ray_run(mirkit.Tagger, {"model": "won2020-musicnn-mtat", "threads": 1},
                            paths, out()),
            lambda: ray_run(TorchMusicnn, {}, paths, out()),
            reps, results,
        )
    finally:
        ray.shutdown()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-ray", action="store_true")
    ap.add_argument("--only", choices=["features", "load", "ray"])
    ap.add_argument("--json")
    ap.add_argument("--ray-copies", type=int, default=2,
                    help="copies of the shared clips in the Ray folder (2: ~15 min of music; "
                         "Ray's own start-up, ~4 s here, weighs less in larger folders)")
    a = ap.parse_args()
    import librosa

    import mirkit

    ray_part = a.only in (None, "ray") and not a.no_ray
    try:
        import torch  # only the Ray comparison needs it

        torch_version = torch.__version__
    except ImportError:
        if ray_part:
            raise
        torch_version = "not installed"

    if mirkit._native.__build__ != "release":
        sys.exit("build the module with `maturin develop --release` first (this is a dev build)")
    mirkit.set_num_threads(1)
    print(f"mirkit {mirkit.__version__} ({mirkit._native.__build__}), librosa {librosa.__version__}, "
          f"torch {torch_version}, numpy {np.__version__}; one thread per worker; "
          f"{time.strftime('%Y-%m-%d')}")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        if a.only in (None, "features"):
            bench_features(a.reps, results)
        if a.only in (None, "load"):
            bench_load(a.reps, results, folder)
        if ray_part:
            bench_ray(max(2, a.reps // 2), results, folder, a.ray_copies)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
