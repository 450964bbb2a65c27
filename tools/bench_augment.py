#!/usr/bin/env python3
"""Times librosa.effects.pitch_shift (+2 semitones) and time_stretch (rate 1.25) on 30 s
of music at 22.05 kHz, one thread, against mirkit-augment on the same samples (and
audiomentations' PitchShift/TimeStretch when it is installed), and prints the ratios.

Usage (repository root): python3 tools/bench_augment.py [--repeats 5]
"""
import argparse
import json
import os
import subprocess
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
import numpy as np  # noqa: E402
import librosa  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(ROOT, "data", "clips", "brahms_hungarian_dance_5.hq.ogg")


def med(f, n):
    f()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    y, sr = librosa.load(CLIP, sr=22050, duration=30.0)
    tmp = os.path.join(tempfile.gettempdir(), "mirkit_bench_aug_30s.npy")
    np.save(tmp, y)
    res = {
        "librosa_pitch_shift_s": med(lambda: librosa.effects.pitch_shift(y, sr=sr, n_steps=2), a.repeats),
        "librosa_time_stretch_s": med(lambda: librosa.effects.time_stretch(y, rate=1.25), a.repeats),
    }
    try:
        from audiomentations import PitchShift, TimeStretch
        ps = PitchShift(min_semitones=2, max_semitones=2, p=1.0)
        ts = TimeStretch(min_rate=1.25, max_rate=1.25, leave_length_unchanged=False, p=1.0)
        res["audiomentations_pitch_shift_s"] = med(lambda: ps(samples=y, sample_rate=sr), a.repeats)
        res["audiomentations_time_stretch_s"] = med(lambda: ts(samples=y, sample_rate=sr), a.repeats)
    except ImportError:
        res["audiomentations"] = "not installed"
    out = subprocess.run(["cargo", "run", "--release", "-q", "--example", "bench_augment", "--", tmp, str(a.repeats)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rs = json.loads(out.strip().splitlines()[-1])
    res.update({f"mirkit_{k}": v for k, v in rs.items()})
    res["pitch_shift_speedup_vs_librosa"] = res["librosa_pitch_shift_s"] / rs["pitch_shift_librosa_mode_s"]
    res["time_stretch_speedup_vs_librosa"] = res["librosa_time_stretch_s"] / rs["time_stretch_librosa_mode_s"]
    res["librosa"] = librosa.__version__
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
