//! Evaluation metrics with scikit-learn's definitions (checked against scikit-learn
//! 1.9.1 fixtures to 1e-9 in `tests/metrics.rs`).
//!
//! * ROC-AUC: trapezoidal area under the ROC curve with one point per distinct score
//!   (ties share a point), as `sklearn.metrics.roc_auc_score`.
//! * PR-AUC: average precision `Σ (Rₙ − Rₙ₋₁)·Pₙ` over distinct thresholds, as
//!   `average_precision_score` (not the trapezoidal PR area, which is optimistic).
//! * Regression: R² (`r2_score`), Spearman's ρ with average ranks for ties and Pearson's r
//!   (`scipy.stats.spearmanr` / `pearsonr` 1.14.1), MAE and RMSE, per target and averaged.
//! * Macro averages are unweighted means over tags; a tag whose labels are all equal makes
//!   ROC-AUC undefined, which is reported as an error naming the tag (scikit-learn raises
//!   too) rather than silently skipped.

use crate::error::{Result, TrainError};

fn check(scores: &[f64], labels: &[bool]) -> Result<()> {
    if scores.len() != labels.len() {
        return Err(TrainError::Mismatch {
            what: "scores vs labels".into(),
            got: scores.len(),
            expected: labels.len(),
        });
    }
    if let Some(i) = scores.iter().position(|s| !s.is_finite()) {
        return Err(crate::error::invalid(
            "score",
            format!("#{i} = {}", scores[i]),
            "must be finite",
        ));
    }
    Ok(())
}

/// Walks distinct thresholds from high to low, calling `f(tp, fp)` after each group.
fn sweep(scores: &[f64], labels: &[bool], mut f: impl FnMut(f64, f64)) {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0.0, 0.0);
    for (k, &i) in idx.iter().enumerate() {
        if labels[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_group = k + 1 == idx.len() || scores[idx[k + 1]] != scores[i];
        if last_of_group {
            f(tp, fp);
        }
    }
}

/// Binary ROC-AUC (`sklearn.metrics.roc_auc_score`). `what` names the tag in errors.
pub fn roc_auc(scores: &[f64], labels: &[bool], what: &str) -> Result<f64> {
    check(scores, labels)?;
    let p = labels.iter().filter(|&&l| l).count() as f64;
    let n = labels.len() as f64 - p;
    if p == 0.0 || n == 0.0 {
        return Err(TrainError::Undefined {
            metric: "ROC-AUC".into(),
            what: what.into(),
            why: format!("only one class present ({p} positives, {n} negatives)"),
        });
    }
    let (mut area, mut tp0, mut fp0) = (0.0, 0.0, 0.0);
    sweep(scores, labels, |tp, fp| {
        area += (fp - fp0) * (tp + tp0) / 2.0;
        tp0 = tp;
        fp0 = fp;
    });
    Ok(area / (p * n))
}

/// Average precision (`sklearn.metrics.average_precision_score`).
pub fn average_precision(scores: &[f64], labels: &[bool], what: &str) -> Result<f64> {
    check(scores, labels)?;
    let p = labels.iter().filter(|&&l| l).count() as f64;
    if p == 0.0 {
        return Err(TrainError::Undefined {
            metric: "PR-AUC".into(),
            what: what.into(),
            why: "no positive examples".into(),
        });
    }
    let (mut ap, mut r0) = (0.0, 0.0);
    sweep(scores, labels, |tp, fp| {
        let r = tp / p;
        ap += (r - r0) * tp / (tp + fp);
        r0 = r;
    });
    Ok(ap)
}

/// Per-tag and macro ROC-AUC and PR-AUC of a multi-label problem.
#[derive(Debug, Clone, PartialEq)]
pub struct TaggingMetrics {
    /// ROC-AUC per tag.
    pub roc_auc: Vec<f64>,
    /// Average precision per tag.
    pub pr_auc: Vec<f64>,
    /// Unweighted mean of `roc_auc`.
    pub roc_auc_macro: f64,
    /// Unweighted mean of `pr_auc`.
    pub pr_auc_macro: f64,
}

/// Tagging metrics of `scores` and 0/1 `targets`, both `n × tags` row-major.
pub fn tagging_metrics(scores: &[f32], targets: &[f32], tags: &[String]) -> Result<TaggingMetrics> {
    let t = tags.len();
    if t == 0 || scores.len() != targets.len() || !scores.len().is_multiple_of(t) {
        return Err(TrainError::Mismatch {
            what: format!("scores vs targets ({} tags)", t),
            got: scores.len(),
            expected: targets.len(),
        });
    }
    let n = scores.len() / t;
    let mut roc = Vec::with_capacity(t);
    let mut pr = Vec::with_capacity(t);
    for (j, tag) in tags.iter().enumerate() {
        let s: Vec<f64> = (0..n).map(|i| scores[i * t + j] as f64).collect();
        let l: Vec<bool> = (0..n).map(|i| targets[i * t + j] > 0.5).collect();
        roc.push(roc_auc(&s, &l, tag)?);
        pr.push(average_precision(&s, &l, tag)?);
    }
    Ok(TaggingMetrics {
        roc_auc_macro: roc.iter().sum::<f64>() / t as f64,
        pr_auc_macro: pr.iter().sum::<f64>() / t as f64,
        roc_auc: roc,
        pr_auc: pr,
    })
}

/// Confusion matrix `classes × classes`: rows are true classes, columns predictions
/// (`sklearn.metrics.confusion_matrix`).
pub fn confusion_matrix(
    truth: &[usize],
    pred: &[usize],
    classes: usize,
) -> Result<Vec<Vec<usize>>> {
    if truth.len() != pred.len() {
        return Err(TrainError::Mismatch {
            what: "predictions vs labels".into(),
            got: pred.len(),
            expected: truth.len(),
        });
    }
    let mut m = vec![vec![0usize; classes]; classes];
    for (&t, &p) in truth.iter().zip(pred) {
        if t >= classes || p >= classes {
            return Err(crate::error::invalid(
                "class index",
                t.max(p),
                "beyond the class count",
            ));
        }
        m[t][p] += 1;
    }
    Ok(m)
}

/// Accuracy, per-class and macro F1 of a single-label problem.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassificationMetrics {
    /// Fraction correct.
    pub accuracy: f64,
    /// F1 per class (0 where a class is neither predicted nor present, as scikit-learn's
    /// `zero_division=0`).
    pub f1: Vec<f64>,
    /// Unweighted mean of `f1` (`f1_score(average="macro")`).
    pub f1_macro: f64,
    /// Rows: truth, columns: prediction.
    pub confusion: Vec<Vec<usize>>,
}

/// Classification metrics of true and predicted class indices.
///
/// ```
/// use mirkit_train::metrics::classification_metrics;
/// let truth = [0, 0, 1, 1, 2, 2];
/// let pred = [0, 1, 1, 1, 2, 0];
/// let m = classification_metrics(&truth, &pred, 3)?;
/// assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
/// assert_eq!(m.confusion[0], [1, 1, 0]); // truth 0: once right, once called 1
/// // sklearn.metrics.f1_score(truth, pred, average="macro")
/// assert!((m.f1_macro - (0.5 + 0.8 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
/// # Ok::<(), mirkit_train::TrainError>(())
/// ```
pub fn classification_metrics(
    truth: &[usize],
    pred: &[usize],
    classes: usize,
) -> Result<ClassificationMetrics> {
    if truth.is_empty() {
        return Err(TrainError::EmptySplit {
            split: "evaluation".into(),
            why: " (no predictions)".into(),
        });
    }
    let confusion = confusion_matrix(truth, pred, classes)?;
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let f1: Vec<f64> = (0..classes)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let fp = (0..classes).map(|r| confusion[r][c]).sum::<usize>() as f64 - tp;
            let fneg = confusion[c].iter().sum::<usize>() as f64 - tp;
            let d = 2.0 * tp + fp + fneg;
            if d == 0.0 {
                0.0
            } else {
                2.0 * tp / d
            }
        })
        .collect();
    Ok(ClassificationMetrics {
        accuracy: correct as f64 / truth.len() as f64,
        f1_macro: f1.iter().sum::<f64>() / classes as f64,
        f1,
        confusion,
    })
}

/// Index of the largest value of each row of a row-major `n × c` matrix.
pub fn argmax_rows(scores: &[f32], c: usize) -> Vec<usize> {
    scores
        .chunks(c)
        .map(|r| {
            let mut best = 0;
            for (j, v) in r.iter().enumerate() {
                if *v > r[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

fn check_pair(pred: &[f64], truth: &[f64]) -> Result<()> {
    if pred.len() != truth.len() {
        return Err(TrainError::Mismatch {
            what: "predictions vs targets".into(),
            got: pred.len(),
            expected: truth.len(),
        });
    }
    if pred.len() < 2 {
        return Err(crate::error::invalid(
            "rows",
            pred.len(),
            "regression metrics need at least two rows",
        ));
    }
    if let Some(i) = pred.iter().chain(truth).position(|v| !v.is_finite()) {
        return Err(crate::error::invalid(
            "value",
            format!("#{}", i % pred.len()),
            "predictions and targets must be finite",
        ));
    }
    Ok(())
}

/// Coefficient of determination `1 − Σ(y − ŷ)² / Σ(y − ȳ)²` of one target
/// (`sklearn.metrics.r2_score`; a constant target gives 1 when predicted exactly and 0
/// otherwise, scikit-learn's `force_finite=True`).
pub fn r2_score(pred: &[f64], truth: &[f64]) -> Result<f64> {
    check_pair(pred, truth)?;
    let mean = truth.iter().sum::<f64>() / truth.len() as f64;
    let ss_res: f64 = pred.iter().zip(truth).map(|(p, y)| (y - p).powi(2)).sum();
    let ss_tot: f64 = truth.iter().map(|y| (y - mean).powi(2)).sum();
    Ok(if ss_tot == 0.0 {
        if ss_res == 0.0 {
            1.0
        } else {
            0.0
        }
    } else {
        1.0 - ss_res / ss_tot
    })
}

/// Pearson's correlation coefficient (`scipy.stats.pearsonr`'s statistic); NaN when
/// either side is constant (SciPy warns and returns NaN too).
pub fn pearson(a: &[f64], b: &[f64]) -> Result<f64> {
    check_pair(a, b)?;
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        let (dx, dy) = (x - ma, y - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 || sbb == 0.0 {
        return Ok(f64::NAN);
    }
    Ok((sab / (saa.sqrt() * sbb.sqrt())).clamp(-1.0, 1.0))
}

/// Ranks 1..n, ties sharing the mean of their ranks (`scipy.stats.rankdata`'s
/// `"average"` method).
pub fn average_ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut ranks = vec![0.0; v.len()];
    let mut start = 0;
    while start < idx.len() {
        let mut end = start + 1;
        while end < idx.len() && v[idx[end]] == v[idx[start]] {
            end += 1;
        }
        // ranks start+1 ..= end share their mean
        let r = (start + 1 + end) as f64 / 2.0;
        for &i in &idx[start..end] {
            ranks[i] = r;
        }
        start = end;
    }
    ranks
}

/// Spearman's rank correlation (`scipy.stats.spearmanr`'s statistic): Pearson's
/// coefficient of the average ranks, so ties are handled as SciPy does.
pub fn spearman(a: &[f64], b: &[f64]) -> Result<f64> {
    check_pair(a, b)?;
    pearson(&average_ranks(a), &average_ranks(b))
}

/// Per-target and averaged metrics of a regression.
#[derive(Debug, Clone, PartialEq)]
pub struct RegressionMetrics {
    /// R² per target.
    pub r2: Vec<f64>,
    /// Unweighted mean of `r2` (scikit-learn's `multioutput="uniform_average"`).
    pub r2_mean: f64,
    /// Spearman's ρ per target.
    pub spearman: Vec<f64>,
    /// Mean of `spearman`.
    pub spearman_mean: f64,
    /// Pearson's r per target.
    pub pearson: Vec<f64>,
    /// Mean absolute error per target (`mean_absolute_error`), in the target's units.
    pub mae: Vec<f64>,
    /// Root mean squared error per target, in the target's units.
    pub rmse: Vec<f64>,
}

/// Regression metrics of predictions against targets, both `n × targets` row-major.
pub fn regression_metrics(
    pred: &[f32],
    truth: &[f32],
    targets: &[String],
) -> Result<RegressionMetrics> {
    let t = targets.len();
    if t == 0 || pred.len() != truth.len() || !pred.len().is_multiple_of(t) {
        return Err(TrainError::Mismatch {
            what: format!("predictions vs targets ({t} targets)"),
            got: pred.len(),
            expected: truth.len(),
        });
    }
    let n = pred.len() / t;
    let mut m = RegressionMetrics {
        r2: vec![],
        r2_mean: 0.0,
        spearman: vec![],
        spearman_mean: 0.0,
        pearson: vec![],
        mae: vec![],
        rmse: vec![],
    };
    for j in 0..t {
        let p: Vec<f64> = (0..n).map(|i| pred[i * t + j] as f64).collect();
        let y: Vec<f64> = (0..n).map(|i| truth[i * t + j] as f64).collect();
        m.r2.push(r2_score(&p, &y)?);
        m.spearman.push(spearman(&p, &y)?);
        m.pearson.push(pearson(&p, &y)?);
        m.mae
            .push(p.iter().zip(&y).map(|(a, b)| (a - b).abs()).sum::<f64>() / n as f64);
        m.rmse
            .push((p.iter().zip(&y).map(|(a, b)| (a - b).powi(2)).sum::<f64>() / n as f64).sqrt());
    }
    m.r2_mean = m.r2.iter().sum::<f64>() / t as f64;
    m.spearman_mean = m.spearman.iter().sum::<f64>() / t as f64;
    Ok(m)
}
