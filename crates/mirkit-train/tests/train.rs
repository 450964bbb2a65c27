//! The training loop on generated signals: it learns, a killed run resumes to the
//! bit-identical result, and bad configurations are typed errors.

use mirkit_core::rng::Rng;
use mirkit_train::audio::AudioSet;
use mirkit_train::data::{Item, Task};
use mirkit_train::trainer::{
    sorted_vars, train, Control, Progress, TrainConfig, TrainData, Trainable,
};
use mirkit_train::zoo::ScratchModel;
use mirkit_train::TrainError;
use std::path::PathBuf;

/// Class 0: a low tone (200–400 Hz), class 1: a high tone (2–4 kHz), both in noise,
/// random amplitude; 4 s at 16 kHz.
fn tones(n_per_class: usize, seed: u64) -> AudioSet {
    let mut items = vec![];
    let mut audio = vec![];
    let mut rng = Rng::new(seed);
    for i in 0..2 * n_per_class {
        let class = i % 2;
        let f = if class == 0 {
            rng.range(200.0, 400.0)
        } else {
            rng.range(2000.0, 4000.0)
        };
        let a = rng.range(0.1, 0.5);
        let y: Vec<f32> = (0..64_000)
            .map(|t| {
                (a * (2.0 * std::f64::consts::PI * f * t as f64 / 16_000.0).sin()
                    + 0.02 * rng.normal()) as f32
            })
            .collect();
        items.push(Item {
            path: PathBuf::from(format!("tone{i}.wav")),
            labels: vec![class],
            values: Vec::new(),
            split: None,
        });
        audio.push(y);
    }
    AudioSet::from_memory(items, audio, 16_000).unwrap()
}

fn classes() -> Vec<String> {
    vec!["low".into(), "high".into()]
}

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 4,
        chunk_len: mirkit_train::zoo::SHORT_CHUNK_LEN,
        eval_chunks: 2,
        patience: None,
        seed: 7,
        ..TrainConfig::default()
    }
}

fn weights(m: &ScratchModel) -> Vec<(String, Vec<f32>)> {
    sorted_vars(m.varmap())
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect()
}

/// Trains `m` on the tones with AdamW at `lr` (no decay) for `epochs`, uninterrupted.
fn train_adamw(
    m: &ScratchModel,
    tr: &AudioSet,
    va: &AudioSet,
    dir: &std::path::Path,
    epochs: usize,
    lr: f64,
) -> mirkit_train::trainer::TrainReport {
    let c = TrainConfig {
        optimizer: mirkit_train::trainer::OptimizerConfig::AdamW {
            lr,
            weight_decay: 0.0,
        },
        ..cfg(epochs)
    };
    train(
        m,
        TrainData {
            train: tr,
            valid: va,
            task: Task::MultiClass,
            classes: &classes(),
        },
        &c,
        dir,
        false,
        &mut |_| Control::Continue,
    )
    .unwrap()
}

/// Reloads a run's best model and checks it reproduces the recorded best validation loss
/// (2 evaluation chunks, as the loop evaluates).
fn reload_best(r: &mirkit_train::trainer::TrainReport, va: &AudioSet, label: &str) -> ScratchModel {
    let back = ScratchModel::load(&r.best_path).unwrap();
    let p = mirkit_train::trainer::predict(
        &back,
        va,
        Task::MultiClass,
        2,
        mirkit_train::zoo::SHORT_CHUNK_LEN,
        2,
    )
    .unwrap();
    assert!(
        (p.loss - r.best_valid_loss).abs() < 1e-6,
        "{label}: {} vs {}",
        p.loss,
        r.best_valid_loss
    );
    back
}

#[test]
fn learns_low_vs_high_tones() {
    let (tr, va) = (tones(8, 1), tones(3, 2));
    let m = ScratchModel::new("short-chunk-cnn", 4, &classes(), 0).unwrap();
    let dir = tempdir("learns");
    // AdamW 1e-3: every model seed 0..7 tried reaches (and keeps) full validation
    // accuracy by epoch 8 of 12 — validation waits for the batch-norm running statistics
    // (momentum 0.1) to settle. At 1e-2 the outcome hung on the initialisation: one seed
    // never left chance level and another oscillated between 0.67 and 1.0, so a change in
    // the last bits of the features could flip the result.
    let r = train_adamw(&m, &tr, &va, &dir, 12, 1e-3);
    let last = r.history.last().unwrap();
    assert!(
        last.valid_metric == 1.0,
        "validation accuracy {:?}",
        r.history
    );
    assert!(r.history[0].train_loss > last.train_loss, "{:?}", r.history);
    // the saved best model reloads and gives the same validation predictions
    reload_best(&r, &va, "short-chunk-cnn");
    for f in [
        "log.csv",
        "loss.png",
        "metric.png",
        "last.safetensors",
        "best.safetensors",
    ] {
        assert!(dir.join(f).exists(), "{f}");
    }
    let csv = std::fs::read_to_string(dir.join("log.csv")).unwrap();
    assert_eq!(csv.lines().count(), 13, "{csv}");
}

#[test]
fn killed_run_resumes_to_the_same_result() {
    let (tr, va) = (tones(4, 3), tones(2, 4));
    let c = cfg(4);
    // uninterrupted
    let a = ScratchModel::new("short-chunk-cnn", 4, &classes(), 5).unwrap();
    let da = tempdir("uninterrupted");
    let ra = train(
        &a,
        TrainData {
            train: &tr,
            valid: &va,
            task: Task::MultiClass,
            classes: &classes(),
        },
        &c,
        &da,
        false,
        &mut |_| Control::Continue,
    )
    .unwrap();
    // killed in the middle of epoch 2 (after one step), then resumed by a new process
    let db = tempdir("killed");
    let b = ScratchModel::new("short-chunk-cnn", 4, &classes(), 5).unwrap();
    let err = train(
        &b,
        TrainData {
            train: &tr,
            valid: &va,
            task: Task::MultiClass,
            classes: &classes(),
        },
        &c,
        &db,
        false,
        &mut |p| match p {
            Progress::Step {
                epoch: 2, step: 1, ..
            } => Control::Stop,
            _ => Control::Continue,
        },
    )
    .unwrap_err();
    assert!(
        matches!(err, TrainError::Interrupted { epoch: 2, steps: 1 }),
        "{err}"
    );
    // a crash during a checkpoint write leaves only a stray temporary file
    std::fs::write(db.join("last.safetensors.part999"), b"half a file").unwrap();
    let b2 = ScratchModel::new("short-chunk-cnn", 4, &classes(), 99).unwrap(); // different init: must be overwritten
    let mut resumed_at = None;
    let rb = train(
        &b2,
        TrainData {
            train: &tr,
            valid: &va,
            task: Task::MultiClass,
            classes: &classes(),
        },
        &c,
        &db,
        true,
        &mut |p| {
            if let Progress::Resumed(e) = p {
                resumed_at = Some(e);
            }
            Control::Continue
        },
    )
    .unwrap();
    assert_eq!(resumed_at, Some(2));
    assert_eq!(
        weights(&a),
        weights(&b2),
        "resumed weights differ from the uninterrupted run"
    );
    assert_eq!(ra.history.len(), rb.history.len());
    for (x, y) in ra.history.iter().zip(&rb.history) {
        assert_eq!(
            (x.train_loss, x.valid_loss, x.valid_metric),
            (y.train_loss, y.valid_loss, y.valid_metric)
        );
    }
    assert_eq!(ra.best_epoch, rb.best_epoch);
    // resuming with another seed is refused, naming the checkpoint
    let c2 = TrainConfig {
        seed: 8,
        ..c.clone()
    };
    let e = train(
        &b2,
        TrainData {
            train: &tr,
            valid: &va,
            task: Task::MultiClass,
            classes: &classes(),
        },
        &c2,
        &db,
        true,
        &mut |_| Control::Continue,
    )
    .unwrap_err();
    assert!(e.to_string().contains("last.safetensors"), "{e}");
}

#[test]
fn bad_configurations_are_typed_errors() {
    let (tr, va) = (tones(2, 5), tones(1, 6));
    let m = ScratchModel::new("short-chunk-cnn", 4, &classes(), 0).unwrap();
    let dir = tempdir("bad");
    let empty = AudioSet::from_memory(vec![], vec![], 16_000).unwrap();
    let run = |tr: &AudioSet, va: &AudioSet, classes: &[String], c: &TrainConfig| {
        train(
            &m,
            TrainData {
                train: tr,
                valid: va,
                task: Task::MultiClass,
                classes,
            },
            c,
            &dir,
            false,
            &mut |_| Control::Continue,
        )
    };
    assert!(matches!(
        run(&empty, &va, &classes(), &cfg(1)),
        Err(TrainError::EmptySplit { .. })
    ));
    assert!(matches!(
        run(&tr, &empty, &classes(), &cfg(1)),
        Err(TrainError::EmptySplit { .. })
    ));
    // a head with 2 outputs trained against 3 classes
    let three: Vec<String> = vec!["a".into(), "b".into(), "c".into()];
    let e = run(&tr, &va, &three, &cfg(1)).unwrap_err();
    assert!(matches!(e, TrainError::Mismatch { .. }), "{e}");
    assert!(run(
        &tr,
        &va,
        &classes(),
        &TrainConfig {
            batch_size: 0,
            ..cfg(1)
        }
    )
    .is_err());
    assert!(ScratchModel::new("no-such-net", 4, &classes(), 0).is_err());
    assert!(AudioSet::from_memory(vec![], vec![vec![f32::NAN]], 16_000).is_err());
}

use mirkit_core::testing::TmpDir;

fn tempdir(name: &str) -> TmpDir {
    TmpDir::new(&format!("mirkit-train-test-{name}-"))
}

#[test]
fn won2020_recipe_switches_phases_and_reloads_the_best() {
    // patience 1: every epoch without a lower validation loss moves to the next phase
    let (tr, va) = (tones(2, 8), tones(1, 9));
    let m = ScratchModel::new("short-chunk-cnn", 4, &classes(), 1).unwrap();
    let dir = tempdir("won");
    let c = TrainConfig {
        optimizer: mirkit_train::trainer::OptimizerConfig::Won2020 {
            adam_patience: 1,
            sgd_patience: 1,
        },
        ..cfg(8)
    };
    let r = train(
        &m,
        TrainData {
            train: &tr,
            valid: &va,
            task: Task::MultiClass,
            classes: &classes(),
        },
        &c,
        &dir,
        false,
        &mut |_| Control::Continue,
    )
    .unwrap();
    let lrs: Vec<f64> = r.history.iter().map(|h| h.lr).collect();
    assert_eq!(lrs[0], 1e-4, "{lrs:?}");
    // rates only move along Adam 1e-4 → SGD 1e-3 → 1e-4 → 1e-5, and a switch happens
    // exactly after an epoch that did not improve
    let mut phase = 0;
    for w in r.history.windows(2) {
        if w[1].lr != w[0].lr {
            phase += 1;
            assert_eq!(w[1].lr, [1e-4, 1e-3, 1e-4, 1e-5][phase], "{lrs:?}");
        }
    }
    assert!(phase >= 1, "no phase switch in {lrs:?}");
    let best_loss = r
        .history
        .iter()
        .map(|h| h.valid_loss)
        .fold(f64::INFINITY, f64::min);
    assert_eq!(best_loss, r.best_valid_loss);
}

#[test]
fn raw_waveform_models_train_save_and_reload() {
    let (tr, va) = (tones(8, 1), tones(3, 2));
    // width 2 keeps this quick in a debug build; the wiring is what is tested
    for arch in ["samplecnn", "samplecnn-se", "rese2"] {
        let m = ScratchModel::new(arch, 2, &classes(), 0).unwrap();
        let dir = tempdir(arch);
        let r = train_adamw(&m, &tr, &va, &dir, 4, 1e-2);
        let first = r.history[0].train_loss;
        let best = r
            .history
            .iter()
            .map(|h| h.train_loss)
            .fold(f64::INFINITY, f64::min);
        assert!(best < first, "{arch}: {:?}", r.history);
        let back = reload_best(&r, &va, arch);
        assert_eq!(back.param_count(), m.param_count());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
