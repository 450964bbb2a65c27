//! Metrics against scikit-learn 1.9.1 (fixtures: tools/make_metric_fixtures.py).
//! Tolerance 1e-9: both sides compute in f64 from the same f64 scores (the fixture's
//! scores go through f32 in `tagging_metrics`, so that path is checked on values exactly
//! representable after the grid rounding, and per-tag functions on the f64 scores).

use mirkit_train::metrics::*;
use serde_json::Value;

fn fixture() -> Value {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/metrics/metrics.json"
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
