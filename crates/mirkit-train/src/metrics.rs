//! Evaluation metrics with scikit-learn's definitions (checked against scikit-learn
//! 1.9.1 fixtures to 1e-9 in `tests/metrics.rs`).
//!
//! * ROC-AUC: trapezoidal area under the ROC curve with one point per distinct score
//!   (ties share a point), as `sklearn.metrics.roc_auc_score`.
//! * PR-AUC: average precision `Σ (Rₙ − Rₙ₋₁)·Pₙ` over distinct thresholds, as
//!   `average_precision_score` (not the trapezoidal PR area, which is optimistic).
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
    if t == 0 || scores.len() != targets.len() || scores.len() % t != 0 {
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
