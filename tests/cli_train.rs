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
    // --resume on a finished run does no more work and keeps the model
    let before = std::fs::read(&best).unwrap();
    let mut resumed: Vec<&str> = args.to_vec();
    resumed.push("--resume");
    let (ok, log) = mirkit(&resumed);
    assert!(ok && log.contains("resumed after epoch 2"), "{log}");
    assert_eq!(std::fs::read(&best).unwrap(), before);
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
        Path::new(env!("CARGO_MANIFEST_DIR"))
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
