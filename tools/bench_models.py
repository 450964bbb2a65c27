#!/usr/bin/env python3
"""The zoo's networks in mirkit and in PyTorch, side by side, in one run.

Every architecture of examples/bench_models.rs (same names, input shapes and batch) is
built in PyTorch from tools/make_model_fixtures.py (the modules the parity fixtures come
from; musicnn 0.1.0's musicnn and VGG from tools/musicnn_torch.py, a port loaded with the
same weights and checked against musicnn's TensorFlow outputs first) and timed the same way: an eval-mode forward under torch.no_grad() and a training
step (train-mode forward, binary cross-entropy, backward, Adam step; none for the
inference-only musicnn 0.1.0 graphs), median of --reps
runs after one warm-up (or of as many runs as fill half a second, up to 1000, when that is
more: the sub-millisecond 1-D CNN), torch.set_num_threads(--threads). After each model's
PyTorch timing the Rust example times the same model (RAYON_NUM_THREADS=--threads; model
by model, so that a burst of load on a shared machine falls on both sides of one row
rather than on one side of many), and the table of both and the ratio (mirkit time /
PyTorch time; < 1 means mirkit is faster) is printed, with peak memory of each side's training
run when --memory is given (each model in its own process, so peaks do not mix).

Usage (repository root, a release build of the example is made by cargo):
  python3 tools/bench_models.py [--threads 2] [--batch 16] [--models a,b] [--reps 3]
                                [--no-train] [--json out.json]
  python3 tools/bench_models.py --memory [--batch 16] [--threads 2] [--models a,b]

Both sides run with the same allocator setting: glibc keeps freed large blocks for reuse
(mirkit_core::alloc::keep_freed_memory on mirkit's side, mallopt here before torch is
imported; --torch-default-malloc leaves PyTorch at glibc's defaults, as every run before
2026-12-07's twenty-first session did).

Reference versions: torch 2.5.1, torchaudio 2.5.1 (tools/requirements.txt).
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tools"))

_USER_CAP = os.environ.get("ATEN_CPU_CAPABILITY")


def keep_freed_memory():
    """The allocator setting mirkit's side runs with (mirkit_core::alloc::keep_freed_memory,
    called by examples/bench_models.rs and the mirkit command): glibc keeps freed large
    blocks on its heap instead of returning them with munmap, so a tensor of tens of MB
    is not page-faulted in and zeroed by the kernel again on every operation. Applied to
    this process before torch allocates anything, so that both sides run with the same
    allocator. Without it PyTorch's times depend on the heap's history: the short-chunk
    ResNet's one-thread forward took 0.58 s alone and ~0.40 s after other models had
    left a heap to reuse (the "two modes" of earlier reports), 0.383-0.387 s with it."""
    import ctypes
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    # M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3 (malloc.h)
    return libc.mallopt(-3, 2**31 - 1) == 1 and libc.mallopt(-1, 2**31 - 1) == 1


KEEP = "--torch-default-malloc" not in sys.argv and keep_freed_memory()
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import make_model_fixtures as mf  # noqa: E402

# make_model_fixtures pins ATen's portable kernels for bit-stable fixtures; timings use
# the machine's best (ATen reads the variable lazily, at the first kernel dispatch)
if _USER_CAP is None:
    os.environ.pop("ATEN_CPU_CAPABILITY", None)

ALL = ["samplecnn", "samplecnn_se", "rese2", "fcn4", "cnn1d", "shortchunk_cnn",
       "shortchunk_res", "won2020_fcn", "won2020_crnn", "won2020_musicnn", "musicnn_mtt",
       "vgg_mtt"]
# musicnn 0.1.0's graphs: pretrained, inference only in mirkit (no training step); the
# PyTorch side is tools/musicnn_torch.py's port with the same weights, checked against
# musicnn's TensorFlow outputs before it is timed
INFERENCE_ONLY = {"musicnn_mtt", "vgg_mtt"}
FULL = [128, 128, 128, 256, 256, 256, 256, 256, 256, 512, 512]


def won_body(cls, frames):
    """A Won 2020 network after its mel front end: input (B, 1, 96, frames), spec_bn first."""
    m = cls()
    m.front = lambda x: m.spec_bn(x)
    return m, (1, 96, frames)


def build(name):
    """(module, input shape without the batch) for one zoo name."""
    if name in ("samplecnn", "samplecnn_se"):
        return mf.SampleCNN(FULL, se=name.endswith("_se")), (59049,)
    if name == "rese2":
        return mf.ReSE2Multi(), (59049,)
    if name == "fcn4":
        return mf.FCN4(), (96, 1366)
    if name == "cnn1d":
        return mf.Dieleman1d(), (128, 94)
    if name in ("shortchunk_cnn", "shortchunk_res"):
        return mf.ShortChunk(128, name.endswith("_res")), (1, 128, 128)
    if name == "won2020_fcn":
        return won_body(mf.FCN, 464000 // 256 + 1)
    if name == "won2020_crnn":
        return won_body(mf.CRNN, 464000 // 256 + 1)
    if name == "won2020_musicnn":
        return won_body(mf.Musicnn, 48000 // 256 + 1)
    if name in INFERENCE_ONLY:
        import musicnn_torch
        model = name.replace("_", "-")
        m = musicnn_torch.load(model)
        d = musicnn_torch.check(model, m)
        if d > 1e-4:
            raise SystemExit(f"the PyTorch port of {model} differs from TensorFlow by {d:.2e}")
        return m, (187, 96)
    raise SystemExit(f"unknown model {name}")


# at least `reps` runs, and as many more as fit in MIN_TOTAL_S (at most MAX_REPS): a
# median of three sub-millisecond runs measures thread wake-ups and cold caches, not the
# work (examples/bench_models.rs times mirkit by the same rule)
MIN_TOTAL_S = 0.5
MAX_REPS = 1000


def med(f, reps):
    f()
    ts = []
    start = time.perf_counter()
    while len(ts) < max(reps, 1) or (
            len(ts) < MAX_REPS and time.perf_counter() - start < MIN_TOTAL_S):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]


def bench(name, batch, reps, train):
    torch.manual_seed(0)
    m, shape = build(name)
    scale = 0.1 if len(shape) == 1 else 1.0
    x = torch.randn(batch, *shape) * scale
    m.eval()

    def fwd():
        with torch.no_grad():
            m(x)
    res = {"forward_s": med(fwd, reps)}
    if train and name not in INFERENCE_ONLY:
        y = torch.zeros(batch, 50)
        m.train()
        opt = torch.optim.Adam(m.parameters(), lr=1e-4)

        def step():
            opt.zero_grad()
            nn.functional.binary_cross_entropy(m(x), y).backward()
            opt.step()
        res["train_step_s"] = med(step, reps)
    return res


def secs(t):
    """A time for the table: milliseconds below 0.1 s, else seconds."""
    return f"{t * 1e3:.2f} ms" if t < 0.1 else f"{t:.3f} s"


def build_example():
    """Builds the Rust example (release) and returns its path."""
    subprocess.run(["cargo", "build", "--release", "-q", "--example", "bench_models"], cwd=ROOT,
                   check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "examples", "bench_models")


def peak_kb(cmd, env=None):
    """Peak resident memory (kB) of one command, from GNU time."""
    r = subprocess.run(["/usr/bin/time", "-f", "PEAK %M"] + cmd, cwd=ROOT, env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=True)
    return int([line for line in r.stderr.splitlines() if line.startswith("PEAK ")][-1].split()[1])


def memory(models, batch, threads):
    """Peak memory of a training run (warm-up step + one timed step) per model, each side
    in its own process."""
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    exe = build_example()
    rows = {}
    for n in models:
        py = peak_kb([sys.executable, __file__, "--one", n, "--batch", str(batch),
                      "--threads", str(threads)])
        rs = peak_kb([exe, "--models", n, "--batch", str(batch), "--reps", "1"], env)
        rows[n] = {"pytorch_mb": py / 1024, "mirkit_mb": rs / 1024}
        print(f"memory {n}: PyTorch {py / 1024:.0f} MB, mirkit {rs / 1024:.0f} MB", file=sys.stderr)
    return rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--models", default=",".join(ALL))
    ap.add_argument("--no-train", action="store_true")
    ap.add_argument("--json")
    ap.add_argument("--torch-default-malloc", action="store_true",
                    help="leave glibc's default large-block policy on the PyTorch side "
                         "(mirkit's side always keeps freed memory)")
    ap.add_argument("--memory", action="store_true",
                    help="only peak memory of a training run per model, both sides")
    ap.add_argument("--one", help=argparse.SUPPRESS)  # child of --memory
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.one:
        bench(a.one, a.batch, 1, True)
        return
    models = a.models.split(",")
    if a.memory:
        rows = memory(models, a.batch, a.threads)
        print(f"\n{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, batch {a.batch}, "
              "peak resident memory of a training run (warm-up step + one step)\n")
        print("| model | PyTorch | mirkit | ratio |\n|---|---|---|---|")
        for n, r in rows.items():
            print(f"| {n} | {r['pytorch_mb']:.0f} MB | {r['mirkit_mb']:.0f} MB | "
                  f"{r['mirkit_mb'] / r['pytorch_mb']:.2f}× |")
        if a.json:
            with open(a.json, "w") as f:
                json.dump(rows, f, indent=1)
        return
    # model by model, PyTorch then mirkit, so that a burst of load on this shared machine
    # falls on both sides of a row rather than on one side of many
    exe = build_example()
    env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
    py, rs = {}, {}
    for n in models:
        py[n] = bench(n, a.batch, a.reps, not a.no_train)
        print(f"pytorch {n}: {py[n]}", file=sys.stderr)
        cmd = [exe, "--batch", str(a.batch), "--reps", str(a.reps), "--models", n]
        if a.no_train:
            cmd.append("--no-train")
        rs[n] = json.loads(subprocess.run(cmd, cwd=ROOT, env=env, check=True,
                                          stdout=subprocess.PIPE, text=True).stdout)[n]
        if a.json:  # kept if a later model fails
            with open(a.json, "w") as f:
                json.dump({"pytorch": py, "mirkit": rs}, f, indent=1)
    date = time.strftime("%Y-%m-%d")
    print(f"\n{date}, torch {torch.__version__}, {a.threads} thread(s), batch {a.batch}, "
          f"median of ≥ {a.reps} runs filling ≥ {MIN_TOTAL_S} s, PyTorch's allocator "
          f"{'keeping freed memory as mirkit' if KEEP else 'at glibc defaults'}\n")
    print("| model | PyTorch forward | mirkit forward | ratio | PyTorch step | mirkit step | ratio |")
    print("|---|---|---|---|---|---|---|")
    out = {"date": date, "torch": torch.__version__, "threads": a.threads, "batch": a.batch,
           "torch_keeps_freed_memory": KEEP,
           "pytorch": py, "mirkit": rs}
    for n in models:
        p, r = py[n], rs[n]
        row = [n, secs(p['forward_s']), secs(r['forward_s']),
               f"{r['forward_s'] / p['forward_s']:.2f}×"]
        if "train_step_s" in p:
            row += [secs(p['train_step_s']), secs(r['train_step_s']),
                    f"{r['train_step_s'] / p['train_step_s']:.2f}×"]
        else:
            row += ["", "", ""]
        print("| " + " | ".join(row) + " |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
