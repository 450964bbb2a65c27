//! Heads on embeddings and fine-tuning of a compiled-in pretrained tagger.

use mirkit_core::rng::Rng;
use mirkit_models::registry;
use mirkit_train::audio::AudioSet;
use mirkit_train::data::{Item, Task};
use mirkit_train::trainer::{sorted_vars, train, Control, TrainConfig, TrainData, Trainable};
use mirkit_transfer::embed::Embeddings;
use mirkit_transfer::finetune::{FineTune, FineTuneConfig, Freeze};
use mirkit_transfer::heads::{Head, HeadConfig, HeadKind};

/// Three Gaussian blobs in 16 dimensions.
fn blobs(n: usize, seed: u64) -> (Embeddings, Vec<Vec<usize>>) {
    let mut rng = Rng::new(seed);
    let mut data = vec![];
    let mut labels = vec![];
    for i in 0..n {
        let c = i % 3;
        for j in 0..16 {
            let centre = if j % 3 == c { 3.0 } else { 0.0 };
            data.push((centre + rng.normal()) as f32 * 5.0 + 100.0); // far from standardised
        }
        labels.push(vec![c]);
    }
    (
        Embeddings {
            n,
            dim: 16,
            data,
            blocks: vec![("x".into(), 16)],
        },
        labels,
    )
}

fn acc(p: &[f32], labels: &[Vec<usize>]) -> f64 {
    let pred = mirkit_train::metrics::argmax_rows(p, 3);
    pred.iter().zip(labels).filter(|(p, l)| **p == l[0]).count() as f64 / labels.len() as f64
}

fn classes3() -> Vec<String> {
    vec!["a".into(), "b".into(), "c".into()]
}

use mirkit_core::testing::TmpDir;

fn tmp(name: &str) -> TmpDir {
    TmpDir::new(&format!("mirkit-transfer-{name}-"))
}

#[test]
fn heads_learn_save_and_reload() {
    let (x, y) = blobs(150, 1);
    let (vx, vy) = blobs(60, 2);
    let (tx, ty) = blobs(90, 3);
    let d = tmp("heads");
    for kind in [
        HeadKind::Linear,
        HeadKind::Mlp {
            hidden: 32,
            dropout: 0.2,
        },
        HeadKind::Knn { k: 5 },
    ] {
        let cfg = HeadConfig {
            kind: kind.clone(),
            epochs: 60,
            ..HeadConfig::default()
        };
        let h = Head::fit(
            &x,
            &y,
            Some((&vx, &vy)),
            &classes3(),
            Task::MultiClass,
            &cfg,
        )
        .unwrap();
        let p = h.predict(&tx).unwrap();
        assert!(
            acc(&p, &ty) > 0.95,
            "{} accuracy {}",
            kind.name(),
            acc(&p, &ty)
        );
        // same seed, same head
        let h2 = Head::fit(
            &x,
            &y,
            Some((&vx, &vy)),
            &classes3(),
            Task::MultiClass,
            &cfg,
        )
        .unwrap();
        assert_eq!(p, h2.predict(&tx).unwrap());
        let path = d.join(format!("{}.safetensors", kind.name()));
        let mut meta = std::collections::HashMap::new();
        meta.insert("embedding_model".to_string(), "blobs".to_string());
        h.save(&path, &meta).unwrap();
        let (back, m) = Head::load(&path).unwrap();
        assert_eq!(m["embedding_model"], "blobs");
        assert_eq!(back.predict(&tx).unwrap(), p);
    }
}

#[test]
fn head_errors_are_typed() {
    let (x, y) = blobs(30, 1);
    let cfg = HeadConfig {
        epochs: 2,
        ..HeadConfig::default()
    };
    // labels beyond the class list (a head/tag-set size mismatch)
    let two = vec!["a".to_string(), "b".to_string()];
    let e = Head::fit(&x, &y, None, &two, Task::MultiClass, &cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("label index vs classes"), "{e}");
    let e = Head::fit(&x, &y[..10], None, &classes3(), Task::MultiClass, &cfg)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("embeddings vs labels"), "{e}");
    let h = Head::fit(&x, &y, None, &classes3(), Task::MultiClass, &cfg).unwrap();
    let narrow = Embeddings {
        n: 1,
        dim: 4,
        data: vec![0.0; 4],
        blocks: vec![],
    };
    assert!(h.predict(&narrow).is_err());
    let d = tmp("headerr");
    std::fs::write(d.join("junk.safetensors"), b"not a safetensors file").unwrap();
    assert!(Head::load(&d.join("junk.safetensors")).is_err());
    let mut bad = x.clone();
    bad.data[3] = f32::NAN;
    assert!(Head::fit(&bad, &y, None, &classes3(), Task::MultiClass, &cfg).is_err());
}

/// 12-d features far from standardised; two targets in very different units: a linear
/// function of the features in "BPM" (≈ 120 ± 30) and a nonlinear one in [−1, 1], plus
/// noise.
fn regression_set(n: usize, seed: u64) -> (Embeddings, Vec<Vec<f32>>) {
    let mut rng = Rng::new(seed);
    let (mut data, mut y) = (vec![], vec![]);
    for _ in 0..n {
        let f: Vec<f64> = (0..12).map(|_| rng.normal()).collect();
        data.extend(f.iter().map(|v| (*v * 7.0 + 50.0) as f32));
        let bpm = 120.0 + 20.0 * f[0] - 15.0 * f[3] + 8.0 * f[7] + 2.0 * rng.normal();
        let val = (f[1] * f[2]).tanh() + 0.05 * rng.normal();
        y.push(vec![bpm as f32, val as f32]);
    }
    (
        Embeddings {
            n,
            dim: 12,
            data,
            blocks: vec![("x".into(), 12)],
        },
        y,
    )
}

fn column(y: &[Vec<f32>], j: usize) -> Vec<f64> {
    y.iter().map(|r| r[j] as f64).collect()
}

/// Regression heads: the linear head recovers the linear target in its own units
/// (R² > 0.97 where the noise allows ≈ 0.99), the MLP also fits the nonlinear one
/// (R² > 0.5, where a linear head explains nothing: |R²| < 0.2), k-NN predicts the mean of its neighbours'
/// values (checked by hand for k = 1 on training rows), Huber trains too, and every head
/// reloads to the same predictions.
#[test]
fn regression_heads_fit_in_target_units_and_reload() {
    use mirkit_nn::loss::RegressionLoss;
    use mirkit_train::metrics::r2_score;
    let (x, y) = regression_set(400, 11);
    let (vx, vy) = regression_set(100, 12);
    let (tx, ty) = regression_set(200, 13);
    let names = vec!["tempo_bpm".to_string(), "valence".to_string()];
    let d = tmp("regression");
    let mut meta = std::collections::HashMap::new();
    meta.insert("embedding_model".to_string(), "synthetic".to_string());
    let r2 = |p: &[f32], j: usize| {
        let pj: Vec<f64> = (0..ty.len()).map(|i| p[i * 2 + j] as f64).collect();
        r2_score(&pj, &column(&ty, j)).unwrap()
    };
    for (kind, loss, min_bpm, min_val) in [
        (HeadKind::Linear, RegressionLoss::Mse, 0.97, f64::NAN),
        (
            HeadKind::Linear,
            RegressionLoss::Huber { delta: 1.0 },
            0.97,
            f64::NAN,
        ),
        (
            HeadKind::Mlp {
                hidden: 64,
                dropout: 0.1,
            },
            RegressionLoss::Mse,
            0.9,
            0.5,
        ),
        (HeadKind::Knn { k: 5 }, RegressionLoss::Mse, 0.5, 0.0),
    ] {
        let cfg = HeadConfig {
            kind: kind.clone(),
            loss,
            epochs: 150,
            lr: if matches!(kind, HeadKind::Mlp { .. }) {
                3e-3
            } else {
                1e-2
            },
            seed: 3,
            ..HeadConfig::default()
        };
        let h = Head::fit_regression(&x, &y, Some((&vx, &vy)), &names, &cfg).unwrap();
        assert_eq!(h.task(), Task::Regression);
        let p = h.predict(&tx).unwrap();
        assert_eq!(p.len(), 400);
        let (a, b) = (r2(&p, 0), r2(&p, 1));
        eprintln!("{kind:?} {loss:?}: R² tempo {a:.4} valence {b:.4}");
        assert!(a > min_bpm, "{kind:?} {loss:?}: R² tempo {a}");
        if matches!(kind, HeadKind::Linear) {
            // tanh(f1·f2) has no linear component: a linear head explains none of it
            assert!(b.abs() < 0.2, "{kind:?} {loss:?}: R² valence {b}");
        } else {
            assert!(b > min_val, "{kind:?} {loss:?}: R² valence {b}");
        }
        let path = d.join(format!("{}.safetensors", kind.name()));
        h.save(&path, &meta).unwrap();
        let (back, _) = Head::load(&path).unwrap();
        assert_eq!(back.predict(&tx).unwrap(), p, "{kind:?} reload");
    }
    // 1-NN on its own training rows returns their values (up to the standardise /
    // unstandardise round trip in f32)
    let cfg = HeadConfig {
        kind: HeadKind::Knn { k: 1 },
        ..HeadConfig::default()
    };
    let h = Head::fit_regression(&x, &y, None, &names, &cfg).unwrap();
    let p = h.predict(&x).unwrap();
    for (i, r) in y.iter().enumerate() {
        for j in 0..2 {
            assert!((p[i * 2 + j] - r[j]).abs() <= 1e-4 * r[j].abs().max(1.0));
        }
    }
    // k-NN with k = n predicts the training mean for every row
    let cfg = HeadConfig {
        kind: HeadKind::Knn { k: 400 },
        ..HeadConfig::default()
    };
    let p = Head::fit_regression(&x, &y, None, &names, &cfg)
        .unwrap()
        .predict(&tx)
        .unwrap();
    let mean0 = column(&y, 0).iter().sum::<f64>() / 400.0;
    assert!((p[0] as f64 - mean0).abs() < 1e-3, "{} vs {mean0}", p[0]);
}

#[test]
fn regression_head_errors_are_typed() {
    use mirkit_nn::loss::RegressionLoss;
    let (x, y) = regression_set(30, 1);
    let names = vec!["a".to_string(), "b".to_string()];
    let cfg = HeadConfig {
        epochs: 2,
        ..HeadConfig::default()
    };
    let err = |r: mirkit_transfer::Result<Head>| r.err().expect("an error").to_string();
    let e = err(Head::fit_regression(&x, &y[..10], None, &names, &cfg));
    assert!(e.contains("embeddings vs target rows"), "{e}");
    let e = err(Head::fit_regression(&x, &y, None, &names[..1], &cfg));
    assert!(e.contains("values of row 0 vs targets"), "{e}");
    let mut bad = y.clone();
    bad[4][1] = f32::INFINITY;
    let e = err(Head::fit_regression(&x, &bad, None, &names, &cfg));
    assert!(e.contains("row 4") && e.contains("finite"), "{e}");
    let huber0 = HeadConfig {
        loss: RegressionLoss::Huber { delta: 0.0 },
        ..cfg.clone()
    };
    let e = err(Head::fit_regression(&x, &y, None, &names, &huber0));
    assert!(e.contains("huber delta"), "{e}");
    // classification entry point refuses regression, and vice versa for the task
    let labels: Vec<Vec<usize>> = (0..30).map(|i| vec![i % 2]).collect();
    let e = err(Head::fit(&x, &labels, None, &names, Task::Regression, &cfg));
    assert!(e.contains("fit_regression"), "{e}");
}

fn tones(n: usize, seed: u64) -> AudioSet {
    let mut rng = Rng::new(seed);
    let (mut items, mut audio) = (vec![], vec![]);
    for i in 0..n {
        let f = if i % 2 == 0 {
            rng.range(100.0, 200.0)
        } else {
            rng.range(3000.0, 5000.0)
        };
        audio.push(
            (0..56_000)
                .map(|t| (0.3 * (std::f64::consts::TAU * f * t as f64 / 16000.0).sin()) as f32)
                .collect(),
        );
        items.push(Item {
            path: format!("t{i}.wav").into(),
            labels: vec![i % 2],
            values: Vec::new(),
            split: None,
        });
    }
    AudioSet::from_memory(items, audio, 16000).unwrap()
}

#[test]
fn fine_tuned_musicnn_saves_as_a_tagger() {
    let classes = vec!["low".to_string(), "high".to_string()];
    let (tr, va) = (tones(4, 1), tones(2, 2));
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 2,
        chunk_len: 48_000,
        eval_chunks: 1,
        patience: None,
        ..TrainConfig::default()
    };
    // body frozen: only the new output layer may change
    let ft = FineTune::new(
        "won2020-musicnn-mtat",
        &classes,
        FineTuneConfig {
            freeze: Freeze::Body,
            ..FineTuneConfig::default()
        },
    )
    .unwrap();
    let before: Vec<(String, Vec<f32>)> = sorted_vars(ft.varmap())
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
        .collect();
    let d = tmp("ft");
    let r = train(
        &ft,
        TrainData {
            train: &tr,
            valid: &va,
            task: Task::MultiClass,
            classes: &classes,
        },
        &cfg,
        &d,
        false,
        &mut |_| Control::Continue,
    )
    .unwrap();
    for (k, v) in &before {
        let now: Vec<f32> = ft.varmap().data().lock().unwrap()[k]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        if k.starts_with("dense2.") {
            assert_ne!(&now, v, "{k} should have been trained");
        } else {
            assert_eq!(&now, v, "{k} is frozen (and its batch-norm statistics too)");
        }
    }
    // the best model is a regular tagger file with the new tags
    let m = registry::load(&r.best_path.display().to_string()).unwrap();
    assert_eq!(m.tags(), classes.as_slice());
    assert_eq!(m.arch(), mirkit_models::won2020::Arch::Musicnn);
    let s = m.tag_window(&tr.audio[0][..48_000]).unwrap();
    assert_eq!(s.len(), 2);
    // the new layer's size must match the tag list
    assert!(FineTune::new("won2020-musicnn-mtat", &[], FineTuneConfig::default()).is_err());
    assert!(FineTune::new(
        "no-such-model.safetensors",
        &classes,
        FineTuneConfig::default()
    )
    .is_err());
}

#[test]
fn frozen_bn_stats_train_weights_but_keep_statistics() {
    let classes = vec!["low".to_string(), "high".to_string()];
    let (tr, va) = (tones(4, 3), tones(2, 4));
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 2,
        chunk_len: 48_000,
        eval_chunks: 1,
        patience: None,
        ..TrainConfig::default()
    };
    let ft_cfg = FineTuneConfig {
        freeze: Freeze::FrontEnd,
        frozen_bn_stats: true,
        ..FineTuneConfig::default()
    };
    let ft = FineTune::new("won2020-musicnn-mtat", &classes, ft_cfg).unwrap();
    let snap = |k: &str| -> Vec<f32> {
        ft.varmap().data().lock().unwrap()[k]
            .as_tensor()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap()
    };
    let (w0, m0, v0) = (
        snap("layer1.conv.weight"),
        snap("layer1.bn.running_mean"),
        snap("bn.running_var"),
    );
    let d = tmp("ftbn");
    train(
        &ft,
        TrainData {
            train: &tr,
            valid: &va,
            task: Task::MultiClass,
            classes: &classes,
        },
        &cfg,
        &d,
        false,
        &mut |_| Control::Continue,
    )
    .unwrap();
    assert_ne!(snap("layer1.conv.weight"), w0, "weights train");
    assert_eq!(snap("layer1.bn.running_mean"), m0, "statistics stay");
    assert_eq!(snap("bn.running_var"), v0, "statistics stay");
}

#[test]
fn musicnn_01_and_concatenated_sources_embed() {
    use mirkit_transfer::embed::{Layers, Source};
    let set = tones(3, 5);
    let one = Source::open("musicnn-mtt", Layers::Embedding).unwrap();
    let e1 = one.extract(&set).unwrap();
    assert_eq!((e1.n, e1.dim), (3, 200));
    let all = Source::open("vgg-mtt", Layers::All).unwrap();
    let e2 = all.extract(&set).unwrap();
    assert_eq!(e2.dim, 5 * 128);
    assert_eq!(e2.blocks[0], ("pool1".to_string(), 128));
    // concatenation keeps each source's columns in order, blocks prefixed by the source
    let both = Source::open("musicnn-mtt+vgg-mtt", Layers::All).unwrap();
    let e3 = both.extract(&set).unwrap();
    assert_eq!(e3.dim, 2459 + 640);
    assert_eq!(e3.blocks[0].0, "musicnn-mtt/timbral");
    assert_eq!(e3.blocks.last().unwrap().0, "vgg-mtt/pool5");
    for i in 0..3 {
        assert_eq!(&e3.row(i)[2459..], e2.row(i));
    }
    // the MFCC baseline runs at 22.05 kHz: it cannot be concatenated with a tagger
    assert!(Source::open("mfcc+musicnn-mtt", Layers::All).is_err());
    assert!(Source::open("musicnn-mtt+no-such-model", Layers::All).is_err());
}

/// Fine-tuning with dropout stopped part-way and resumed from its checkpoint ends with
/// the same weights, losses and checkpoint file bytes as an uninterrupted run (issue #19
/// item 10: the dropout generator's state was not in the checkpoint, so a resumed run
/// drew other masks; masks now come from (seed, epoch, step)).
#[test]
fn fine_tuning_resumes_bit_identically() {
    use mirkit_train::trainer::Progress;
    let classes = vec!["low".to_string(), "high".to_string()];
    let (tr, va) = (tones(4, 3), tones(2, 4));
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 2,
        chunk_len: 48_000,
        eval_chunks: 1,
        patience: None,
        seed: 5,
        ..TrainConfig::default()
    };
    // only the new output layer trains (fast), behind dropout 0.5
    let ft_cfg = FineTuneConfig {
        freeze: Freeze::Body,
        ..FineTuneConfig::default()
    };
    assert!(ft_cfg.dropout > 0.0);
    let data = || TrainData {
        train: &tr,
        valid: &va,
        task: Task::MultiClass,
        classes: &classes,
    };
    let weights = |ft: &FineTune| -> Vec<(String, Vec<f32>)> {
        sorted_vars(ft.varmap())
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().flatten_all().unwrap().to_vec1().unwrap()))
            .collect()
    };
    let (da, db) = (tmp("ft-whole"), tmp("ft-resumed"));
    let a = FineTune::new("won2020-musicnn-mtat", &classes, ft_cfg.clone()).unwrap();
    let ra = train(&a, data(), &cfg, &da, false, &mut |_| Control::Continue).unwrap();
    let b = FineTune::new("won2020-musicnn-mtat", &classes, ft_cfg.clone()).unwrap();
    let stop = train(&b, data(), &cfg, &db, false, &mut |p| match p {
        Progress::Step { epoch: 1, .. } => Control::Stop,
        _ => Control::Continue,
    });
    assert!(stop.is_err(), "stopped in the second epoch");
    let b2 = FineTune::new("won2020-musicnn-mtat", &classes, ft_cfg).unwrap();
    let rb = train(&b2, data(), &cfg, &db, true, &mut |_| Control::Continue).unwrap();
    assert_eq!(weights(&a), weights(&b2));
    for (x, y) in ra.history.iter().zip(&rb.history) {
        assert_eq!((x.train_loss, x.valid_loss), (y.train_loss, y.valid_loss));
    }
    // the saved tagger byte for byte (its header is written in a fixed order); the
    // checkpoint's tensors (its loop state also records wall-clock seconds)
    let best = |d: &std::path::Path| std::fs::read(d.join("best.safetensors")).unwrap();
    assert!(best(&da) == best(&db), "best.safetensors differ");
    let (ta, _) = mirkit_train::ckpt::load(&da.join("last.safetensors")).unwrap();
    let (tb, _) = mirkit_train::ckpt::load(&db.join("last.safetensors")).unwrap();
    let mut names: Vec<&String> = ta.keys().collect();
    names.sort();
    assert_eq!(names.len(), tb.len());
    for n in names {
        let v = |t: &candle_core::Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v(&ta[n]) == v(&tb[n]), "{n} differs in last.safetensors");
    }
}
