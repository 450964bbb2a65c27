#!/usr/bin/env python3
"""Decoding speed: mirkit (symphonia, plus its own direct WAV reader) against soundfile
(libsndfile) and PyAV (FFmpeg) on the same 10-minute files, side by side in one run
(issue #15).

The files: the two clips of data/clips at 22.05 kHz mono, tiled to 10 minutes, written as
16-bit WAV, FLAC, MP3 and Ogg Vorbis (soundfile) and AAC in M4A (PyAV, 128 kb/s).
  mirkit:     the `decode` stage of `mirkit features FILE --timings` (decode to mono f32,
              one thread; the rest of the command is not counted)
  soundfile:  soundfile.read(FILE, dtype="float32")           (not for AAC)
  PyAV:       every frame decoded and converted to float32 (av.AudioResampler to flt)
Each is run --runs times; medians and ranges are printed, with the ratios. soundfile and
PyAV run in separate processes: loaded together, their bundled codec libraries clash
(soundfile's MP3/Vorbis writer crashes once PyAV is imported).

Usage (from the repository root, after `pip install -r tools/requirements.txt`):
    python3 tools/bench_decode.py [--runs 5]
"""
import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time

import sys

import numpy as np  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIPS = [os.path.join(ROOT, "data", "clips", c) for c in
         ("brahms_hungarian_dance_5.hq.ogg", "sorohanro_-_solo-trumpet-06.hq.ogg")]
SR = 22050


def load_clip(path):
    import av
    with av.open(path) as c:
        rs = av.AudioResampler(format="flt", layout="mono", rate=SR)
        out = []
        for fr in c.decode(audio=0):
            for r in rs.resample(fr):
                out.append(r.to_ndarray().reshape(-1))
        return np.concatenate(out)


def make_av(d):
    """The 10-minute signal (raw float32) and its AAC file, with PyAV only."""
    import av
    y = np.resize(np.concatenate([load_clip(c) for c in CLIPS]), 600 * SR).astype(np.float32)
    y.tofile(os.path.join(d, "ten_min.f32"))
    p = os.path.join(d, "ten_min.m4a")
    with av.open(p, "w") as c:
        s = c.add_stream("aac", rate=SR)
        s.bit_rate = 128_000
        s.layout = "mono"
        for i in range(0, len(y), 1024):
            fr = av.AudioFrame.from_ndarray(y[None, i:i + 1024], format="flt", layout="mono")
            fr.sample_rate = SR
            for pkt in s.encode(fr):
                c.mux(pkt)
        for pkt in s.encode(None):
            c.mux(pkt)


def make_sf(d):
    """WAV, FLAC, MP3 and Ogg Vorbis of the signal, with soundfile only."""
    import soundfile as sf
    y = np.fromfile(os.path.join(d, "ten_min.f32"), dtype=np.float32)
    for ext, kw in (("wav", {"subtype": "PCM_16"}), ("flac", {"subtype": "PCM_16"}),
                    ("mp3", {"format": "MP3"}), ("ogg", {"format": "OGG", "subtype": "VORBIS"})):
        # in pieces: libsndfile 1.2.0's Vorbis encoder crashes on one 10-minute write
        with sf.SoundFile(os.path.join(d, f"ten_min.{ext}"), "w", SR, 1, **kw) as f:
            for i in range(0, len(y), 1 << 16):
                f.write(y[i:i + (1 << 16)])


def t_mirkit(exe, path, d):
    r = subprocess.run([exe, "features", path, "-o", os.path.join(d, "m.npy"), "--sr", "native",
                        "--n-fft", "512", "--hop-length", "256", "--timings"],
                       env=dict(os.environ, RAYON_NUM_THREADS="1"), capture_output=True, text=True,
                       check=True)
    return float(re.search(r"decode ([0-9.]+) s", r.stderr).group(1))


def t_soundfile(path):
    import soundfile as sf
    t = time.perf_counter()
    sf.read(path, dtype="float32")
    return time.perf_counter() - t


def t_av(path):
    import av
    t = time.perf_counter()
    with av.open(path) as c:
        rs = av.AudioResampler(format="flt")
        n = 0
        for fr in c.decode(audio=0):
            for r in rs.resample(fr):
                n += r.samples
    return time.perf_counter() - t


def fmt(xs):
    return f"{statistics.median(xs):.3f} s ({min(xs):.3f}-{max(xs):.3f})"


def worker(args):
    """`--worker KIND ARG [RUNS]` in a fresh process: make files or time one library."""
    kind = args[0]
    if kind == "make_av":
        return make_av(args[1])
    if kind == "make_sf":
        return make_sf(args[1])
    if kind == "versions":
        if args[1] == "sf":
            import soundfile as sf
            print(f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__})")
        else:
            import av
            print(f"PyAV {av.__version__} (libavcodec {av.library_versions.get('libavcodec')})")
        return
    f = {"sf": t_soundfile, "av": t_av}[kind]
    f(args[1])  # warm: imports, page cache
    print(" ".join(str(f(args[1])) for _ in range(int(args[2]))))


def in_child(*args):
    r = subprocess.run([sys.executable, __file__, "--worker", *map(str, args)],
                       capture_output=True, text=True, check=True)
    return r.stdout.strip()


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "--bin", "mirkit"], cwd=ROOT, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    exe = os.path.join(target, "release", "mirkit")
    with tempfile.TemporaryDirectory() as d:
        in_child("make_av", d)
        in_child("make_sf", d)
        print(in_child("versions", "sf") + ", " + in_child("versions", "av") +
              "; ratios are the library's time / mirkit's")
        for ext in ("wav", "flac", "mp3", "ogg", "m4a"):
            p = os.path.join(d, f"ten_min.{ext}")
            t_mirkit(exe, p, d)  # page cache
            m = [t_mirkit(exe, p, d) for _ in range(a.runs)]
            line = f"{ext:>4}: mirkit {fmt(m)}"
            if ext != "m4a":
                s = [float(x) for x in in_child("sf", p, a.runs).split()]
                line += f"  soundfile {fmt(s)} ({statistics.median(s) / statistics.median(m):.2f}x)"
            v = [float(x) for x in in_child("av", p, a.runs).split()]
            line += f"  PyAV {fmt(v)} ({statistics.median(v) / statistics.median(m):.2f}x)"
            print(line)


if __name__ == "__main__":
    main()
