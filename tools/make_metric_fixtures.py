"""Metric fixtures for mirkit-train from scikit-learn and SciPy (pinned in requirements.txt:
scikit-learn 1.9.1, scipy 1.14.1, numpy 2.1.3).

Writes tests/fixtures/metrics/metrics.json: random multi-label scores with ties (scores
rounded to a coarse grid so thresholds repeat) and multi-class predictions, with
roc_auc_score / average_precision_score per tag and macro, accuracy_score, f1_score
(per class and macro, zero_division=0) and confusion_matrix; regression predictions with
r2_score, mean_absolute_error, RMSE and scipy.stats.spearmanr / pearsonr.

    python tools/make_metric_fixtures.py
"""
import json
import os

import numpy as np
import scipy
import scipy.stats
import sklearn
from sklearn import metrics

assert sklearn.__version__ == "1.9.1", sklearn.__version__
assert scipy.__version__ == "1.14.1", scipy.__version__
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

# regression: float32-representable values (the Rust side takes f32), ties in both
# predictions and targets (grid rounding), two targets in the second case, and a target
# predicted exactly in the third
reg = []
for n, t, grid in [(30, 1, 4), (200, 2, 20), (50, 2, None)]:
    y = rng.normal(100.0, 20.0, (n, t))
    p = y + rng.normal(0.0, 15.0, (n, t))
    if grid:
        y, p = np.round(y / grid) * grid, np.round(p / grid) * grid
    if grid is None:
        p[:, 0] = y[:, 0]
    y, p = y.astype(np.float32).astype(np.float64), p.astype(np.float32).astype(np.float64)
    reg.append({
        "n": n, "targets": t, "pred": p.ravel().tolist(), "truth": y.ravel().tolist(),
        "r2": [metrics.r2_score(y[:, j], p[:, j]) for j in range(t)],
        "r2_mean": metrics.r2_score(y, p, multioutput="uniform_average"),
        "spearman": [float(scipy.stats.spearmanr(p[:, j], y[:, j]).statistic) for j in range(t)],
        "pearson": [float(scipy.stats.pearsonr(p[:, j], y[:, j]).statistic) for j in range(t)],
        "mae": metrics.mean_absolute_error(y, p, multioutput="raw_values").tolist(),
        "rmse": np.sqrt(metrics.mean_squared_error(y, p, multioutput="raw_values")).tolist(),
    })

with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump({"sklearn": sklearn.__version__, "scipy": scipy.__version__, "tagging": cases,
               "classification": mc, "regression": reg}, f)
print("wrote", os.path.join(out, "metrics.json"))
