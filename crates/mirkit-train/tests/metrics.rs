//! Metrics against scikit-learn 1.9.1 (fixtures: tools/make_metric_fixtures.py).
//! Tolerance 1e-9: both sides compute in f64 from the same f64 scores (the fixture's
//! scores go through f32 in `tagging_metrics`, so that path is checked on values exactly
//! representable after the grid rounding, and per-tag functions on the f64 scores).

use mirkit_train::metrics::*;
use serde_json::Value;

fn fixture() -> Value {
    let p = &format!(
        concat!("{}", "/../../tests/fixtures/metrics/metrics.json"),
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    );
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn f64s(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[test]
fn roc_and_pr_auc_match_sklearn() {
    let f = fixture();
    for case in f["tagging"].as_array().unwrap() {
        let n = case["n"].as_u64().unwrap() as usize;
        let t = case["tags"].as_u64().unwrap() as usize;
        let s = f64s(&case["scores"]);
        let y = f64s(&case["targets"]);
        let (roc, pr) = (f64s(&case["roc_auc"]), f64s(&case["pr_auc"]));
        let (mut rs, mut ps) = (0.0, 0.0);
        for j in 0..t {
            let sj: Vec<f64> = (0..n).map(|i| s[i * t + j]).collect();
            let yj: Vec<bool> = (0..n).map(|i| y[i * t + j] > 0.5).collect();
            let r = roc_auc(&sj, &yj, "t").unwrap();
            let p = average_precision(&sj, &yj, "t").unwrap();
            assert!(
                (r - roc[j]).abs() < 1e-9,
                "n={n} tag {j}: roc {r} vs {}",
                roc[j]
            );
            assert!(
                (p - pr[j]).abs() < 1e-9,
                "n={n} tag {j}: ap {p} vs {}",
                pr[j]
            );
            rs += r;
            ps += p;
        }
        assert!((rs / t as f64 - case["roc_auc_macro"].as_f64().unwrap()).abs() < 1e-9);
        assert!((ps / t as f64 - case["pr_auc_macro"].as_f64().unwrap()).abs() < 1e-9);
    }
}

#[test]
fn tagging_metrics_macro_on_f32_inputs() {
    // The first two cases use scores on a 1/10 and 1/50 grid: f32 rounding keeps their
    // order and ties, so the macro values must agree to 1e-9.
    let f = fixture();
    for case in f["tagging"].as_array().unwrap().iter().take(2) {
        let t = case["tags"].as_u64().unwrap() as usize;
        let s: Vec<f32> = f64s(&case["scores"]).iter().map(|v| *v as f32).collect();
        let y: Vec<f32> = f64s(&case["targets"]).iter().map(|v| *v as f32).collect();
        let names: Vec<String> = (0..t).map(|j| format!("tag{j}")).collect();
        let m = tagging_metrics(&s, &y, &names).unwrap();
        assert!((m.roc_auc_macro - case["roc_auc_macro"].as_f64().unwrap()).abs() < 1e-9);
        assert!((m.pr_auc_macro - case["pr_auc_macro"].as_f64().unwrap()).abs() < 1e-9);
    }
}

#[test]
fn classification_metrics_match_sklearn() {
    let f = fixture();
    for case in f["classification"].as_array().unwrap() {
        let c = case["classes"].as_u64().unwrap() as usize;
        let us = |v: &Value| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as usize)
                .collect::<Vec<_>>()
        };
        let m = classification_metrics(&us(&case["truth"]), &us(&case["pred"]), c).unwrap();
        assert!((m.accuracy - case["accuracy"].as_f64().unwrap()).abs() < 1e-12);
        let f1 = f64s(&case["f1"]);
        assert_eq!((m.f1.len(), f1.len()), (c, c));
        for (j, (a, b)) in m.f1.iter().zip(&f1).enumerate() {
            assert!((a - b).abs() < 1e-12, "class {j}");
        }
        assert!((m.f1_macro - case["f1_macro"].as_f64().unwrap()).abs() < 1e-12);
        let conf: Vec<Vec<usize>> = case["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(us)
            .collect();
        assert_eq!(m.confusion, conf);
    }
}

#[test]
fn undefined_and_mismatched_inputs_are_errors() {
    let e = roc_auc(&[0.1, 0.2], &[true, true], "guitar")
        .unwrap_err()
        .to_string();
    assert!(e.contains("guitar") && e.contains("ROC-AUC"), "{e}");
    assert!(average_precision(&[0.1], &[false], "x").is_err());
    assert!(roc_auc(&[0.1, f64::NAN], &[true, false], "x").is_err());
    assert!(roc_auc(&[0.1], &[true, false], "x").is_err());
    assert!(classification_metrics(&[0, 1], &[0], 2).is_err());
    assert!(classification_metrics(&[0, 5], &[0, 1], 2).is_err());
    // perfect and reversed rankings
    assert_eq!(
        roc_auc(&[0.9, 0.8, 0.1], &[true, true, false], "x").unwrap(),
        1.0
    );
    assert_eq!(
        roc_auc(&[0.1, 0.2, 0.9], &[true, true, false], "x").unwrap(),
        0.0
    );
}

/// R², Spearman (average ranks for ties), Pearson, MAE and RMSE against scikit-learn
/// 1.9.1 and SciPy 1.14.1 on float32-representable values, so the f32 entry point sees
/// the fixture's exact numbers; tolerance 1e-9 as above (f64 sums in both).
#[test]
fn regression_metrics_match_sklearn_and_scipy() {
    let f = fixture();
    for case in f["regression"].as_array().unwrap() {
        let t = case["targets"].as_u64().unwrap() as usize;
        let names: Vec<String> = (0..t).map(|j| format!("y{j}")).collect();
        let p: Vec<f32> = f64s(&case["pred"]).iter().map(|&v| v as f32).collect();
        let y: Vec<f32> = f64s(&case["truth"]).iter().map(|&v| v as f32).collect();
        let m = regression_metrics(&p, &y, &names).unwrap();
        let close = |a: &[f64], b: &[f64], what: &str| {
            assert_eq!(a.len(), b.len());
            for (x, e) in a.iter().zip(b) {
                assert!((x - e).abs() < 1e-9, "{what}: {x} vs {e}");
            }
        };
        close(&m.r2, &f64s(&case["r2"]), "r2");
        close(
            &[m.r2_mean],
            &[case["r2_mean"].as_f64().unwrap()],
            "r2_mean",
        );
        close(&m.spearman, &f64s(&case["spearman"]), "spearman");
        close(&m.pearson, &f64s(&case["pearson"]), "pearson");
        close(&m.mae, &f64s(&case["mae"]), "mae");
        close(&m.rmse, &f64s(&case["rmse"]), "rmse");
    }
}

#[test]
fn regression_metric_edge_cases() {
    // scipy.stats.rankdata([3, 1, 3, 2], "average") = [3.5, 1, 3.5, 2]
    assert_eq!(
        average_ranks(&[3.0, 1.0, 3.0, 2.0]),
        vec![3.5, 1.0, 3.5, 2.0]
    );
    // constant prediction: correlation undefined (SciPy: nan), R² of the mean is 0
    let y = [1.0, 2.0, 3.0];
    assert!(pearson(&[2.0, 2.0, 2.0], &y).unwrap().is_nan());
    assert!(spearman(&[2.0, 2.0, 2.0], &y).unwrap().is_nan());
    assert_eq!(r2_score(&[2.0, 2.0, 2.0], &y).unwrap(), 0.0);
    // constant target: sklearn's force_finite gives 1 for an exact fit and 0 otherwise
    assert_eq!(r2_score(&[5.0, 5.0], &[5.0, 5.0]).unwrap(), 1.0);
    assert_eq!(r2_score(&[4.0, 5.0], &[5.0, 5.0]).unwrap(), 0.0);
    assert!(r2_score(&[1.0], &[1.0]).is_err(), "one row");
    assert!(r2_score(&[1.0, f64::NAN], &[1.0, 2.0]).is_err(), "NaN");
    assert!(regression_metrics(&[1.0, 2.0, 3.0], &[1.0, 2.0], &["y".into()]).is_err());
}
