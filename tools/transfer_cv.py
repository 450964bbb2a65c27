#!/usr/bin/env python3
"""Transfer features by 5-fold cross-validation (issue #18 item 1).

For every pretrained tagger and two labelled sets, `mirkit embed` computes each track's
penultimate layer (`--layers embedding`) and every pooled layer with the windows pooled
by their mean and their maximum (`--layers all-mean-max`; `meta.json` names each block's
layer and width). From those vectors the script scores, with the same classifier and
folds, these representations:

    penultimate        the layer before the output (mirkit embed's compact default)
    all-mean           every layer, mean over windows  (= --layers all)
    all-max            every layer, max over windows   (= --layers all-max)
    all-mean-max       both                            (= --layers all-mean-max)
    early / late       the first ceil(n/2) layers / the rest, mean over windows
    best-layer         the single layer (mean) with the best mean accuracy — chosen on the
                       same folds, so an optimistic figure, for information only

and an MFCC baseline (mean and standard deviation over time of 20 MFCCs from
`mirkit features --mfcc 20`, librosa's defaults).

Classifier: scikit-learn's LogisticRegression (lbfgs, C=1, max_iter 5000) on
standardised features (StandardScaler fitted on each training fold). Folds: stratified
5-fold, shuffled with seed 0 (ballroom8); for drums5 grouped by drum kit
(StratifiedGroupKFold), so no kit is in both the training and the test fold.
Reported: mean accuracy over the folds and its standard deviation.

    python3 tools/transfer_cv.py --bin $CARGO_TARGET_DIR/release/mirkit \
        --set ballroom8=../shared/data/ballroom8 --set drums5=/tmp/drums5 [--models ...]

drums5 is built by tools/build_drums5.py. Versions used for docs/transfer.md:
scikit-learn 1.9.1, numpy 2.4.6, Python 3.11.7 (printed at the start of a run).
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

MODELS = [
    "musicnn-mtt", "musicnn-msd", "vgg-mtt", "vgg-msd",
    "won2020-fcn-mtat", "won2020-crnn-mtat", "won2020-musicnn-mtat",
    "won2020-fcn-msd", "won2020-crnn-msd",
    "won2020-fcn-jamendo", "won2020-crnn-jamendo", "won2020-musicnn-jamendo",
]


def read_set(root):
    """(relative paths, labels, groups) from ROOT/metadata.csv (`path,label[,kit]`)."""
    with open(os.path.join(root, "metadata.csv"), newline="") as f:
        rows = list(csv.DictReader(f))
    paths = [r["path"] for r in rows]
    labels = np.array([r["label"] for r in rows])
    groups = np.array([r["kit"] for r in rows]) if "kit" in rows[0] else None
    return paths, labels, groups


def embed(bin_, root, model, layers, work):
    """Rows of `mirkit embed ROOT --layers LAYERS`, keyed by path relative to ROOT, and
    the index's blocks."""
    out = os.path.join(work, f"{model}-{layers}")
    t0 = time.time()
    subprocess.run([bin_, "-q", "embed", root, "-o", out, "--model", model, "--layers", layers],
                   check=True, stdout=subprocess.DEVNULL)
    secs = time.time() - t0
    meta = json.load(open(os.path.join(out, "meta.json")))
    emb = np.load(os.path.join(out, "embeddings.npy"))
    with open(os.path.join(out, "index.csv"), newline="") as f:
        files = [r["file"] for r in csv.DictReader(f)]
    rows = {os.path.relpath(p, root): emb[i] for i, p in enumerate(files)}
    return rows, meta["blocks"], secs


def mfcc_stats(bin_, root, paths, work):
    """Mean and standard deviation over time of 20 MFCCs per file (librosa defaults)."""
    out = os.path.join(work, "mfcc")
    subprocess.run([bin_, "-q", "features", root, "-o", out, "--mfcc", "20"], check=True,
                   stdout=subprocess.DEVNULL)
    feats = []
    for p in paths:
        m = np.load(os.path.join(out, os.path.splitext(p)[0] + ".npy"))
        feats.append(np.concatenate([m.mean(axis=1), m.std(axis=1)]))
    return np.array(feats)


def cv(x, y, groups, seed=0):
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    if groups is None:
        folds = StratifiedKFold(5, shuffle=True, random_state=seed).split(x, y)
    else:
        folds = StratifiedGroupKFold(5, shuffle=True, random_state=seed).split(x, y, groups)
    s = cross_val_score(clf, x, y, cv=list(folds))
    return s.mean(), s.std()


def columns(blocks, names):
    """Column indices of the named blocks."""
    idx, at = [], 0
    for n, w in blocks:
        if n in names:
            idx.extend(range(at, at + w))
        at += w
    return np.array(idx)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="mirkit")
    ap.add_argument("--set", action="append", required=True, help="NAME=FOLDER (with metadata.csv)")
    ap.add_argument("--models", nargs="*", default=MODELS)
    ap.add_argument("--json", help="also write every figure here")
    a = ap.parse_args()
    print(f"# scikit-learn {sklearn.__version__}, numpy {np.__version__}, Python {sys.version.split()[0]}")
    results = []
    for spec in a.set:
        name, root = spec.split("=", 1)
        paths, y, groups = read_set(root)
        with tempfile.TemporaryDirectory() as work:
            m, s = cv(mfcc_stats(a.bin, root, paths, work), y, groups)
            print(f"{name:10} {'mfcc-20 mean+std':26} {'baseline':14} {40:6d} {m:.3f} ± {s:.3f}", flush=True)
            results.append(dict(set=name, model="mfcc", features="mean+std", dim=40, acc=m, std=s))
            for model in a.models:
                pen, _, t_pen = embed(a.bin, root, model, "embedding", work)
                both, blocks, t_all = embed(a.bin, root, model, "all-mean-max", work)
                xp = np.array([pen[p] for p in paths])
                xb = np.array([both[p] for p in paths])
                half = xb.shape[1] // 2
                mean_blocks = [(n.split("/", 1)[1], w) for n, w in blocks if n.startswith("mean/")]
                names = [n for n, _ in mean_blocks]
                k = math.ceil(len(names) / 2)
                variants = [
                    ("penultimate", xp),
                    ("all-mean", xb[:, :half]),
                    ("all-max", xb[:, half:]),
                    ("all-mean-max", xb),
                    ("early (" + ",".join(names[:k]) + ")", xb[:, columns(mean_blocks, names[:k])]),
                    ("late (" + ",".join(names[k:]) + ")", xb[:, columns(mean_blocks, names[k:])]),
                ]
                per_layer = [(n, cv(xb[:, columns(mean_blocks, [n])], y, groups)) for n in names]
                best = max(per_layer, key=lambda r: r[1][0])
                for label, x in variants:
                    m, s = cv(x, y, groups)
                    print(f"{name:10} {model:26} {label:44} {x.shape[1]:6d} {m:.3f} ± {s:.3f}", flush=True)
                    results.append(dict(set=name, model=model, features=label, dim=int(x.shape[1]), acc=m, std=s))
                w = dict(mean_blocks)[best[0]]
                print(f"{name:10} {model:26} {'best-layer ' + best[0]:44} {w:6d} {best[1][0]:.3f} ± {best[1][1]:.3f}"
                      f"   (embed {t_pen:.0f} s + {t_all:.0f} s)", flush=True)
                results.append(dict(set=name, model=model, features="best-layer " + best[0], dim=w,
                                    acc=best[1][0], std=best[1][1], per_layer={n: r[0] for n, r in per_layer}))
    if a.json:
        json.dump(results, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
