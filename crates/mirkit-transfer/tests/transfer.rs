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
