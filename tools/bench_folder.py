#!/usr/bin/env python3
"""Times `mirkit features` on a folder of files with 1 job vs 2 (or --jobs N) jobs, and the
same work in librosa 0.11 (one process, one thread, and a warm pool of N worker processes,
as one would scale it with multiprocessing/joblib), and prints the ratios.

The folder: --files (default 20) one-minute 44.1 kHz stereo 16-bit WAVs cut from the Brahms clip
(data/clips, tiled, each starting 0.1 s further on), written to a temporary folder.
Work per file: decode, mono mean, resample to 22.05 kHz, log-mel (n_fft 512, hop 256,
128 Slaney mels, power_to_db with top_db 80), write float32 .npy.
  mirkit:  mirkit features DIR -o OUT --sr 22050 --n-fft 512 --hop-length 256 --db -j J
  librosa: librosa.load(sr=22050) (soxr_hq) + melspectrogram + power_to_db + np.save

1-job and N-job runs alternate and the ratio is taken per pair (this shared machine's
speed changes from minute to minute); the median and range are printed.

Usage (from the repository root, after `pip install -r tools/requirements.txt`):
    python3 tools/bench_folder.py [--pairs 8] [--jobs 2]
"""
import argparse
import os
import shutil
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
CLIP = os.path.join(ROOT, "data", "clips", "brahms_hungarian_dance_5.hq.ogg")
SR_IN = 44100


def lib_one(args):
    src, out, f = args
    y, _ = librosa.load(os.path.join(src, f), sr=22050)
    S = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=512, hop_length=256, n_mels=128)
    np.save(os.path.join(out, f + ".npy"), librosa.power_to_db(S, top_db=80.0).astype(np.float32))
    return f


def make_folder(d, n=20, seconds=60):
    y, _ = librosa.load(CLIP, sr=SR_IN, mono=False)
    y = np.atleast_2d(y)
    if y.shape[0] == 1:
        y = np.vstack([y, y])
    y = np.resize(y, (2, seconds * SR_IN + n * SR_IN // 10))
    for i in range(n):
        seg = y[:, i * SR_IN // 10:i * SR_IN // 10 + seconds * SR_IN]
        sf.write(os.path.join(d, f"f{i:02d}.wav"), seg.T, SR_IN, subtype="PCM_16")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=8)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--files", type=int, default=20)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "mirkit"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "mirkit")
    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.makedirs(src)
        make_folder(src, n=a.files)

        def mirkit(jobs):
            shutil.rmtree(out, ignore_errors=True)
            t = time.perf_counter()
            subprocess.run([exe, "features", src, "-o", out, "--sr", "22050", "--n-fft", "512",
                            "--hop-length", "256", "--db", "-j", str(jobs)],
                           check=True, capture_output=True)
            return time.perf_counter() - t

        def lib():
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            t = time.perf_counter()
            for f in sorted(os.listdir(src)):
                y, _ = librosa.load(os.path.join(src, f), sr=22050)
                S = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=512, hop_length=256, n_mels=128)
                np.save(os.path.join(out, f + ".npy"), librosa.power_to_db(S, top_db=80.0).astype(np.float32))
            return time.perf_counter() - t

        def lib_pool(pool):
            shutil.rmtree(out, ignore_errors=True)
            os.makedirs(out)
            t = time.perf_counter()
            pool.map(lib_one, [(src, out, f) for f in sorted(os.listdir(src))], chunksize=1)
            return time.perf_counter() - t

        import multiprocessing
        mirkit(a.jobs)  # warm-up (page cache)
        lib()
        pairs = []
        for _ in range(a.pairs):
            pairs.append((mirkit(1), mirkit(a.jobs)))
        t_lib = min(lib() for _ in range(2))
        with multiprocessing.get_context("fork").Pool(a.jobs) as pool:
            lib_pool(pool)  # every worker imports and compiles (numba) before timing
            t_pool = min(lib_pool(pool) for _ in range(2))
    ratios = [p / q for p, q in pairs]
    t1 = statistics.median(p for p, _ in pairs)
    tn = statistics.median(q for _, q in pairs)
    print("pairs (1 job, %d jobs) s:" % a.jobs, [(round(p, 3), round(q, 3)) for p, q in pairs])
    print(f"{a.files} one-minute 44.1 kHz stereo WAVs -> 22.05 kHz log-mel .npy: librosa (1 process) {t_lib:.2f} s, "
          f"mirkit -j 1 {t1:.2f} s ({t_lib / t1:.1f}x librosa), -j {a.jobs} {tn:.2f} s; "
          f"{a.jobs} jobs vs 1: median {statistics.median(ratios):.2f}x (range {min(ratios):.2f}-{max(ratios):.2f})")
    print(f"librosa with a warm pool of {a.jobs} processes {t_pool:.2f} s; mirkit -j {a.jobs} is "
          f"{t_pool / tn:.1f}x faster (best of 2 pool runs against the median of mirkit's)")


if __name__ == "__main__":
    main()
