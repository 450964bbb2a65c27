#!/usr/bin/env python3
"""Load run (issue #19, item 4): a folder of N short files tagged and embedded with the
default threads. Checks that every file has a result, and records wall time and peak
RSS of each command (wait4), with the RSS of a 10-file run for comparison (flat memory:
the peak must not grow with the number of files).

Usage: python3 tools/load_run.py --bin target/release/mirkit [--files 1000] [--seconds 3]
Standard library only; the files are cut from the repository's trumpet clip (WAV,
22.05 kHz mono, each with a different offset so no two are identical).
"""
import argparse, csv, json, os, shutil, subprocess, sys, tempfile, time, wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def peak_run(argv):
    """(exit code, stdout, stderr, seconds, peak RSS MB) of one process."""
    t0 = time.time()
    with tempfile.TemporaryFile() as o, tempfile.TemporaryFile() as e:
        p = subprocess.Popen(argv, stdout=o, stderr=e)
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.time() - t0
        o.seek(0), e.seek(0)
        return os.waitstatus_to_exitcode(status), o.read(), e.read(), secs, ru.ru_maxrss / 1024


def make_files(folder: Path, n: int, seconds: float, bin_path: str):
    src = folder / "_src.wav"
    subprocess.run([bin_path, "augment", str(ROOT / "data/clips/sorohanro_-_solo-trumpet-06.hq.ogg"),
                    "-o", str(src), "--sr", "22050", "--format", "pcm16", "-q"], check=True)
    with wave.open(str(src)) as w:
        rate, frames = w.getframerate(), w.readframes(w.getnframes())
    src.unlink()
    per = int(seconds * rate) * 2
    for i in range(n):
        off = (i * 2 * 331) % max(2, len(frames) - per)
        off -= off % 2
        with wave.open(str(folder / f"f{i:05d}.wav"), "wb") as w:
            w.setnchannels(1), w.setsampwidth(2), w.setframerate(rate)
            w.writeframes(frames[off:off + per])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=str(ROOT / "target/release/mirkit"))
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mirkit-load-"))
    ok = True
    try:
        rows = []
        for n in (10, a.files):
            folder = work / f"in{n}"
            folder.mkdir()
            make_files(folder, n, a.seconds, a.bin)
            code, out, err, secs, rss = peak_run([a.bin, "tag", str(folder), "--format", "json",
                                                  "-o", str(work / f"tags{n}.json")])
            tags = json.loads((work / f"tags{n}.json").read_text()) if code == 0 else []
            good = code == 0 and len(tags) == n and len({t["file"] for t in tags}) == n
            rows.append(("tag", n, secs, rss, good))
            code, out, err, secs, rss = peak_run([a.bin, "embed", str(folder), "-o", str(work / f"idx{n}")])
            idx = list(csv.reader(open(work / f"idx{n}" / "index.csv"))) if code == 0 else []
            good2 = code == 0 and len(idx) == n + 1
            rows.append(("embed", n, secs, rss, good2))
            ok &= good and good2
        print(f"{'command':8} {'files':>6} {'seconds':>8} {'per file ms':>12} {'peak MB':>8}  all results")
        for cmd, n, secs, rss, good in rows:
            print(f"{cmd:8} {n:6} {secs:8.1f} {1000 * secs / n:12.1f} {rss:8.0f}  {'yes' if good else 'NO'}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
