#!/usr/bin/env python3
"""Model speed, PyTorch side of examples/bench_models.rs: the same models (SampleCNN with
the published widths on 59 049 samples; the short-chunk CNN, a 7-layer FCN, width 128 on
128 mels × 128 frames), batch 16, the same number of threads as the Rust side uses
(--threads, default: all cores), eval-mode forward and a training step (train-mode
forward, binary cross-entropy, backward, Adam), median of 3 after a warm-up; then the
same per-op shapes, and torch.profiler's top operators of one SampleCNN training step.
Runs the Rust example too and prints both and the ratios (mirkit time / PyTorch time).

Usage (repository root): python3 tools/bench_models.py [--threads N]
"""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from make_model_fixtures import SampleCNN, ShortChunk  # noqa: E402

B, REPS = 16, 3


def med(f):
    f()
    ts = []
    for _ in range(REPS):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[REPS // 2]


def bench(m, x):
    y = torch.zeros(B, 50)
    m.eval()

    def fwd():
        with torch.no_grad():
            m(x)
    f = med(fwd)
    m.train()
    opt = torch.optim.Adam(m.parameters(), lr=1e-4)

    def step():
        opt.zero_grad()
        loss = nn.functional.binary_cross_entropy(m(x), y)
        loss.backward()
        opt.step()
    return {"forward_s": f, "train_step_s": med(step)}


def main():
    threads = int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else os.cpu_count()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    full = [128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]
    res = {"torch": torch.__version__, "threads": threads}
    sc = SampleCNN(full)
    res["samplecnn"] = bench(sc, torch.randn(B, 59049) * 0.1)
    res["fcn_128x128"] = bench(ShortChunk(128, False), torch.randn(B, 1, 128, 128))
    ops = {}
    a = torch.randn(B, 128, 6561)
    w = torch.randn(128, 128, 3, requires_grad=True)
    with torch.no_grad():
        ops["conv1d 128→128 k3, L 6561: forward"] = med(lambda: nn.functional.conv1d(a, w, padding=1))

    def fb():
        w.grad = None
        nn.functional.conv1d(a, w, padding=1).sum().backward()
    ops["conv1d 128→128 k3, L 6561: forward + backward"] = med(fb)
    bn = nn.BatchNorm1d(128).train()
    with torch.no_grad():
        ops["batch norm (train) (16, 128, 6561)"] = med(lambda: bn(a))
        ops["max_pool1d 3 (16, 128, 6561)"] = med(lambda: nn.functional.max_pool1d(a, 3))
        b = torch.randn(B, 128, 64, 64)
        w2 = torch.randn(128, 128, 3, 3)
        ops["conv2d 128→128 3×3, 64×64: forward"] = med(lambda: nn.functional.conv2d(b, w2, padding=1))
        w2g = w2.clone().requires_grad_(True)

        def conv2d_step():
            nn.functional.conv2d(b, w2g, padding=1).sum().backward()
        with torch.enable_grad():
            ops["conv2d 128→128 3×3, 64×64: forward + backward"] = med(conv2d_step)
        ops["max_pool2d 2×2 (16, 128, 64, 64)"] = med(lambda: nn.functional.max_pool2d(b, 2))
    res["ops"] = ops
    # where PyTorch's own time goes in one SampleCNN training step
    sc.train()
    x, y = torch.randn(B, 59049) * 0.1, torch.zeros(B, 50)
    with torch.profiler.profile() as prof:
        nn.functional.binary_cross_entropy(sc(x), y).backward()
    top = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8)
    print(top, file=sys.stderr)
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    out = subprocess.run(["cargo", "run", "--release", "-q", "--example", "bench_models"], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True).stdout
    rs = json.loads(out)
    ratio = {k: {q: round(rs[k][q] / res[k][q], 2) for q in res[k]} for k in ("samplecnn", "fcn_128x128")}
    ratio["ops"] = {k: round(rs["ops"][k] / v, 2) for k, v in ops.items()}
    print(json.dumps({"pytorch": res, "mirkit": rs, "mirkit_over_pytorch": ratio}, indent=1))


if __name__ == "__main__":
    main()
