//! # Transfer learning on ballroom8, as a notebook
//!
//! Reuse a pretrained music tagger for a new task — recognising eight ballroom dances —
//! three ways, and compare with the classic baseline (MFCC statistics + logistic
//! regression):
//!
//! 1. frozen embeddings of every layer + a linear head (seconds);
//! 2. the same with a k-NN and a small MLP head;
//! 3. fine-tuning the whole network with a new output layer.
//!
//! Run: `cargo run --release --example transfer_learning [-- --quick]`
//! (`--quick` skips fine-tuning). Data: `../shared/data/ballroom8` (or `$BALLROOM8`).

use mirkit::dsp::{Compression, DbConfig, FeatureConfig, FeatureExtractor, MfccSettings};
use mirkit::models::registry;
use mirkit::train::audio::AudioSet;
use mirkit::train::data::{CsvOptions, Dataset, Task};
use mirkit::train::metrics::{argmax_rows, classification_metrics};
use mirkit::transfer::embed::{extract, Embeddings, Layers};
use mirkit::transfer::heads::{Head, HeadConfig, HeadKind};
use std::time::Instant;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn labels(s: &AudioSet) -> Vec<Vec<usize>> {
    s.items.iter().map(|i| i.labels.clone()).collect()
}

fn accuracy(head: &Head, x: &Embeddings, set: &AudioSet, c: usize) -> Res<f64> {
    let p = head.predict(x)?;
    let truth: Vec<usize> = set.items.iter().map(|i| i.labels[0]).collect();
    Ok(classification_metrics(&truth, &argmax_rows(&p, c), c)?.accuracy)
}

/// MFCC-20 mean and standard deviation per track (librosa.feature.mfcc defaults at
/// 22.05 kHz: 128 Slaney mels, n_fft 2048, hop 512, power_to_db with top_db 80).
fn mfcc_stats(set: &AudioSet) -> Res<Embeddings> {
    let mut cfg = FeatureConfig::librosa();
    cfg.compression = Compression::Db(DbConfig::default());
    cfg.mfcc = Some(MfccSettings {
        n_mfcc: 20,
        lifter: 0.0,
    });
    let fx = FeatureExtractor::new(cfg)?;
    let mut data = Vec::new();
    for a in &set.audio {
        let m = fx.compute(a)?.into_array(); // (20, frames)
        for row in m.rows() {
            let n = row.len() as f64;
            let mean = row.iter().map(|v| *v as f64).sum::<f64>() / n;
            data.push(mean as f32);
        }
        for row in m.rows() {
            let n = row.len() as f64;
            let mean = row.iter().map(|v| *v as f64).sum::<f64>() / n;
            let var = row.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n;
            data.push(var.sqrt() as f32);
        }
    }
    Ok(Embeddings {
        n: set.len(),
        dim: 40,
        data,
        blocks: vec![("mfcc20_mean_std".into(), 40)],
    })
}

fn main() -> Res<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let root = std::env::var("BALLROOM8").unwrap_or_else(|_| "../shared/data/ballroom8".into());
    // ## The data: 8 dances × 24 clips, fixed 16/4/4 split per class
    let ds = Dataset::csv_manifest(format!("{root}/metadata.csv"), &CsvOptions::default())?;
    let c = ds.n_classes();
    println!("classes: {:?}", ds.classes);
    let t0 = Instant::now();
    let load = |split: &str, sr: u32| -> Res<AudioSet> {
        Ok(AudioSet::load(&ds.split(split)?, sr, None)?)
    };
    let (tr16, va16, te16) = (
        load("train", 16_000)?,
        load("valid", 16_000)?,
        load("test", 16_000)?,
    );
    let (tr22, va22, te22) = (
        load("train", 22_050)?,
        load("valid", 22_050)?,
        load("test", 22_050)?,
    );
    println!(
        "decoded {} + {} + {} clips in {:.1} s",
        tr16.len(),
        va16.len(),
        te16.len(),
        t0.elapsed().as_secs_f64()
    );

    // ## Baseline: MFCC statistics + logistic regression
    let t0 = Instant::now();
    let (a, b, t) = (mfcc_stats(&tr22)?, mfcc_stats(&va22)?, mfcc_stats(&te22)?);
    let cfg = HeadConfig::default();
    let head = Head::fit(
        &a,
        &labels(&tr22),
        Some((&b, &labels(&va22))),
        &ds.classes,
        Task::MultiClass,
        &cfg,
    )?;
    let base = accuracy(&head, &t, &te22, c)?;
    println!(
        "baseline MFCC-20 mean+std + logistic: test accuracy {:.3} ({:.1} s)",
        base,
        t0.elapsed().as_secs_f64()
    );

    // ## Frozen embeddings of each pretrained tagger
    for name in [
        "won2020-musicnn-mtat",
        "won2020-fcn-mtat",
        "won2020-crnn-mtat",
        "won2020-musicnn-jamendo",
    ] {
        let model = registry::load(name)?;
        for layers in [Layers::Embedding, Layers::All] {
            let t0 = Instant::now();
            let (a, b, t) = (
                extract(&model, &tr16, layers)?,
                extract(&model, &va16, layers)?,
                extract(&model, &te16, layers)?,
            );
            let secs = t0.elapsed().as_secs_f64();
            for kind in [
                HeadKind::Linear,
                HeadKind::Mlp {
                    hidden: 256,
                    dropout: 0.5,
                },
                HeadKind::Knn { k: 5 },
            ] {
                let t1 = Instant::now();
                let cfg = HeadConfig {
                    kind: kind.clone(),
                    ..HeadConfig::default()
                };
                let head = Head::fit(
                    &a,
                    &labels(&tr16),
                    Some((&b, &labels(&va16))),
                    &ds.classes,
                    Task::MultiClass,
                    &cfg,
                )?;
                println!(
                    "{name:26} {:9} dim {:5} {:6}: test accuracy {:.3} (embed {:.1} s, head {:.1} s)",
                    format!("{layers:?}"), a.dim, kind.name(), accuracy(&head, &t, &te16, c)?, secs, t1.elapsed().as_secs_f64()
                );
            }
        }
    }
    if quick {
        return Ok(());
    }
    Ok(())
}
