#!/usr/bin/env python3
"""Keep a reused Cargo build directory from filling the disk (called by `.ci/run`).

CI and sessions reuse one `CARGO_TARGET_DIR` outside the checkout, so a clean checkout
does not rebuild Candle each time. Every change to a test or a crate it links leaves the
old test executable behind under `<profile>/deps/NAME-HASH`; with debug info they were
~450 MB each and the disk filled (the doctests then failed to link: "No space left on
device"). This script removes what a later build never reads:

- `<profile>/incremental/` (`.ci/run` builds with `CARGO_INCREMENTAL=0`);
- without `--current` (before a build): the whole `debug/` profile when the disk has less
  than `--min-free-gib` free (the next `cargo test` rebuilds it; slower, but it does not
  fail for want of space);
- with `--current FILE` (the JSON messages of `cargo test --no-run --message-format=json`,
  `-` for stdin): every executable in `debug/deps/` that this build did not produce, i.e.
  test binaries of earlier builds (if one were still wanted, cargo would relink it).

Libraries (`.rlib`, `.rmeta`) are left alone: several hashes of one crate are normal
(different features for build scripts, tests and the wheel).

Usage: tools/sweep_target.py [TARGET_DIR] [--min-free-gib N] [--current FILE|-]
"""

import argparse
import json
import os
import shutil
import stat
import sys
from pathlib import Path


def free_gib(path: Path) -> float:
    s = os.statvfs(path)
    return s.f_bavail * s.f_frsize / 2**30


def is_executable(p: Path) -> bool:
    try:
        st = p.stat()
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and bool(st.st_mode & stat.S_IXUSR) and "." not in p.name


def sweep_incremental(profile: Path) -> int:
    """Remove one profile's incremental state; return the bytes freed."""
    inc = profile / "incremental"
    if not inc.is_dir():
        return 0
    freed = dir_size(inc)
    shutil.rmtree(inc, ignore_errors=True)
    return freed


def current_executables(messages) -> set:
    """The executables named by cargo's JSON build messages (one JSON object per line)."""
    keep = set()
    for line in messages:
        line = line.strip()
        if not line.startswith("{"):
            continue
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            try:
                st = os.stat(msg["executable"])
            except OSError:
                continue
            # by inode: cargo names the uplifted hard link (debug/mirkit) for a binary
            keep.add((st.st_dev, st.st_ino))
    return keep


def sweep_stale_tests(deps: Path, keep: set) -> int:
    """Remove executables in `deps` that are not in `keep`; return the bytes freed."""
    freed = 0
    for p in deps.iterdir():
        if not is_executable(p):
            continue
        st = p.stat()
        if (st.st_dev, st.st_ino) not in keep:
            freed += st.st_size
            p.unlink()
    return freed


def dir_size(d: Path) -> int:
    total = 0
    for root, _, files in os.walk(d):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "target",
        nargs="?",
        default=os.environ.get("CARGO_TARGET_DIR", "target"),
        help="the build directory (default: $CARGO_TARGET_DIR, else ./target)",
    )
    ap.add_argument("--min-free-gib", type=float, default=12.0)
    ap.add_argument(
        "--current",
        metavar="FILE",
        help="cargo's JSON messages of the test build just made ('-': stdin); executables "
        "in debug/deps it does not name are removed",
    )
    args = ap.parse_args()
    target = Path(args.target)
    keep = None
    if args.current:
        src = sys.stdin if args.current == "-" else open(args.current)
        keep = current_executables(src)
        if not keep:
            print("sweep: cargo named no executables; not removing any", file=sys.stderr)
            keep = None
    if not target.is_dir():
        print(f"sweep: {target} does not exist yet; nothing to do")
        return 0
    freed = 0
    for profile in sorted(p for p in target.iterdir() if p.is_dir()):
        if (profile / "deps").is_dir():
            freed += sweep_incremental(profile)
    if keep is not None and (target / "debug" / "deps").is_dir():
        freed += sweep_stale_tests(target / "debug" / "deps", keep)
    left = free_gib(target)
    print(f"sweep: freed {freed / 2**30:.1f} GiB in {target}; {left:.1f} GiB free")
    # only before a build: after one (--current) the debug profile is what was just built
    if not args.current and left < args.min_free_gib and (target / "debug").is_dir():
        size = dir_size(target / "debug")
        shutil.rmtree(target / "debug", ignore_errors=True)
        print(
            f"sweep: under {args.min_free_gib} GiB free: removed {target / 'debug'} "
            f"({size / 2**30:.1f} GiB; rebuilt by the next cargo test); "
            f"{free_gib(target):.1f} GiB free"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
