#!/usr/bin/env python3
"""End-to-end tagging: mirkit vs the original Python pipelines on a 10-minute 44.1 kHz WAV
and on a folder of 20 one-minute WAVs:
* `won2020-musicnn-mtat` vs librosa.load at 16 kHz + Won 2020's PyTorch Musicnn-MTAT with
  the authors' weights (3 s windows, batches of 16, mean of sigmoid scores);
* `musicnn-mtt` (mirkit's default) vs musicnn 0.1.0's own `musicnn.extractor` (librosa +
  TensorFlow; graph and session built per file, as its tagger does), for `tag` and, on the
  10-minute file, `embed` (penultimate layer, mean over windows, to .npy) — only with
  `--tf-python PYTHON`, an interpreter with TensorFlow and musicnn installed (see
  tools/make_musicnn_fixtures.py).
Each side runs as its own process; wall time and peak RSS (ru_maxrss of the child) are
reported. Both use their default threading on this machine.

Usage (repository root): python3 tools/bench_tag.py [--tf-python PATH]
"""
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WEIGHTS = os.path.join(ROOT, "..", "shared", "data", "weights", "won2020", "mtat", "musicnn.pth")


def python_pipeline(paths):
    # use torch's fastest kernels here (make_model_fixtures pins the portable ones otherwise)
    os.environ["ATEN_CPU_CAPABILITY"] = "avx512"
    import numpy as np
    import librosa
    import torch
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from make_model_fixtures import Musicnn
    m = Musicnn()
    m.load_state_dict(torch.load(WEIGHTS, map_location="cpu", weights_only=False), strict=True)
    m.eval()
    for p in paths:
        y, _ = librosa.load(p, sr=16000)
        n = len(y) // 48000
        x = torch.from_numpy(y[: n * 48000].reshape(n, 48000))
        with torch.no_grad():
            s = torch.cat([m(x[i:i + 16]) for i in range(0, n, 16)]).mean(0).numpy()
        print(p, float(s.max()))


def tf_pipeline(paths):
    from musicnn.extractor import extractor
    for p in paths:
        taggram, _ = extractor(p, model="MTT_musicnn", extract_features=False)
        print(p, float(taggram.mean(0).max()))


def tf_embed(path, out):
    """musicnn's penultimate layer (its 200-wide `penultimate` feature), mean over the
    windows, saved as .npy: the work of `mirkit embed --model musicnn-mtt`. Only the time
    is compared: under TensorFlow 2.16 the extractor returned the same `penultimate` row
    for every window of a batch (while its per-window tag scores differ and match
    mirkit's), so its values are not a reference; the layer's parity is tested on the
    fixture patches (tools/make_musicnn_fixtures.py, crates/mirkit-models/tests)."""
    import numpy as np
    from musicnn.extractor import extractor
    _, _, features = extractor(path, model="MTT_musicnn", extract_features=True)
    np.save(out, features["penultimate"].mean(0).astype(np.float32))


WRAP = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
        "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL); "
        "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0)")


def run(cmd):
    """Wall time and peak RSS (MB) of `cmd`, measured by a fresh wrapper process."""
    out = subprocess.run([sys.executable, "-c", WRAP] + cmd, check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1])


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--python":
        python_pipeline(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--tf":
        tf_pipeline(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--tf-embed":
        tf_embed(sys.argv[2], sys.argv[3])
        return
    tf_python = sys.argv[sys.argv.index("--tf-python") + 1] if "--tf-python" in sys.argv else None
    import numpy as np
    import librosa
    import soundfile as sf
    subprocess.run(["cargo", "build", "--release", "-q"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    mirkit = os.path.join(target, "release", "mirkit")
    d = tempfile.mkdtemp(prefix="mirkit-bench-tag-")
    y, sr = librosa.load(os.path.join(ROOT, "data", "clips", "brahms_hungarian_dance_5.hq.ogg"), sr=None, mono=False)
    long = os.path.join(d, "ten_minutes.wav")
    sf.write(long, np.resize(y, (2, 600 * sr)).T, sr)
    folder = os.path.join(d, "folder")
    os.makedirs(folder)
    for i in range(20):
        sf.write(os.path.join(folder, f"{i:02d}.wav"), np.roll(np.resize(y, (2, 60 * sr)), i * 1000, axis=1).T, sr)
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    res = {}
    # each measurement in a fresh interpreter so ru_maxrss is that run's
    for name, args in [("10-minute file", [long]), ("20 one-minute files", files)]:
        target_arg = folder if len(args) > 1 else long
        w_py = run([sys.executable, __file__, "--python"] + args)
        w_rs = run([mirkit, "tag", "--model", "won2020-musicnn-mtat", target_arg])
        res[name] = {"won2020-musicnn-mtat": {
            "python_s": round(w_py[0], 2), "python_peak_rss_mb": round(w_py[1], 1),
            "mirkit_s": round(w_rs[0], 2), "mirkit_peak_rss_mb": round(w_rs[1], 1), "speedup": round(w_py[0] / w_rs[0], 2)}}
        if tf_python:
            env_wrap = [tf_python, __file__, "--tf"]
            os.environ["TF_USE_LEGACY_KERAS"] = "1"
            w_tf = run(env_wrap + args)
            w_rs = run([mirkit, "tag", "--model", "musicnn-mtt", target_arg])
            res[name]["musicnn-mtt"] = {
                "musicnn_tf_s": round(w_tf[0], 2), "musicnn_tf_peak_rss_mb": round(w_tf[1], 1),
                "mirkit_s": round(w_rs[0], 2), "mirkit_peak_rss_mb": round(w_rs[1], 1), "speedup": round(w_tf[0] / w_rs[0], 2)}
            if len(args) == 1:
                # the embedding (penultimate layer, mean over windows) written to .npy
                e_tf = run([tf_python, __file__, "--tf-embed", long, os.path.join(d, "tf_embed.npy")])
                e_rs = run([mirkit, "embed", "--model", "musicnn-mtt", long, "-o", os.path.join(d, "embed.npy")])
                res[name]["musicnn-mtt embed"] = {
                    "musicnn_tf_s": round(e_tf[0], 2), "musicnn_tf_peak_rss_mb": round(e_tf[1], 1),
                    "mirkit_s": round(e_rs[0], 2), "mirkit_peak_rss_mb": round(e_rs[1], 1),
                    "speedup": round(e_tf[0] / e_rs[0], 2)}

    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
