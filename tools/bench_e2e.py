#!/usr/bin/env python3
"""Whole-command timing of `mirkit features` on one 10-minute file against librosa, side by
side in one run (issue #15), for WAV, FLAC and MP3 inputs.

The file: the two clips of data/clips at 22.05 kHz mono, tiled to 10 minutes, written as
16-bit WAV, FLAC and MP3 (soundfile/libsndfile) into a temporary folder.
Work: decode, log-mel (n_fft 512, hop 256, 128 Slaney mels, power_to_db with top_db 80),
write float32 .npy.
  mirkit:  RAYON_NUM_THREADS=1 mirkit features FILE -o OUT.npy --sr native --n-fft 512
           --hop-length 256 --n-mels 128 --db --top-db 80 --timings     (whole process)
  librosa: librosa.load(sr=None) + melspectrogram + power_to_db + np.save, timed inside one
           warm Python process (imports and numba compilation excluded: the most favourable
           reading for librosa), one thread (OMP_NUM_THREADS=1)
Runs alternate mirkit / librosa (this shared machine's speed drifts); the median and range
of each and of the per-pair ratios are printed, with mirkit's own per-stage report
(`--timings`) so that "decode + in-memory compute" can be read off.

Usage (from the repository root, after `pip install -r tools/requirements.txt`):
    python3 tools/bench_e2e.py [--pairs 7] [--out DIR]
"""
import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import librosa  # noqa: E402
import soundfile as sf  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIPS = [os.path.join(ROOT, "data", "clips", c) for c in
         ("brahms_hungarian_dance_5.hq.ogg", "sorohanro_-_solo-trumpet-06.hq.ogg")]
SR = 22050


def make_files(d):
    y = np.concatenate([librosa.load(c, sr=SR)[0] for c in CLIPS])
    y = np.resize(y, 600 * SR)
    paths = {}
    for ext, kw in (("wav", {"subtype": "PCM_16"}), ("flac", {"subtype": "PCM_16"}),
                    ("mp3", {"format": "MP3"})):
        p = os.path.join(d, f"ten_min.{ext}")
        sf.write(p, y, SR, **kw)
        paths[ext] = p
    return paths


def librosa_once(path, out):
    t = time.perf_counter()
    y, sr = librosa.load(path, sr=None)
    s = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=sr, n_fft=512, hop_length=256, n_mels=128),
        top_db=80)
    np.save(out, s.astype(np.float32))
    return time.perf_counter() - t


def mirkit_once(exe, path, out):
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    t = time.perf_counter()
    r = subprocess.run([exe, "features", path, "-o", out, "--sr", "native", "--n-fft", "512",
                        "--hop-length", "256", "--n-mels", "128", "--db", "--top-db", "80",
                        "--timings"], env=env, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    stages = dict((k, float(v)) for k, v in re.findall(r"(\w+) ([0-9.]+) s", r.stderr))
    return wall, stages


def fmt(xs):
    return f"{statistics.median(xs):.3f} s ({min(xs):.3f}-{max(xs):.3f})"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=7)
    ap.add_argument("--out", help="folder for the generated files (default: a temporary one)")
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "mirkit"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "mirkit")
    with tempfile.TemporaryDirectory() as tmp:
        d = a.out or tmp
        os.makedirs(d, exist_ok=True)
        files = make_files(d)
        print(f"librosa {librosa.__version__}, numpy {np.__version__}, soundfile {sf.__version__}"
              f" (libsndfile {sf.__libsndfile_version__}); mirkit {exe}")
        for ext, path in files.items():
            librosa_once(path, os.path.join(d, "warm.npy"))  # imports, numba caches
            lib, mk, ratios, stages = [], [], [], []
            for _ in range(a.pairs):
                w, st = mirkit_once(exe, path, os.path.join(d, "m.npy"))
                l = librosa_once(path, os.path.join(d, "l.npy"))
                mk.append(w)
                lib.append(l)
                ratios.append(l / w)
                stages.append(st)
            med = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
            inmem = med.get("decode", 0) + med.get("resample", 0) + med.get("features", 0)
            print(f"{ext:>4}: mirkit {fmt(mk)}  librosa {fmt(lib)}  "
                  f"librosa/mirkit {statistics.median(ratios):.2f}x "
                  f"({min(ratios):.2f}-{max(ratios):.2f})")
            print(f"      mirkit stages (median): " +
                  ", ".join(f"{k} {v:.3f}" for k, v in med.items()) +
                  f"; whole process / (decode + in-memory compute) = "
                  f"{statistics.median(mk) / inmem:.2f}")


if __name__ == "__main__":
    main()
