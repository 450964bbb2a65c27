//! # Training a tagger from scratch, as a notebook
//!
//! A small short-chunk CNN (Won et al. 2020, width 16 instead of 128) learns the eight
//! ballroom dances of `../shared/data/ballroom8` from log-mel spectrograms, with
//! pitch-shift/time-stretch augmentation, checkpoints, a CSV log and PNG curves.
//!
//! Run: `cargo run --release --example train_from_scratch [-- EPOCHS]` (default 30
//! epochs; it resumes from its last checkpoint if run again).
//!
//! Data: ballroom8 from `$BALLROOM8` or `../shared/data/ballroom8` (192 clips of 10 s, not
//! in the repository; about 5 s per epoch, under 3 minutes in all on two cores). Without it,
//! a small synthetic set of four dances is generated into `target/toy_dances`
//! (`mirkit::train::toy`, 48 clips of 6 s; about 30 s in all) — it shows the steps, not
//! what the model can do on music. Output: `target/train_from_scratch/ballroom8/` or
//! `.../toy_dances/`.

use mirkit::augment::Augment;
use mirkit::train::audio::AudioSet;
use mirkit::train::data::{CsvOptions, Dataset};
use mirkit::train::metrics::{argmax_rows, classification_metrics};
use mirkit::train::trainer::{
    predict, train, Control, OptimizerConfig, Progress, TrainConfig, TrainData,
};
use mirkit::train::zoo::{ScratchModel, SHORT_CHUNK_LEN};
use std::path::Path;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let epochs: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(30);
    // ballroom8 ($BALLROOM8 or ../shared/data/ballroom8) if present, else four synthetic
    // dances generated into target/ (mirkit::train::toy)
    let manifest = mirkit::train::toy::ballroom8_or_toy("target/toy_dances")?;

    // ## 1. The data: a CSV manifest with a fixed split, decoded once at 16 kHz
    let ds = Dataset::csv_manifest(&manifest, &CsvOptions::default())?;
    let load = |s: &str| AudioSet::load(&ds.split(s)?, 16_000, None);
    let (tr, va, te) = (load("train")?, load("valid")?, load("test")?);
    println!(
        "{} classes, {} / {} / {} clips",
        ds.n_classes(),
        tr.len(),
        va.len(),
        te.len()
    );

    // ## 2. The model: seeded initialisation, so the run is reproducible
    let model = ScratchModel::new("short-chunk-cnn", 16, &ds.classes, 0)?;
    println!(
        "short-chunk CNN, width 16: {} parameters",
        model.param_count()
    );

    // ## 3. Training: random 3.69 s chunks per epoch, augmentation on the fly, AdamW,
    //       early stopping on validation loss; checkpoints make the run resumable
    let cfg = TrainConfig {
        epochs,
        batch_size: 16,
        chunk_len: SHORT_CHUNK_LEN,
        eval_chunks: 4,
        optimizer: OptimizerConfig::AdamW {
            lr: 3e-3,
            weight_decay: 1e-4,
        },
        patience: Some(10),
        augment: Some(Augment::music_default(0.5)),
        seed: 0,
        ..TrainConfig::default()
    };
    // one folder per data set, so a resumed run never mixes the two
    let set = manifest
        .parent()
        .and_then(|p| p.file_name())
        .unwrap_or_default();
    let out = &Path::new("target/train_from_scratch").join(set);
    let report = train(
        &model,
        TrainData {
            train: &tr,
            valid: &va,
            task: ds.task,
            classes: &ds.classes,
        },
        &cfg,
        out,
        true,
        &mut |p| {
            if let Progress::Epoch(l) = p {
                println!(
                "epoch {:2}  train loss {:.3}  valid loss {:.3}  valid accuracy {:.3}  ({:.0} s)",
                l.epoch + 1, l.train_loss, l.valid_loss, l.valid_metric, l.seconds
            );
            }
            Control::Continue
        },
    )?;

    // ## 4. The best epoch on the test split (4 chunks per clip averaged)
    let best = ScratchModel::load(&report.best_path)?;
    let p = predict(&best, &te, ds.task, ds.n_classes(), SHORT_CHUNK_LEN, 4)?;
    let truth: Vec<usize> = te.items.iter().map(|i| i.labels[0]).collect();
    let m = classification_metrics(
        &truth,
        &argmax_rows(&p.probs, ds.n_classes()),
        ds.n_classes(),
    )?;
    println!(
        "best epoch {}: test accuracy {:.3}, macro F1 {:.3}",
        report.best_epoch + 1,
        m.accuracy,
        m.f1_macro
    );
    println!("confusion (rows: truth {:?}):", ds.classes);
    for row in &m.confusion {
        println!("  {row:?}");
    }
    println!(
        "curves: {}/loss.png, {}/metric.png; log: {}/log.csv",
        out.display(),
        out.display(),
        out.display()
    );
    Ok(())
}
