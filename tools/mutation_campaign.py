#!/usr/bin/env python3
"""Mutation campaign through the CLI (issue #19, item 2).

Makes seeded mutants of real audio files in every format the repository holds (header
fields set to 0 or to their maximum, truncation, flipped bytes, zeroed ranges) and runs
each through `mirkit info`, `mirkit features` and `mirkit tag` under a time limit and an
address-space cap. A run may succeed (exit 0) or refuse the file (exit 1, or 2 for a
usage error) — anything else is a finding: a panic (exit 101), a signal (abort, segfault,
killed for memory), a hang (time limit) or an exit 0 that wrote nothing.

Usage:
  python3 tools/mutation_campaign.py --bin target/release/mirkit [--mutants 1500]
      [--seed 0] [--jobs 2] [--timeout 30] [--mem-mb 2048] [--keep DIR]

Prints a table per seed format and command (runs, ok, refused, findings, peak RSS) and
writes every finding's mutant into --keep (default /tmp/mirkit-mutants) with the
command line that failed, to be minimised into a regression test. Exit status 1 when
anything was found. Standard library only.
"""
import argparse
import collections
import concurrent.futures as cf
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted(
    [p for p in (ROOT / "tests/fixtures/formats").iterdir() if p.name not in ("not_audio.mp3", "nan_f32.wav")]
    + [ROOT / "data/clips/sorohanro_-_solo-trumpet-06.hq.ogg"]
)
COMMANDS = ("info", "features", "tag")


def mutate(data: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One mutant of `data` and a short description of what was done."""
    b = bytearray(data)
    n = len(b)
    kind = rng.choice(["field0", "fieldmax", "field0", "fieldmax", "truncate", "flip", "zero"])
    if kind in ("field0", "fieldmax"):
        # header fields live near the start: RIFF/AIFF/FLAC STREAMINFO/MP4 boxes/Ogg pages
        width = rng.choice([1, 2, 4])
        limit = min(n - width, 512 if rng.random() < 0.8 else n - width)
        off = rng.randrange(0, max(1, limit))
        b[off:off + width] = (b"\x00" if kind == "field0" else b"\xff") * width
        return bytes(b), f"{kind} off={off} width={width}"
    if kind == "truncate":
        cut = rng.randrange(0, n)
        return bytes(b[:cut]), f"truncate at {cut}"
    if kind == "flip":
        k = rng.choice([1, 4, 16, 64])
        offs = [rng.randrange(0, n) for _ in range(k)]
        for o in offs:
            b[o] ^= 1 << rng.randrange(8)
        return bytes(b), f"flip {k} bits"
    start = rng.randrange(0, n)
    length = rng.choice([4, 64, 1024, 16384])
    b[start:start + length] = bytes(min(length, n - start))
    return bytes(b), f"zero {length} at {start}"


def limit(mem_mb: int):
    def f():
        resource.setrlimit(resource.RLIMIT_AS, (mem_mb << 20, mem_mb << 20))
        os.setsid()
    return f


def run_one(bin_path, cmd, path, out_dir, timeout, mem_mb):
    """(command, outcome, exit code or signal, peak RSS in MB, seconds)."""
    out = Path(out_dir) / (path.name + f".{cmd}.out")
    if cmd == "info":
        argv = [bin_path, "info", str(path)]
    elif cmd == "features":
        argv = [bin_path, "features", str(path), "-o", str(out.with_suffix(".npy")), "--sr", "16000"]
    else:
        argv = [bin_path, "tag", str(path), "--format", "json"]
    env = dict(os.environ, RAYON_NUM_THREADS="1")
    t0 = time.time()
    err_path = Path(out_dir) / (path.name + f".{cmd}.stderr")
    with open(os.devnull, "wb") as null, open(err_path, "wb") as err:
        p = subprocess.Popen(argv, stdout=null, stderr=err, env=env, preexec_fn=limit(mem_mb))
    # wait4: this child's own peak RSS
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if time.time() - t0 > timeout:
            os.killpg(p.pid, signal.SIGKILL)
            os.wait4(p.pid, 0)
            return cmd, "hang", None, 0.0, time.time() - t0, argv, b""
        time.sleep(0.01)
    p.returncode = code = os.waitstatus_to_exitcode(status)
    stderr = err_path.read_bytes()
    secs = time.time() - t0
    rss = ru.ru_maxrss / 1024
    if code == 0:
        if cmd == "features" and not out.with_suffix(".npy").exists():
            return cmd, "exit 0, no output", code, rss, secs, argv, stderr
        outcome = "ok"
    elif code in (1, 2):
        outcome = "refused"
        if b"panicked" in stderr:
            outcome = "panic (caught)"
    elif code == 101:
        outcome = "panic"
    elif code < 0:
        outcome = f"signal {signal.Signals(-code).name}"
    else:
        outcome = f"exit {code}"
    for f in Path(out_dir).glob(f"{path.name}.{cmd}.*"):
        f.unlink()
    return cmd, outcome, code, rss, secs, argv, stderr


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target/release/mirkit"))
    ap.add_argument("--mutants", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--mem-mb", type=int, default=2048)
    ap.add_argument("--keep", default="/tmp/mirkit-mutants")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = Path(tempfile.mkdtemp(prefix="mirkit-campaign-"))
    keep = Path(a.keep)
    keep.mkdir(parents=True, exist_ok=True)
    mutants = []
    for i in range(a.mutants):
        seed_file = SEEDS[i % len(SEEDS)]
        data, what = mutate(seed_file.read_bytes(), rng)
        p = work / f"m{i:05d}{seed_file.suffix}"
        p.write_bytes(data)
        mutants.append((p, seed_file, what))
    print(f"{len(mutants)} mutants of {len(SEEDS)} files in {work}; {len(COMMANDS)} commands each, "
          f"{a.jobs} at a time, {a.timeout:.0f} s and {a.mem_mb} MB per run", flush=True)
    table = collections.defaultdict(collections.Counter)
    findings = []
    peak = collections.defaultdict(float)
    t0 = time.time()
    with cf.ThreadPoolExecutor(a.jobs) as ex:
        futs = {}
        for p, seed_file, what in mutants:
            for cmd in COMMANDS:
                f = ex.submit(run_one, a.bin, cmd, p, work, a.timeout, a.mem_mb)
                futs[f] = (p, seed_file, what)
        for k, f in enumerate(cf.as_completed(futs)):
            p, seed_file, what = futs[f]
            cmd, outcome, code, rss, secs, argv, stderr = f.result()
            fmt = seed_file.suffix.lstrip(".") + ("" if seed_file.parent.name == "formats" else " (clip)")
            if seed_file.suffix == ".wav" or "alac" in seed_file.name:
                fmt = seed_file.name
            table[(fmt, cmd)][outcome] += 1
            peak[(fmt, cmd)] = max(peak[(fmt, cmd)], rss)
            if outcome not in ("ok", "refused"):
                dest = keep / p.name
                shutil.copy(p, dest)
                findings.append((outcome, cmd, dest, what, seed_file.name, stderr.decode(errors="replace")[-300:]))
            if (k + 1) % 500 == 0:
                print(f"  {k + 1} runs, {len(findings)} findings, {time.time() - t0:.0f} s", flush=True)
    print(f"\n{'seed':24} {'command':9} {'runs':>5} {'ok':>5} {'refused':>7} {'findings':>8} {'peak MB':>8}")
    for (fmt, cmd), c in sorted(table.items()):
        bad = sum(v for k, v in c.items() if k not in ("ok", "refused"))
        print(f"{fmt:24} {cmd:9} {sum(c.values()):5} {c['ok']:5} {c['refused']:7} {bad:8} {peak[(fmt, cmd)]:8.0f}")
    total = sum(sum(c.values()) for c in table.values())
    print(f"\n{total} runs in {time.time() - t0:.0f} s; findings: {len(findings)}")
    for outcome, cmd, dest, what, seed, err in findings:
        print(f"  {outcome}: mirkit {cmd} {dest}  ({seed}, {what})\n    {err.strip().splitlines()[-1] if err.strip() else ''}")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
