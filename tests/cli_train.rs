//! `mirkit train`, `mirkit finetune` and `mirkit eval` end to end on a generated
//! folder-per-class data set (two tone classes, one corrupt file).

use std::path::Path;
use std::process::Command;

fn wav(path: &Path, freq: f32, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    let f = freq * (1.0 + 0.05 * (seed % 5) as f32);
    for t in 0..44_100 {
        w.write_sample(((f * t as f32 / 22050.0 * std::f32::consts::TAU).sin() * 6000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

use mirkit_core::testing::TmpDir;

fn data(name: &str) -> TmpDir {
    let d = TmpDir::new(&format!("mirkit-cli-train-{name}-"));
    for (c, f) in [("low", 150.0), ("high", 2500.0)] {
        for i in 0..10 {
            wav(&d.join("data").join(c).join(format!("{i}.wav")), f, i);
        }
    }
    std::fs::write(d.join("data/high/corrupt.wav"), b"RIFF....WAVEfmt garbage").unwrap();
    d
}

fn mirkit(args: &[&str]) -> (bool, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    )
}

#[test]
fn baseline_head_then_eval() {
    let d = data("head");
    let (dd, out) = (d.join("data"), d.join("run"));
    let (ok, log) = mirkit(&[
        "finetune",
        "--data",
        dd.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--from",
        "mfcc",
    ]);
    assert!(ok, "{log}");
    assert!(
        log.contains("skipped") && log.contains("corrupt.wav"),
        "{log}"
    );
    assert!(std::fs::read_to_string(out.join("skipped.tsv"))
        .unwrap()
        .contains("corrupt.wav"));
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["accuracy"].as_f64().unwrap(), 1.0, "{test}");
    let head = out.join("head.safetensors");
    let (ok, log) = mirkit(&[
        "eval",
        "--data",
        dd.to_str().unwrap(),
        "--model",
        head.to_str().unwrap(),
    ]);
    assert!(ok && log.contains("accuracy 1.0000"), "{log}");
    // `predict` with the head on a folder: a row per readable file with the predicted
    // class (the test accuracy was 1, and the training files are as easy), the corrupt
    // file on standard error and exit status 1
    let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
        .args(["predict", "--model", head.to_str().unwrap()])
        .arg(dd.join("low"))
        .arg(dd.join("high"))
        .output()
        .unwrap();
    let (csv, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("corrupt.wav"), "{err}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 21, "{csv}");
    let header: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(&header[..2], &["path", "predicted"]);
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        let want = if f[0].contains("/low/") {
            "low"
        } else {
            "high"
        };
        assert_eq!(f[1], want, "{l}");
        let p: f64 = f[2..].iter().map(|v| v.parse::<f64>().unwrap()).sum();
        assert!((p - 1.0).abs() < 1e-5, "{l}");
    }
    // a registry name is a usage error pointing at `mirkit tag`
    let (ok, log) = mirkit(&["predict", "--model", "musicnn-mtt", "x.wav"]);
    assert!(!ok && log.contains("mirkit tag"), "{log}");
    // wrong inputs: a non-zero exit and a message naming the problem
    let (ok, log) = mirkit(&[
        "finetune",
        "--data",
        d.join("nope").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!ok && log.contains("nope"), "{log}");
    let (ok, log) = mirkit(&[
        "finetune",
        "--data",
        dd.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--from",
        "mfcc",
        "--head",
        "svm",
    ]);
    assert!(!ok && log.contains("svm"), "{log}");
}

#[test]
fn train_from_scratch_and_resume_a_finished_run() {
    let d = data("train");
    let (dd, out) = (d.join("data"), d.join("run"));
    let args = [
        "train",
        "--data",
        dd.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "2",
        "--channels",
        "4",
        "--batch-size",
        "4",
        "--eval-chunks",
        "1",
    ];
    let (ok, log) = mirkit(&args);
    assert!(ok, "{log}");
    for f in [
        "best.safetensors",
        "last.safetensors",
        "log.csv",
        "loss.png",
        "test.json",
    ] {
        assert!(out.join(f).exists(), "{f}: {log}");
    }
    let best = out.join("best.safetensors");
    let (ok, log) = mirkit(&[
        "eval",
        "--data",
        dd.to_str().unwrap(),
        "--model",
        best.to_str().unwrap(),
        "--eval-chunks",
        "1",
    ]);
    assert!(ok && log.contains("accuracy"), "{log}");
    // --resume on a finished run does no more work, says so and keeps the model
    let before = std::fs::read(&best).unwrap();
    let mut resumed: Vec<&str> = args.to_vec();
    resumed.push("--resume");
    let (ok, log) = mirkit(&resumed);
    assert!(
        ok && log.contains("nothing to train") && log.contains("(2 epochs)"),
        "{log}"
    );
    assert_eq!(std::fs::read(&best).unwrap(), before);
    // with more epochs asked for, the finished run goes on from its last epoch
    let mut more: Vec<&str> = resumed.clone();
    let at = more.iter().position(|a| *a == "2").unwrap();
    more[at] = "3";
    let (ok, log) = mirkit(&more);
    assert!(ok && log.contains("resumed after epoch 2"), "{log}");
    assert!(
        log.contains("epoch   3:") && !log.contains("epoch   1:"),
        "{log}"
    );
    let rows = std::fs::read_to_string(out.join("log.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 3, "{rows}");
}

#[test]
fn finetune_network_keeps_pretrained_bn_statistics_when_asked() {
    let d = data("ftbn");
    let (dd, out) = (d.join("data"), d.join("run"));
    let (ok, log) = mirkit(&[
        "finetune",
        "--data",
        dd.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--from",
        "won2020-musicnn-mtat",
        "--head",
        "network",
        "--frozen-bn-stats",
        "--epochs",
        "1",
        "--batch-size",
        "2",
        "--eval-chunks",
        "1",
    ]);
    assert!(ok, "{log}");
    let test: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("test.json")).unwrap()).unwrap();
    assert_eq!(test["run"]["frozen_bn_stats"], true, "{test}");
    // the running statistics are the pretrained ones, the weights moved
    let dev = candle_core::Device::Cpu;
    let tuned = candle_core::safetensors::load(out.join("best.safetensors"), &dev).unwrap();
    let orig = candle_core::safetensors::load(
        Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("crates/mirkit-weights-won2020-mtat/weights/musicnn.safetensors"),
        &dev,
    )
    .unwrap();
    let v = |m: &std::collections::HashMap<String, candle_core::Tensor>, k: &str| -> Vec<f32> {
        m[k].flatten_all().unwrap().to_vec1().unwrap()
    };
    assert_eq!(
        v(&tuned, "layer1.bn.running_mean"),
        v(&orig, "layer1.bn.running_mean")
    );
    assert_ne!(
        v(&tuned, "layer1.conv.weight"),
        v(&orig, "layer1.conv.weight")
    );
    // a musicnn 0.1.0 model is a frozen feature source only
    let (ok, log) = mirkit(&[
        "finetune",
        "--data",
        dd.to_str().unwrap(),
        "--out",
        d.join("run2").to_str().unwrap(),
        "--from",
        "musicnn-mtt",
        "--head",
        "network",
    ]);
    assert!(!ok && log.contains("frozen feature"), "{log}");
}

/// `finetune --task regression` on a CSV of `path,value` (value: the pitch of a tone in
/// octaves above 100 Hz) with the MFCC baseline features: metrics in test.json, per-track
/// predictions in test_predictions.csv, `eval` reading the regression head (its target
/// column taken from the head) and reporting the same R²; regression where it cannot
/// apply is a usage error (exit 2).
#[test]
fn finetune_regression_head_then_eval() {
    let d = TmpDir::new("mirkit-cli-train-regression-");
    let mut csv = String::from("path,value,split\n");
    for i in 0..36 {
        let octaves = i as f32 / 9.0; // 100 Hz .. ~1.6 kHz
        wav(&d.join(format!("t{i}.wav")), 100.0 * 2f32.powf(octaves), 0);
        let split = ["train", "train", "train", "train", "valid", "test"][i % 6];
        csv.push_str(&format!("t{i}.wav,{octaves},{split}\n"));
    }
    let m = d.join("m.csv");
    std::fs::write(&m, csv).unwrap();
    let out = d.join("run");
    let (ok, log) = mirkit(&[
        "finetune",
        "--data",
        m.to_str().unwrap(),
        "--task",
        "regression",
        "--from",
        "mfcc",
        "--head",
        "knn",
        "--k",
        "1",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    assert!(log.contains("test: R²"), "{log}");
    let t: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("test.json")).unwrap()).unwrap();
    assert_eq!(t["targets"][0], "value");
    assert_eq!(t["tracks"], 6);
    let r2 = t["r2_mean"].as_f64().unwrap();
    // each test tone lies between two training tones a ninth of an octave away: 1-NN is
    // off by at most that, so the ranking is kept and R² is high
    assert!(r2 > 0.9, "R² {r2}");
    assert!(t["spearman_mean"].as_f64().unwrap() > 0.9, "{t}");
    assert!(t["mae"][0].as_f64().unwrap() <= 2.0 / 9.0 + 1e-6, "{t}");
    let preds = std::fs::read_to_string(out.join("test_predictions.csv")).unwrap();
    let lines: Vec<&str> = preds.lines().collect();
    assert_eq!(lines[0], "path,value,value_predicted");
    assert_eq!(lines.len(), 7);
    // recompute R² from the CSV: it is what test.json reports
    let rows: Vec<(f64, f64)> = lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    let mean = rows.iter().map(|r| r.0).sum::<f64>() / 6.0;
    let ss_res: f64 = rows.iter().map(|r| (r.0 - r.1).powi(2)).sum();
    let ss_tot: f64 = rows.iter().map(|r| (r.0 - mean).powi(2)).sum();
    assert!((1.0 - ss_res / ss_tot - r2).abs() < 1e-6);
    let j = d.join("eval.json");
    let head = out.join("head.safetensors");
    let (ok, log) = mirkit(&[
        "eval",
        "--data",
        m.to_str().unwrap(),
        "--model",
        head.to_str().unwrap(),
        "--json",
        j.to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    let e: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
    assert_eq!(e["r2_mean"], t["r2_mean"], "{log}");
    // usage errors
    for args in [
        vec![
            "train",
            "--task",
            "regression",
            "--loss",
            "huber",
            "--huber-delta",
            "-1",
        ],
        vec![
            "finetune",
            "--task",
            "regression",
            "--loss",
            "huber",
            "--huber-delta",
            "0",
        ],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
            .args(&args)
            .args([
                "--data",
                m.to_str().unwrap(),
                "-o",
                d.join("x").to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert_eq!(
            o.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
        .args([
            "finetune",
            "--task",
            "regression",
            "--data",
            d.to_str().unwrap(),
            "-o",
        ])
        .arg(d.join("y"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(2) && err.contains("not a folder"),
        "{err}"
    );
}

/// Regression networks end to end on the tone manifest of the test above: `train` and
/// `finetune --head network` with `--task regression` write test.json (R², Spearman, loss
/// named) and test_predictions.csv in the target's units; `eval` reads the target column
/// from the model file and reports the same R²; `tag` refuses a regression network by
/// name (usage error) instead of printing sigmoid scores of standardised values.
#[test]
fn regression_networks_train_evaluate_and_are_not_taggers() {
    let d = TmpDir::new("mirkit-cli-train-regnet-");
    let mut csv = String::from("path,octaves,split\n");
    for i in 0..18 {
        let octaves = 1.0 + i as f32 / 6.0;
        wav(&d.join(format!("t{i}.wav")), 100.0 * 2f32.powf(octaves), 0);
        let split = ["train", "train", "train", "train", "valid", "test"][i % 6];
        csv.push_str(&format!("t{i}.wav,{octaves},{split}\n"));
    }
    let m = d.join("m.csv");
    std::fs::write(&m, csv).unwrap();
    for (cmd, extra) in [
        ("train", vec!["--channels", "4", "--loss", "huber"]),
        ("finetune", vec!["--head", "network", "--frozen-bn-stats"]),
    ] {
        let out = d.join(cmd);
        let mut args = vec![
            cmd,
            "--data",
            m.to_str().unwrap(),
            "--task",
            "regression",
            "--target",
            "octaves",
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--eval-chunks",
            "1",
            "-o",
            out.to_str().unwrap(),
        ];
        args.extend(extra);
        let (ok, log) = mirkit(&args);
        assert!(ok, "{cmd}: {log}");
        assert!(
            log.contains("valid R²") && log.contains("test: R²"),
            "{log}"
        );
        let t: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("test.json")).unwrap()).unwrap();
        assert_eq!(t["targets"][0], "octaves", "{t}");
        assert_eq!(t["tracks"], 3, "{t}");
        let loss = if cmd == "train" {
            "huber (delta 1)"
        } else {
            "mse"
        };
        assert_eq!(t["run"]["loss"], loss, "{t}");
        // predictions in octaves: after one epoch not accurate, but in the targets' range
        // (standardised outputs would sit near 0)
        let preds = std::fs::read_to_string(out.join("test_predictions.csv")).unwrap();
        for l in preds.lines().skip(1) {
            let p: f64 = l.split(',').nth(2).unwrap().parse().unwrap();
            assert!((0.5..=4.5).contains(&p), "{cmd}: {l}");
        }
        let best = out.join("best.safetensors");
        let j = d.join(format!("{cmd}-eval.json"));
        let (ok, log) = mirkit(&[
            "eval",
            "--data",
            m.to_str().unwrap(),
            "--model",
            best.to_str().unwrap(),
            "--eval-chunks",
            "1",
            "--json",
            j.to_str().unwrap(),
        ]);
        assert!(ok, "{log}");
        let e: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
        assert_eq!(e["r2_mean"], t["r2_mean"], "{log}");
        // `predict` on the test files (and a corrupt one) gives the values test.json was
        // computed from, in the same order; the bad file is reported, exit status 1
        let bad = d.join("bad.wav");
        std::fs::write(&bad, b"RIFF....WAVEfmt nonsense").unwrap();
        let test_files: Vec<String> = preds
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap().to_string())
            .collect();
        let csv_out = d.join(format!("{cmd}-predict.csv"));
        let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
            .args([
                "predict",
                "--eval-chunks",
                "1",
                "--model",
                best.to_str().unwrap(),
            ])
            .args(&test_files)
            .arg(&bad)
            .arg("-o")
            .arg(&csv_out)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(err.contains("bad.wav"), "{err}");
        let got = std::fs::read_to_string(&csv_out).unwrap();
        let want: Vec<String> = preds
            .lines()
            .skip(1)
            .map(|l| {
                let f: Vec<&str> = l.split(',').collect();
                format!("{},{}", f[0], f[2])
            })
            .collect();
        assert_eq!(got.lines().next(), Some("path,octaves"));
        assert_eq!(got.lines().skip(1).collect::<Vec<_>>(), want, "{got}");
        if cmd == "finetune" {
            let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
                .args(["tag", "--model", best.to_str().unwrap()])
                .arg(d.join("t0.wav"))
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.code() == Some(2) && err.contains("regression network"),
                "{err}"
            );
        }
    }
}

fn clip(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("data/clips")
    .join(name)
}

/// Across data sets: `tag --vocabulary msd` answers an MTAT model in MSD tags (only
/// tags with a counterpart), and `eval --vocabulary jamendo` scores an MTAT tagger on a
/// Jamendo-tagged manifest over the tags both share, naming those it cannot score.
#[test]
fn tags_and_eval_across_vocabularies() {
    let d = TmpDir::new("mirkit-cli-vocab-");
    std::fs::copy(
        clip("brahms_hungarian_dance_5.hq.ogg"),
        d.join("brahms.ogg"),
    )
    .unwrap();
    std::fs::copy(
        clip("sorohanro_-_solo-trumpet-06.hq.ogg"),
        d.join("trumpet.ogg"),
    )
    .unwrap();
    wav(&d.join("tone.wav"), 440.0, 0);
    let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
        .args(["tag", "--model", "won2020-fcn-mtat", "--vocabulary", "msd"])
        .args(["--format", "json", "-k", "50"])
        .arg(d.join("brahms.ogg"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("answering in msd tags") && err.contains("jazz"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let tags: Vec<&str> = v[0]["scores"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert!(
        tags.contains(&"female vocalists") && tags.contains(&"rock"),
        "{tags:?}"
    );
    assert!(
        !tags.contains(&"jazz") && !tags.contains(&"classical"),
        "{tags:?}"
    );
    std::fs::write(
        d.join("m.csv"),
        "path,label,split\n\
         brahms.ogg,genre---classical|instrument---strings,test\n\
         trumpet.ogg,genre---jazz,test\n\
         tone.wav,genre---electronic,test\n\
         tone.wav,genre---electronic,train\n\
         tone.wav,genre---electronic,valid\n",
    )
    .unwrap();
    let j = d.join("e.json");
    let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
        .args([
            "eval",
            "--model",
            "won2020-fcn-mtat",
            "--vocabulary",
            "jamendo",
        ])
        .args(["--tag-sep", "|", "--eval-chunks", "1", "--data"])
        .arg(d.join("m.csv"))
        .arg("--json")
        .arg(&j)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("no counterpart in the model's tags: genre---jazz"),
        "{err}"
    );
    let e: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&j).unwrap()).unwrap();
    assert_eq!(
        e["tags"],
        serde_json::json!([
            "genre---classical",
            "genre---electronic",
            "instrument---strings"
        ])
    );
    for r in e["roc_auc"].as_array().unwrap() {
        assert!((0.0..=1.0).contains(&r.as_f64().unwrap()));
    }
    // an unknown vocabulary is a usage error; a model of no known vocabulary too
    let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
        .args(["tag", "--vocabulary", "gtzan"])
        .arg(d.join("tone.wav"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}
