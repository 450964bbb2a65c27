"""Metric fixtures for mirkit-train from scikit-learn (pinned in requirements.txt:
scikit-learn 1.9.1, numpy 2.1.3).

Writes tests/fixtures/metrics/metrics.json: random multi-label scores with ties (scores
rounded to a coarse grid so thresholds repeat) and multi-class predictions, with
roc_auc_score / average_precision_score per tag and macro, accuracy_score, f1_score
(per class and macro, zero_division=0) and confusion_matrix.

    python tools/make_metric_fixtures.py
"""
import json
import os

import numpy as np
import sklearn
from sklearn import metrics

assert sklearn.__version__ == "1.9.1", sklearn.__version__
out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "metrics")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(2019)

cases = []
for n, tags, grid in [(40, 5, 10), (200, 12, 50), (400, 20, None)]:
    y = (rng.random((n, tags)) < rng.uniform(0.05, 0.5, tags)).astype(np.int64)
    y[0, :] = 1  # every tag has a positive
    y[1, :] = 0  # and a negative
    s = y * 0.3 + rng.random((n, tags))
    if grid:
        s = np.round(s * grid) / grid  # ties
    cases.append({
        "n": n, "tags": tags,
        "scores": s.ravel().tolist(), "targets": y.ravel().tolist(),
        "roc_auc": [metrics.roc_auc_score(y[:, j], s[:, j]) for j in range(tags)],
        "pr_auc": [metrics.average_precision_score(y[:, j], s[:, j]) for j in range(tags)],
        "roc_auc_macro": metrics.roc_auc_score(y, s, average="macro"),
        "pr_auc_macro": metrics.average_precision_score(y, s, average="macro"),
    })

mc = []
for n, c in [(30, 4), (500, 10)]:
    truth = rng.integers(0, c, n)
    pred = np.where(rng.random(n) < 0.6, truth, rng.integers(0, c, n))
    pred[pred == c - 1] = 0  # one class never predicted: zero_division path
    mc.append({
        "classes": c, "truth": truth.tolist(), "pred": pred.tolist(),
        "accuracy": metrics.accuracy_score(truth, pred),
        "f1": metrics.f1_score(truth, pred, average=None, labels=list(range(c)), zero_division=0).tolist(),
        "f1_macro": metrics.f1_score(truth, pred, average="macro", labels=list(range(c)), zero_division=0),
        "confusion": metrics.confusion_matrix(truth, pred, labels=list(range(c))).tolist(),
    })

with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump({"sklearn": sklearn.__version__, "tagging": cases, "classification": mc}, f)
print("wrote", os.path.join(out, "metrics.json"))
