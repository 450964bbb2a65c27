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
//! (`--quick` skips fine-tuning).
//!
//! Data: ballroom8 from `$BALLROOM8` or `../shared/data/ballroom8` (192 clips of 10 s, not
//! in the repository) — on two cores about 1.5 minutes with `--quick` and 13 minutes
//! with fine-tuning. Without it, a small synthetic set of four dances is generated into
//! `target/toy_dances` (`mirkit::train::toy`): 12–30 s with `--quick`, 1.5 minutes in
//! all; every method scores near 1.0 there — it shows the steps, not what transfer
//! learning gains on music.

use mirkit::models::registry;
use mirkit::train::audio::AudioSet;
use mirkit::train::data::{CsvOptions, Dataset, Task};
use mirkit::train::metrics::{argmax_rows, classification_metrics};
use mirkit::train::trainer::{
    predict, train, Control, OptimizerConfig, Progress, TrainConfig, TrainData,
};
use mirkit::transfer::embed::{extract, mfcc_stats, Embeddings, Layers};
use mirkit::transfer::finetune::{FineTune, FineTuneConfig};
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

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    // ballroom8 ($BALLROOM8 or ../shared/data/ballroom8) if present, else four synthetic
    // dances generated into target/ (mirkit::train::toy)
    let manifest = mirkit::train::toy::ballroom8_or_toy("target/toy_dances")?;
    // ## The data: 8 dances × 24 clips, fixed 16/4/4 split per class
    let ds = Dataset::csv_manifest(&manifest, &CsvOptions::default())?;
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

    // ## Frozen embeddings: every layer of a pretrained tagger, pooled and concatenated
    for name in ["won2020-musicnn-mtat", "won2020-fcn-mtat"] {
        let model = registry::load_pretrained(name)?;
        let t0 = Instant::now();
        let layers = Layers::All;
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
            // MLPs want a smaller step than logistic regression
            let lr = if matches!(kind, HeadKind::Mlp { .. }) {
                1e-3
            } else {
                1e-2
            };
            let cfg = HeadConfig {
                kind: kind.clone(),
                lr,
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
                "{name:22} all layers ({:4}-d) + {:6}: test accuracy {:.3} (embedding {:.0} s, head {:.1} s)",
                a.dim, kind.name(), accuracy(&head, &t, &te16, c)?, secs, t1.elapsed().as_secs_f64()
            );
        }
    }
    if quick {
        return Ok(());
    }

    // ## Fine-tuning: Musicnn with a new 8-way output layer, the input batch norm and the
    //    vertical front-end filters frozen, the rest trained at 5e-4 (new layer at 4×),
    //    3 s chunks, best epoch by validation loss — the recipe of docs/transfer.md that
    //    reached 0.969 test accuracy (`mirkit finetune ... --head network --lr 5e-4
    //    --head-lr-mult 4 --epochs 12`)
    let t0 = Instant::now();
    let ft = FineTune::new(
        "won2020-musicnn-mtat",
        &ds.classes,
        FineTuneConfig {
            head_lr_mult: 4.0,
            ..FineTuneConfig::default()
        },
    )?;
    let cfg = TrainConfig {
        epochs: 12,
        batch_size: 16,
        chunk_len: ft.input_len(),
        eval_chunks: 4,
        optimizer: OptimizerConfig::AdamW {
            lr: 5e-4,
            weight_decay: 1e-4,
        },
        patience: Some(10),
        ..TrainConfig::default()
    };
    let set = manifest
        .parent()
        .and_then(|p| p.file_name())
        .unwrap_or_default();
    let out = &std::path::Path::new("target/transfer_learning_finetune").join(set);
    let r = train(
        &ft,
        TrainData {
            train: &tr16,
            valid: &va16,
            task: Task::MultiClass,
            classes: &ds.classes,
        },
        &cfg,
        out,
        false,
        &mut |p| {
            if let Progress::Epoch(l) = p {
                println!(
                    "  epoch {:2}: valid loss {:.3}, valid accuracy {:.3}",
                    l.epoch + 1,
                    l.valid_loss,
                    l.valid_metric
                );
            }
            Control::Continue
        },
    )?;
    let best = FineTune::load(&r.best_path.display().to_string())?;
    let p = predict(&best, &te16, Task::MultiClass, c, best.input_len(), 4)?;
    let truth: Vec<usize> = te16.items.iter().map(|i| i.labels[0]).collect();
    let acc = classification_metrics(&truth, &argmax_rows(&p.probs, c), c)?.accuracy;
    println!(
        "fine-tuned musicnn: test accuracy {acc:.3} ({:.0} s); tagger at {}",
        t0.elapsed().as_secs_f64(),
        r.best_path.display()
    );
    Ok(())
}
