//! Regression networks in the training loop: targets standardised with the model's
//! [`TargetScaling`], predictions back in the targets' units, MSE and Huber, the scaling
//! saved with the model, and typed errors where the pieces do not fit.

use candle_core::{DType, Device, Tensor};
use candle_nn::{Module, VarBuilder, VarMap};
use mirkit_core::rng::Rng;
use mirkit_core::testing::TmpDir;
use mirkit_nn::loss::RegressionLoss;
use mirkit_train::audio::AudioSet;
use mirkit_train::data::{Item, TargetScaling, Task};
use mirkit_train::trainer::{predict, train, Control, TrainConfig, TrainData, Trainable};
use mirkit_train::zoo::ScratchModel;
use mirkit_train::TrainError;
use std::path::PathBuf;

/// Tones of random amplitude `a` in [0.1, 0.5] whose target is `60 + 400 a` ("BPM",
/// 100–260: far from 0 and 1, so predictions in standardised units would be obvious).
fn loud_tones(n: usize, seed: u64) -> AudioSet {
    let mut rng = Rng::new(seed);
    let (mut items, mut audio) = (vec![], vec![]);
    for i in 0..n {
        let a = rng.range(0.1, 0.5);
        let y: Vec<f32> = (0..8_000)
            .map(|t| (a * (std::f64::consts::TAU * 440.0 * t as f64 / 16_000.0).sin()) as f32)
            .collect();
        items.push(Item {
            path: PathBuf::from(format!("t{i}.wav")),
            labels: vec![],
            values: vec![(60.0 + 400.0 * a) as f32],
            split: None,
        });
        audio.push(y);
    }
    AudioSet::from_memory(items, audio, 16_000).unwrap()
}

/// A linear model on the chunk's RMS (·√2 = the amplitude): one weight and one bias,
/// starting at zero, so the run is the same every time.
struct Loudness {
    vm: VarMap,
    lin: candle_nn::Linear,
    scaling: Option<TargetScaling>,
}

impl Loudness {
    fn new(scaling: Option<TargetScaling>) -> Self {
        let vm = VarMap::new();
        let vb = VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu);
        let lin = candle_nn::linear(1, 1, vb.pp("out")).unwrap();
        for (_, v) in vm.data().lock().unwrap().iter() {
            v.set(&v.as_tensor().zeros_like().unwrap()).unwrap();
        }
        Self { vm, lin, scaling }
    }
}

impl Trainable for Loudness {
    fn prepare(&self, chunk: &[f32]) -> mirkit_train::Result<Tensor> {
        let rms = (chunk.iter().map(|v| v * v).sum::<f32>() / chunk.len() as f32).sqrt();
        Ok(Tensor::from_vec(vec![rms * 2f32.sqrt()], 1, &Device::Cpu)?)
    }
    fn forward_t(&self, x: &Tensor, _train: bool) -> mirkit_train::Result<Tensor> {
        Ok(self.lin.forward(x)?)
    }
    fn varmap(&self) -> &VarMap {
        &self.vm
    }
    fn target_scaling(&self) -> Option<&TargetScaling> {
        self.scaling.as_ref()
    }
}

fn cfg(loss: RegressionLoss) -> TrainConfig {
    TrainConfig {
        epochs: 150,
        batch_size: 8,
        chunk_len: 4_000,
        eval_chunks: 1,
        optimizer: mirkit_train::trainer::OptimizerConfig::AdamW {
            lr: 0.1,
            weight_decay: 0.0,
        },
        patience: None,
        regression_loss: loss,
        seed: 3,
        ..TrainConfig::default()
    }
}

fn values(set: &AudioSet) -> Vec<Vec<f32>> {
    set.items.iter().map(|i| i.values.clone()).collect()
}

fn run(m: &Loudness, tr: &AudioSet, va: &AudioSet, c: &TrainConfig, dir: &TmpDir) -> f64 {
    let targets = vec!["bpm".to_string()];
    let r = train(
        m,
        TrainData {
            train: tr,
            valid: va,
            task: Task::Regression,
            classes: &targets,
        },
        c,
        dir,
        false,
        &mut |_| Control::Continue,
    )
    .unwrap();
    let last = r.history.last().unwrap();
    assert!(last.valid_loss.is_finite());
    last.valid_metric // R²
}

#[test]
fn learns_a_value_in_its_units_with_mse_and_huber() {
    let (tr, va) = (loud_tones(32, 1), loud_tones(12, 2));
    let s = TargetScaling::fit(&values(&tr), 1).unwrap();
    for loss in [RegressionLoss::Mse, RegressionLoss::Huber { delta: 0.5 }] {
        let dir = TmpDir::new("mirkit-train-regression-");
        let m = Loudness::new(Some(s.clone()));
        let r2 = run(&m, &tr, &va, &cfg(loss), &dir);
        // the target is an exact linear function of the feature: R² near 1 on unseen tones
        assert!(r2 > 0.99, "{loss:?}: valid R² {r2}");
        let p = predict(&m, &va, Task::Regression, 1, 4_000, 1).unwrap();
        for (pred, it) in p.probs.iter().zip(&va.items) {
            // in BPM, not in standard deviations
            assert!(
                (pred - it.values[0]).abs() < 3.0,
                "{pred} vs {}",
                it.values[0]
            );
        }
    }
}

#[test]
fn regression_needs_a_scaling_that_fits() {
    let (tr, va) = (loud_tones(8, 1), loud_tones(4, 2));
    let dir = TmpDir::new("mirkit-train-regression-bad-");
    let targets = vec!["bpm".to_string()];
    let go = |m: &Loudness, tr: &AudioSet, targets: &[String]| {
        train(
            m,
            TrainData {
                train: tr,
                valid: &va,
                task: Task::Regression,
                classes: targets,
            },
            &cfg(RegressionLoss::Mse),
            &dir,
            false,
            &mut |_| Control::Continue,
        )
    };
    // no scaling: refused by name, before anything is written
    let e = go(&Loudness::new(None), &tr, &targets).err().unwrap();
    assert!(
        matches!(&e, TrainError::Invalid { why, .. } if why.contains("target standardisation")),
        "{e}"
    );
    assert!(!dir.join("last.safetensors").exists());
    assert!(predict(&Loudness::new(None), &va, Task::Regression, 1, 4_000, 1).is_err());
    // scaling for two targets, one output named
    let two = TargetScaling {
        mean: vec![0.0, 0.0],
        std: vec![1.0, 1.0],
    };
    let e = go(&Loudness::new(Some(two)), &tr, &targets).err().unwrap();
    assert!(matches!(e, TrainError::Mismatch { .. }), "{e}");
    // an item with two values for one target
    let mut odd = tr.clone();
    odd.items[3].values.push(1.0);
    let s = TargetScaling::fit(&values(&tr), 1).unwrap();
    let e = go(&Loudness::new(Some(s)), &odd, &targets).err().unwrap();
    assert!(e.to_string().contains("t3.wav"), "{e}");
    // fitting a scaling: no rows, ragged rows, non-finite values
    assert!(TargetScaling::fit(&[], 1).is_err());
    assert!(TargetScaling::fit(&[vec![1.0], vec![1.0, 2.0]], 1).is_err());
    assert!(TargetScaling::fit(&[vec![f32::NAN]], 1).is_err());
    // a constant target keeps a scale of 1
    assert_eq!(
        TargetScaling::fit(&[vec![5.0], vec![5.0]], 1).unwrap().std,
        vec![1.0]
    );
}

#[test]
fn a_scratch_regression_network_saves_and_reloads_its_scaling() {
    let (tr, va) = (loud_tones(8, 1), loud_tones(4, 2));
    let targets = vec!["bpm".to_string()];
    let s = TargetScaling::fit(&values(&tr), 1).unwrap();
    let m = ScratchModel::new("short-chunk-cnn", 4, &targets, 0)
        .unwrap()
        .regression(s.clone())
        .unwrap();
    let dir = TmpDir::new("mirkit-train-regression-scratch-");
    let c = TrainConfig {
        epochs: 1,
        batch_size: 4,
        chunk_len: mirkit_train::zoo::SHORT_CHUNK_LEN,
        eval_chunks: 1,
        ..TrainConfig::default()
    };
    let r = train(
        &m,
        TrainData {
            train: &tr,
            valid: &va,
            task: Task::Regression,
            classes: &targets,
        },
        &c,
        &dir,
        false,
        &mut |_| Control::Continue,
    )
    .unwrap();
    let back = ScratchModel::load(&r.best_path).unwrap();
    assert_eq!(back.target_scaling(), Some(&s));
    let len = mirkit_train::zoo::SHORT_CHUNK_LEN;
    let p = predict(&back, &va, Task::Regression, 1, len, 1).unwrap();
    let q = predict(&m, &va, Task::Regression, 1, len, 1).unwrap();
    assert_eq!(p.probs, q.probs);
    // a regression file whose scaling was stripped is refused by name
    let (t, mut meta) = mirkit_train::ckpt::load(&r.best_path).unwrap();
    meta.remove(TargetScaling::STD_KEY);
    let stripped = dir.join("stripped.safetensors");
    let named: Vec<(String, Tensor)> = t.into_iter().collect();
    mirkit_train::ckpt::save(&stripped, &named, &meta).unwrap();
    let e = ScratchModel::load(&stripped).err().unwrap().to_string();
    assert!(e.contains("target_std"), "{e}");
    // and so is one whose scaling has the wrong width
    meta.insert(TargetScaling::STD_KEY.into(), "[1.0, 2.0]".into());
    mirkit_train::ckpt::save(&stripped, &named, &meta).unwrap();
    assert!(ScratchModel::load(&stripped).is_err());
}
