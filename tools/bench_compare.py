#!/usr/bin/env python3
"""Times log-mel extraction in librosa 0.11 and torchaudio 2.5 (one thread each) and in
mirkit on the same 10 minutes of 22.05 kHz audio, and prints the ratios.

Work: n_fft 512, hop 256, 128 mels, power 2, power_to_db (ref 1, amin 1e-10, top_db 80).
Input: the Brahms clip (data/clips) loaded at 22.05 kHz with librosa and tiled to 600 s,
saved as float32 .npy that mirkit's timing example reads, so both sides see the same
samples.

Usage (from the repository root, after `pip install -r tools/requirements.txt`):
    python3 tools/bench_compare.py [--repeats 7]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import librosa  # noqa: E402
import torch  # noqa: E402
import torchaudio  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIP = os.path.join(ROOT, "data", "clips", "brahms_hungarian_dance_5.hq.ogg")


def median_time(f, repeats):
    f()  # warm-up (numba JIT, plan caches)
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=7)
    a = ap.parse_args()
    torch.set_num_threads(1)
    y, _ = librosa.load(CLIP, sr=22050)
    y = np.resize(y, 600 * 22050).astype(np.float32)
    tmp = os.path.join(tempfile.gettempdir(), "mirkit_bench_10min_22050.npy")
    np.save(tmp, y)

    def lib():
        S = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=512, hop_length=256, n_mels=128)
        return librosa.power_to_db(S, top_db=80.0)

    mel = torchaudio.transforms.MelSpectrogram(sample_rate=22050, n_fft=512, hop_length=256, n_mels=128,
                                               norm="slaney", mel_scale="slaney", pad_mode="constant")
    todb = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0)
    x = torch.from_numpy(y)

    def ta():
        with torch.no_grad():
            return todb(mel(x))

    t_lib = median_time(lib, a.repeats)
    t_ta = median_time(ta, a.repeats)
    out = subprocess.run(["cargo", "run", "--release", "-q", "--example", "bench_features", "--", tmp, str(a.repeats)],
                         cwd=ROOT, check=True, capture_output=True, text=True).stdout
    rs = json.loads(out.strip().splitlines()[-1])
    res = {
        "librosa_s": t_lib, "torchaudio_s": t_ta, "mirkit_s": rs["logmel_s"],
        "mirkit_fft_f64_only_s": rs["fft_f64_s"], "mirkit_fft_f32_only_s": rs["fft_f32_s"],
        "speedup_vs_librosa": t_lib / rs["logmel_s"], "speedup_vs_torchaudio": t_ta / rs["logmel_s"],
        "mirkit_over_fft_f64": rs["logmel_over_fft_f64"],
        "parallel_files_speedup": rs["parallel_speedup"],
        "parallel_files_speedup_range": [rs["parallel_speedup_min"], rs["parallel_speedup_max"]],
        "parallel_bare_fft_speedup": rs["parallel_fft_only_speedup"], "threads": rs["threads"],
        "versions": {"librosa": librosa.__version__, "torch": torch.__version__, "torchaudio": torchaudio.__version__,
                     "numpy": np.__version__, "python": sys.version.split()[0]},
    }
    print(json.dumps(res, indent=1))
    print(f"log-mel, 10 min @ 22.05 kHz, one thread: librosa {t_lib:.3f} s, torchaudio {t_ta:.3f} s, "
          f"mirkit {rs['logmel_s']:.3f} s  ->  {t_lib / rs['logmel_s']:.1f}x librosa, "
          f"{t_ta / rs['logmel_s']:.1f}x torchaudio; mirkit / FFTs alone = {rs['logmel_over_fft_f64']:.2f}; "
          f"{rs['threads']} cores on many files: {rs['parallel_speedup']:.2f}x "
          f"(bare FFTs of the same files: {rs['parallel_fft_only_speedup']:.2f}x)")


if __name__ == "__main__":
    main()
