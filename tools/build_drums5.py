"""Builds `drums5`, a second data set of real recordings for mirkit's transfer demo:
one-shot drum samples from Debian's `hydrogen-drumkits` package (2017.09.19~dfsg-1;
14 kits recorded or synthesised by their authors; per-kit licences in the package's
/usr/share/doc/hydrogen-drumkits/copyright: GPL-2(+), CC-BY-3.0, CC-BY-SA-3.0, CC0), sorted into five classes by
their file names: kick, snare, hihat, cymbal, tom.

Split by kit, so validation and test sounds come from kits the model never heard
(kits assigned round-robin in sorted order within each class balance: see SPLIT below).
Output: OUT/<class>/<kit>__<file>.wav (mono, 22.05 kHz, 16-bit, first 2 s, silence
stripped from the start) and OUT/metadata.csv (path,label,kit,split). Deterministic:
same package, same bytes.

    apt-get download hydrogen-drumkits        # hydrogen-drumkits_2017.09.19~dfsg-1_all.deb
    python tools/build_drums5.py hydrogen-drumkits_2017.09.19~dfsg-1_all.deb /tmp/drums5

Needs numpy, soundfile, soxr (tools/requirements.txt) and dpkg-deb.
"""
import csv
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
import soxr

RULES = [  # (class, regex on the lower-case file name); a file matching two classes is dropped
    ("kick", r"(^|[^a-z])(bd|kick|bassdrum|bass ?drum)|^k_|_k_"),
    ("snare", r"snare|(^|[^a-z])(sd|sn)([^a-z]|$)"),
    ("hihat", r"hh|hat|hihat|chh|ohh"),
    ("cymbal", r"crash|ride|china|splash|cymbal|(^|[^a-z])(cc|rc)_"),
    ("tom", r"tom|(^|[^a-z])(ft|t1|t2|t3)_"),
]
# kits (sorted names) -> split; chosen so each split has every class
SPLIT = {"valid": ["Millo_MultiLayered3", "VariBreaks", "HardElectro1"],
         "test": ["Millo_MultiLayered2", "ElectricEmpireKit", "Millo-Drums_v.1"]}


def main(deb, out):
    tmp = tempfile.mkdtemp()
    subprocess.run(["dpkg-deb", "-x", deb, tmp], check=True)
    root = os.path.join(tmp, "usr/share/hydrogen/data/drumkits")
    rows = []
    for kit in sorted(os.listdir(root)):
        split = next((s for s, ks in SPLIT.items() if kit in ks), "train")
        for name in sorted(os.listdir(os.path.join(root, kit))):
            low = name.lower()
            if not low.endswith((".wav", ".flac", ".aif", ".aiff")) or "empty" in low:
                continue
            hits = [c for c, r in RULES if re.search(r, low)]
            if len(hits) != 1:
                continue
            y, sr = sf.read(os.path.join(root, kit, name), always_2d=True, dtype="float64")
            y = y.mean(axis=1)
            if sr != 22050:
                y = soxr.resample(y, sr, 22050, quality="HQ")
            nz = np.nonzero(np.abs(y) > 1e-3)[0]
            if len(nz) == 0:
                continue
            y = y[nz[0]:nz[0] + 2 * 22050]
            y = y / max(1e-9, np.abs(y).max()) * 0.9
            rel = os.path.join(hits[0], re.sub(r"[^A-Za-z0-9._-]", "_", f"{kit}__{os.path.splitext(name)[0]}") + ".wav")
            os.makedirs(os.path.join(out, hits[0]), exist_ok=True)
            sf.write(os.path.join(out, rel), y, 22050, subtype="PCM_16")
            rows.append((rel, hits[0], kit, split))
    with open(os.path.join(out, "metadata.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "kit", "split"])
        w.writerows(rows)
    from collections import Counter
    print(Counter((r[3], r[1]) for r in rows))
    print(len(rows), "files in", out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
