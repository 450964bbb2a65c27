//! `mirkit train`, `mirkit finetune`, `mirkit eval`.

use super::args::{HeadArg, LayersArg, LossArg, OptimizerArg, SplitArg, TaskArg};
use super::error::CliError;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use mirkit::models::vocabulary::{Translation, Vocabulary};
use mirkit::nn::loss::RegressionLoss;
use mirkit::train::audio::AudioSet;
use mirkit::train::data::{CsvOptions, Dataset, TargetScaling, Task};
use mirkit::train::metrics::{
    argmax_rows, classification_metrics, regression_metrics, tagging_metrics,
};
use mirkit::train::trainer::{
    outputs, predict, predict_with_loss, train, Control, OptimizerConfig, Progress, TrainConfig,
    TrainData, Trainable,
};
use mirkit::train::zoo::ScratchModel;
use mirkit::transfer::embed::{Layers, Source};
use mirkit::transfer::finetune::{FineTune, FineTuneConfig, Freeze};
use mirkit::transfer::heads::{Head, HeadConfig, HeadKind};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

type Res<T> = Result<T, CliError>;

/// Where the data come from (shared by the three commands).
#[derive(Args, Clone, Debug)]
pub struct DataArgs {
    /// A folder with one sub-folder of audio files per class, or a CSV manifest
    /// (columns `path`, `label` and optionally `split`; paths relative to the CSV).
    #[arg(long)]
    pub data: PathBuf,
    /// Multi-label CSV: the label column holds tags separated by this character.
    #[arg(long)]
    pub tag_sep: Option<char>,
    /// Label column of the CSV.
    #[arg(long, default_value = "label")]
    pub label_column: String,
    /// `classes` (the label column) or `regression` (numeric `--target` columns of a CSV
    /// manifest; `finetune` heads or `--head network`). `eval` takes it from a regression
    /// head or network file.
    #[arg(long, value_enum, default_value_t = TaskArg::Classes)]
    pub task: TaskArg,
    /// Regression: the target column(s) of the CSV, comma-separated (e.g.
    /// `tempo_bpm` or `valence,arousal`).
    #[arg(long, value_delimiter = ',', default_value = "value")]
    pub target: Vec<String>,
    /// Keep decoded audio here (.npy) so later runs skip decoding.
    #[arg(long)]
    pub cache: Option<PathBuf>,
    /// Seed (split of data without one, chunk sampling, initialisation, augmentation).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

struct Data {
    ds: Dataset,
    train: AudioSet,
    valid: AudioSet,
    test: Option<AudioSet>,
}

fn load_data(a: &DataArgs, sr: u32) -> Res<Data> {
    let regression = a.task == TaskArg::Regression;
    if regression && a.data.is_dir() {
        return Err(CliError::Usage(format!(
            "--task regression reads numeric targets from a CSV manifest (columns path,{}), \
             not a folder: {}",
            a.target.join(","),
            a.data.display()
        )));
    }
    let mut ds = if a.data.is_dir() {
        Dataset::folder_per_class(&a.data)
    } else {
        Dataset::csv_manifest(
            &a.data,
            &CsvOptions {
                label_column: a.label_column.clone(),
                tag_separator: a.tag_sep,
                value_columns: regression.then(|| a.target.clone()),
                ..CsvOptions::default()
            },
        )
    }?;
    if ds.items.iter().any(|i| i.split.is_none()) {
        // 70/15/15 per class (regression: per band of target values), seeded; given
        // splits are kept
        ds.stratified_split(0.15, 0.15, a.seed)?;
        eprintln!(
            "no split given for some files: assigned train/valid/test 70/15/15 per {} (seed {})",
            if regression {
                "band of target values"
            } else {
                "class"
            },
            a.seed
        );
    }
    let load = |split: &str| -> Res<AudioSet> {
        let items = ds.split(split)?;
        let set = AudioSet::load(&items, sr, a.cache.as_deref())?;
        for (p, why) in &set.skipped {
            eprintln!("skipped {}: {why}", p.display());
        }
        if set.is_empty() {
            return Err(format!(
                "split {split:?} is empty: none of its {} files could be read",
                items.len()
            )
            .into());
        }
        Ok(set)
    };
    let t0 = std::time::Instant::now();
    let train = load("train")?;
    let valid = load("valid")?;
    let test = if ds.items.iter().any(|i| i.split.as_deref() == Some("test")) {
        Some(load("test")?)
    } else {
        None
    };
    eprintln!(
        "{} {}; train {} / valid {} / test {} clips decoded at {} Hz in {:.1} s",
        ds.n_classes(),
        match ds.task {
            Task::Regression => "target(s)",
            Task::MultiLabel => "tags",
            Task::MultiClass => "classes",
        },
        train.len(),
        valid.len(),
        test.as_ref().map(|t| t.len()).unwrap_or(0),
        sr,
        t0.elapsed().as_secs_f64()
    );
    Ok(Data {
        ds,
        train,
        valid,
        test,
    })
}

fn write_skipped(dir: &Path, d: &Data) -> Res<()> {
    let mut s = String::new();
    for set in [Some(&d.train), Some(&d.valid), d.test.as_ref()]
        .into_iter()
        .flatten()
    {
        for (p, why) in &set.skipped {
            s.push_str(&format!("{}\t{why}\n", p.display()));
        }
    }
    if !s.is_empty() {
        std::fs::write(dir.join("skipped.tsv"), s)
            .map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}

/// `test.json` (train/finetune) and `eval --json`: the metrics of a split, with the test
/// loss and what the run was when training wrote it. Fields are declared in alphabetical
/// order, the order they are written in.
#[derive(Serialize)]
#[serde(untagged)]
enum Report<'a> {
    Classification {
        accuracy: f64,
        classes: &'a [String],
        confusion: Vec<Vec<usize>>,
        f1: Vec<f64>,
        f1_macro: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        loss: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        run: Option<RunInfo>,
        tracks: usize,
    },
    Regression {
        #[serde(skip_serializing_if = "Option::is_none")]
        loss: Option<f64>,
        mae: Vec<f64>,
        pearson: Vec<f64>,
        r2: Vec<f64>,
        r2_mean: f64,
        rmse: Vec<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        run: Option<RunInfo>,
        spearman: Vec<f64>,
        spearman_mean: f64,
        targets: &'a [String],
        tracks: usize,
    },
    Tagging {
        #[serde(skip_serializing_if = "Option::is_none")]
        loss: Option<f64>,
        pr_auc: Vec<f64>,
        pr_auc_macro: f64,
        roc_auc: Vec<f64>,
        roc_auc_macro: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        run: Option<RunInfo>,
        tags: &'a [String],
        tracks: usize,
    },
}

impl Report<'_> {
    fn with(mut self, test_loss: Option<f64>, info: RunInfo) -> Self {
        match &mut self {
            Report::Classification { loss, run, .. }
            | Report::Tagging { loss, run, .. }
            | Report::Regression { loss, run, .. } => {
                *loss = test_loss;
                *run = Some(info);
            }
        }
        self
    }
}

/// What made a `test.json` (fields in alphabetical order).
#[derive(Serialize)]
#[serde(untagged)]
enum RunInfo {
    Train {
        arch: String,
        best_epoch: usize,
        channels: usize,
        command: &'static str,
        epochs_run: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        loss: Option<String>,
        params: usize,
        seconds: f64,
    },
    FineTune {
        best_epoch: usize,
        command: &'static str,
        epochs_run: usize,
        freeze: String,
        from: String,
        frozen_bn_stats: bool,
        head_lr_mult: f64,
        #[serde(skip_serializing_if = "Option::is_none")]
        loss: Option<String>,
        seconds: f64,
    },
    Head {
        command: &'static str,
        dim: usize,
        embed_seconds: f64,
        from: String,
        head: String,
        layers: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        loss: Option<String>,
        seconds: f64,
    },
}

/// Metrics of per-track probabilities (and a one-line summary).
fn evaluate_probs<'a>(
    task: Task,
    probs: &[f32],
    set: &AudioSet,
    classes: &'a [String],
) -> Res<(Report<'a>, String)> {
    let c = classes.len();
    match task {
        Task::Regression => {
            let y = mirkit::train::data::value_rows(&set.items);
            let m = regression_metrics(probs, &y, classes)?;
            let line = format!(
                "R² {:.4}, Spearman {:.4}, MAE {} ({} tracks)",
                m.r2_mean,
                m.spearman_mean,
                m.mae
                    .iter()
                    .zip(classes)
                    .map(|(e, n)| format!("{e:.3} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                set.len()
            );
            Ok((
                Report::Regression {
                    loss: None,
                    mae: m.mae,
                    pearson: m.pearson,
                    r2: m.r2,
                    r2_mean: m.r2_mean,
                    rmse: m.rmse,
                    run: None,
                    spearman: m.spearman,
                    spearman_mean: m.spearman_mean,
                    targets: classes,
                    tracks: set.len(),
                },
                line,
            ))
        }
        Task::MultiClass => {
            let truth: Vec<usize> = set.items.iter().map(|i| i.labels[0]).collect();
            let m = classification_metrics(&truth, &argmax_rows(probs, c), c)?;
            let line = format!(
                "accuracy {:.4}, macro F1 {:.4} ({} tracks)",
                m.accuracy,
                m.f1_macro,
                set.len()
            );
            Ok((
                Report::Classification {
                    accuracy: m.accuracy,
                    classes,
                    confusion: m.confusion,
                    f1: m.f1,
                    f1_macro: m.f1_macro,
                    loss: None,
                    run: None,
                    tracks: set.len(),
                },
                line,
            ))
        }
        Task::MultiLabel => {
            let y =
                mirkit::train::data::multi_hot(set.items.iter().map(|it| it.labels.as_slice()), c);
            let m = tagging_metrics(probs, &y, classes)?;
            let line = format!(
                "ROC-AUC {:.4}, PR-AUC {:.4} ({} tracks)",
                m.roc_auc_macro,
                m.pr_auc_macro,
                set.len()
            );
            Ok((
                Report::Tagging {
                    loss: None,
                    pr_auc: m.pr_auc,
                    pr_auc_macro: m.pr_auc_macro,
                    roc_auc: m.roc_auc,
                    roc_auc_macro: m.roc_auc_macro,
                    run: None,
                    tags: classes,
                    tracks: set.len(),
                },
                line,
            ))
        }
    }
}

/// How `test.json` names a regression loss.
fn loss_name(l: RegressionLoss) -> String {
    match l {
        RegressionLoss::Mse => "mse".to_string(),
        RegressionLoss::Huber { delta } => format!("huber (delta {delta})"),
    }
}

fn write_json(path: &Path, v: &impl Serialize) -> Res<()> {
    use std::io::Write;
    let s = serde_json::to_string_pretty(v).unwrap();
    Ok(mirkit::core::npy::write_atomic(path, |w| {
        w.write_all(s.as_bytes())
    })?)
}

/// `test_predictions.csv` of a regression: path, then each target's true and predicted
/// value (`NAME`, `NAME_predicted`), one row per track.
fn write_predictions(path: &Path, set: &AudioSet, targets: &[String], pred: &[f32]) -> Res<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["path".to_string()];
    for t in targets {
        header.push(t.clone());
        header.push(format!("{t}_predicted"));
    }
    let csv_err = |e: csv::Error| CliError::from(format!("{}: {e}", path.display()));
    w.write_record(&header).map_err(csv_err)?;
    let c = targets.len();
    for (i, it) in set.items.iter().enumerate() {
        let mut row = vec![it.path.display().to_string()];
        for j in 0..c {
            row.push(it.values[j].to_string());
            row.push(pred[i * c + j].to_string());
        }
        w.write_record(&row).map_err(csv_err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    use std::io::Write;
    Ok(mirkit::core::npy::write_atomic(path, |f| {
        f.write_all(&bytes)
    })?)
}

/// Shared options of the training loop.
#[derive(Args, Clone, Debug)]
pub struct LoopArgs {
    /// Maximum epochs.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Learning rate (base).
    #[arg(long)]
    pub lr: Option<f64>,
    /// adamw, sgd (Nesterov 0.9) or won2020 (Adam then SGD with reloads of the best model).
    #[arg(long, value_enum, default_value_t = OptimizerArg::Adamw)]
    pub optimizer: OptimizerArg,
    /// Weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,
    /// Stop after this many epochs without a lower validation loss (0: never).
    #[arg(long, default_value_t = 10)]
    pub patience: usize,
    /// Chunks per track averaged in evaluation.
    #[arg(long, default_value_t = 4)]
    pub eval_chunks: usize,
    /// Pitch-shift (±2 st) and time-stretch (0.81–1.23) each applied with this probability.
    #[arg(long)]
    pub augment: Option<f64>,
    /// Continue from OUT/last.safetensors.
    #[arg(long)]
    pub resume: bool,
    /// Loss of a regression (`--task regression`; heads and networks), on targets
    /// standardised with the training split's mean and deviation.
    #[arg(long, value_enum, default_value_t = LossArg::Mse)]
    pub loss: LossArg,
    /// δ of the Huber loss, in standard deviations of the target.
    #[arg(long, default_value_t = 1.0)]
    pub huber_delta: f64,
}

impl LoopArgs {
    /// `--loss` and `--huber-delta` (which must be finite and > 0).
    fn regression_loss(&self) -> Res<RegressionLoss> {
        if !(self.huber_delta > 0.0 && self.huber_delta.is_finite()) {
            return Err(CliError::Usage(format!(
                "--huber-delta {} must be finite and > 0",
                self.huber_delta
            )));
        }
        Ok(match self.loss {
            LossArg::Mse => RegressionLoss::Mse,
            LossArg::Huber => RegressionLoss::Huber {
                delta: self.huber_delta,
            },
        })
    }
}

fn loop_config(l: &LoopArgs, seed: u64, chunk_len: usize, default_lr: f64) -> Res<TrainConfig> {
    let lr = l.lr.unwrap_or(default_lr);
    let optimizer = match l.optimizer {
        OptimizerArg::Adamw => OptimizerConfig::AdamW {
            lr,
            weight_decay: l.weight_decay,
        },
        OptimizerArg::Sgd => OptimizerConfig::Sgd {
            lr,
            momentum: 0.9,
            nesterov: true,
            weight_decay: l.weight_decay,
        },
        OptimizerArg::Won2020 => OptimizerConfig::Won2020 {
            adam_patience: 80,
            sgd_patience: 20,
        },
    };
    Ok(TrainConfig {
        epochs: l.epochs,
        batch_size: l.batch_size,
        chunk_len,
        eval_chunks: l.eval_chunks,
        optimizer,
        schedule: None,
        patience: (l.patience > 0).then_some(l.patience),
        grad_clip: None,
        label_smoothing: 0.0,
        regression_loss: l.regression_loss()?,
        augment: l.augment.map(mirkit::augment::Augment::music_default),
        seed,
        prefetch: 2,
    })
}

fn run_loop<M: Trainable>(
    model: &M,
    d: &Data,
    cfg: &TrainConfig,
    out: &Path,
    resume: bool,
) -> Res<mirkit::train::trainer::TrainReport> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} steps {msg}")
            .unwrap()
            .progress_chars("=> "),
    );
    let r = train(
        model,
        TrainData {
            train: &d.train,
            valid: &d.valid,
            task: d.ds.task,
            classes: &d.ds.classes,
        },
        cfg,
        out,
        resume,
        &mut |p| {
            match p {
                Progress::Step {
                    epoch,
                    step,
                    steps,
                    loss,
                } => {
                    bar.set_length(steps as u64);
                    bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
                    bar.set_position(step as u64);
                    bar.set_message(format!("loss {loss:.4}"));
                }
                Progress::Epoch(l) => bar.suspend(|| {
                    eprintln!(
                        "epoch {:3}: train loss {:.4}  valid loss {:.4}  valid {} {:.4}  ({:.1} s)",
                        l.epoch + 1,
                        l.train_loss,
                        l.valid_loss,
                        match d.ds.task {
                            Task::MultiClass => "accuracy",
                            Task::MultiLabel => "ROC-AUC",
                            Task::Regression => "R²",
                        },
                        l.valid_metric,
                        l.seconds
                    )
                }),
                Progress::Resumed(e) => bar.suspend(|| eprintln!("resumed after epoch {e}")),
                Progress::NothingToDo {
                    epochs_done,
                    stopped_early,
                } => bar.suspend(|| {
                    eprintln!(
                        "nothing to train: {} already holds a finished run ({epochs_done} \
                             epoch{}{}); its outputs are kept{}",
                        out.display(),
                        if epochs_done == 1 { "" } else { "s" },
                        if stopped_early {
                            ", stopped early by --patience"
                        } else {
                            ""
                        },
                        if stopped_early {
                            " (start a new --out to train again)"
                        } else {
                            " (a larger --epochs continues it)"
                        }
                    )
                }),
            }
            Control::Continue
        },
    )?;
    bar.finish_and_clear();
    Ok(r)
}

/// `mirkit train`.
#[derive(Args, Clone, Debug)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    lp: LoopArgs,
    /// Output folder (checkpoints, best model, log.csv, curves, test.json).
    #[arg(short, long, visible_alias = "output")]
    out: PathBuf,
    /// Architecture: short-chunk-cnn, short-chunk-resnet (log-mel), samplecnn,
    /// samplecnn-se or rese2 (raw waveform).
    #[arg(long, default_value = "short-chunk-cnn", value_parser = mirkit::train::zoo::ARCHITECTURES)]
    arch: String,
    /// Base width (the published model uses 128).
    #[arg(long, default_value_t = 16)]
    channels: usize,
}

/// `test.json` of a trained network on the test split (`(chunk_len, n_chunks)` as the
/// loop evaluates), and `test_predictions.csv` for a regression.
fn test_report<M: Trainable>(
    model: &M,
    d: &Data,
    (chunk_len, n_chunks): (usize, usize),
    regression_loss: RegressionLoss,
    out: &Path,
    info: RunInfo,
) -> Res<()> {
    let Some(test) = &d.test else { return Ok(()) };
    let p = predict_with_loss(
        model,
        test,
        d.ds.task,
        d.ds.n_classes(),
        chunk_len,
        n_chunks,
        regression_loss,
    )?;
    let (v, line) = evaluate_probs(d.ds.task, &p.probs, test, &d.ds.classes)?;
    if d.ds.task == Task::Regression {
        write_predictions(
            &out.join("test_predictions.csv"),
            test,
            &d.ds.classes,
            &p.probs,
        )?;
    }
    write_json(&out.join("test.json"), &v.with(Some(p.loss), info))?;
    println!("test: {line}");
    Ok(())
}

/// The training split's target standardisation of a regression (`None` otherwise).
fn scaling_of(d: &Data) -> Res<Option<TargetScaling>> {
    if d.ds.task != Task::Regression {
        return Ok(None);
    }
    let values: Vec<Vec<f32>> = d.train.items.iter().map(|i| i.values.clone()).collect();
    Ok(Some(TargetScaling::fit(&values, d.ds.n_classes())?))
}

pub fn train_cmd(a: TrainArgs) -> Res<()> {
    let t0 = std::time::Instant::now();
    a.lp.regression_loss()?; // a bad --huber-delta is refused before any decoding
    let d = load_data(&a.data, 16_000)?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    write_skipped(&a.out, &d)?;
    let mut model = ScratchModel::new(&a.arch, a.channels, &d.ds.classes, a.data.seed)?;
    if let Some(s) = scaling_of(&d)? {
        // the outputs learn standardised targets; the model file keeps the scaling
        model = model.regression(s)?;
    }
    eprintln!(
        "{} (width {}): {} parameters",
        a.arch,
        a.channels,
        model.param_count()
    );
    let cfg = loop_config(&a.lp, a.data.seed, model.input_len(), 1e-3)?;
    let r = run_loop(&model, &d, &cfg, &a.out, a.lp.resume)?;
    println!(
        "best epoch {} (valid loss {:.4}); model: {}",
        r.best_epoch + 1,
        r.best_valid_loss,
        r.best_path.display()
    );
    let best = ScratchModel::load(&r.best_path)?;
    test_report(
        &best,
        &d,
        (best.input_len(), a.lp.eval_chunks),
        cfg.regression_loss,
        &a.out,
        RunInfo::Train {
            arch: a.arch.clone(),
            best_epoch: r.best_epoch,
            channels: a.channels,
            command: "train",
            epochs_run: r.history.len(),
            loss: (d.ds.task == Task::Regression).then(|| loss_name(cfg.regression_loss)),
            params: model.param_count(),
            seconds: t0.elapsed().as_secs_f64(),
        },
    )?;
    Ok(())
}

/// The embedding model of `finetune --head linear|mlp|knn` when `--from` is not given:
/// with every layer pooled and the windows averaged (`--layers all`, the default) it was
/// the best of the twelve taggers × seven representations, 5-fold cross-validated on
/// Ballroom-8 and drums5 (docs/transfer.md, "Transfer defaults", `tools/transfer_cv.py`).
const HEAD_DEFAULT_MODEL: &str = "musicnn-mtt";

/// The network of `finetune --head network` when `--from` is not given: a trainable
/// Won 2020 model (musicnn 0.1.0's are frozen extractors); Musicnn (MTAT) fine-tuned best
/// on Ballroom-8 (docs/transfer.md).
const NETWORK_DEFAULT_MODEL: &str = "won2020-musicnn-mtat";

/// `mirkit finetune`.
#[derive(Args, Clone, Debug)]
pub struct FinetuneArgs {
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    lp: LoopArgs,
    /// Output folder.
    #[arg(short, long, visible_alias = "output")]
    out: PathBuf,
    /// Pretrained model: registry name or Won 2020-layout .safetensors; `mfcc` gives the
    /// classic baseline (MFCC-20 mean and std per track) under the same head. Default:
    /// `musicnn-mtt` for heads (the best of the twelve on two data sets, docs/transfer.md
    /// "Transfer defaults"); `won2020-musicnn-mtat` for `--head network` (a trainable one).
    #[arg(long, visible_alias = "model")]
    from: Option<String>,
    /// `linear`, `mlp` or `knn`: a head on frozen embeddings (fast); `network`:
    /// fine-tune the network with a new output layer.
    #[arg(long, value_enum, default_value_t = HeadArg::Linear)]
    head: HeadArg,
    /// Embeddings for heads: `all` (every layer pooled, concatenated; windows averaged),
    /// `all-max` / `all-mean-max` (windows' maximum, or both), or `embedding` (the
    /// penultimate layer).
    #[arg(long, value_enum, default_value_t = LayersArg::All)]
    layers: LayersArg,
    /// What stays fixed when fine-tuning: frontend, body, nothing, or comma-separated
    /// name prefixes.
    #[arg(long, default_value = "frontend")]
    freeze: String,
    /// Learning-rate multiplier of the new output layer when fine-tuning.
    #[arg(long, default_value_t = 10.0)]
    head_lr_mult: f64,
    /// Fine-tuning: keep the pretrained batch-norm statistics (evaluation mode) while
    /// training the weights.
    #[arg(long)]
    frozen_bn_stats: bool,
    /// L2 penalty of linear/MLP heads.
    #[arg(long, default_value_t = 1e-3)]
    l2: f64,
    /// Neighbours of the k-NN head.
    #[arg(long, default_value_t = 5)]
    k: usize,
}

pub fn finetune_cmd(a: FinetuneArgs) -> Res<()> {
    let t0 = std::time::Instant::now();
    let from = a.from.clone().unwrap_or_else(|| {
        if a.head == HeadArg::Network {
            NETWORK_DEFAULT_MODEL.to_string()
        } else {
            HEAD_DEFAULT_MODEL.to_string()
        }
    });
    let mfcc = from == "mfcc";
    if mfcc && a.head == HeadArg::Network {
        return Err(
            "--from mfcc is the MFCC-statistics baseline: use --head linear, mlp or knn".into(),
        );
    }
    let regression = a.data.task == TaskArg::Regression;
    let regression_loss = a.lp.regression_loss()?;
    let d = load_data(&a.data, if mfcc { 22_050 } else { 16_000 })?;
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    write_skipped(&a.out, &d)?;
    if a.head == HeadArg::Network {
        let freeze = match a.freeze.as_str() {
            "frontend" => Freeze::FrontEnd,
            "body" => Freeze::Body,
            "nothing" => Freeze::Nothing,
            p => Freeze::Prefixes(p.split(',').map(|s| s.to_string()).collect()),
        };
        let mut ft = FineTune::new(
            &from,
            &d.ds.classes,
            FineTuneConfig {
                freeze,
                head_lr_mult: a.head_lr_mult,
                frozen_bn_stats: a.frozen_bn_stats,
                seed: a.data.seed,
                ..FineTuneConfig::default()
            },
        )?;
        if let Some(s) = scaling_of(&d)? {
            // the output layer learns standardised targets (training split's mean and
            // deviation, kept in the model file); predictions come back in their units
            ft = ft.regression(s)?;
        }
        let cfg = loop_config(&a.lp, a.data.seed, ft.input_len(), 1e-4)?;
        let r = run_loop(&ft, &d, &cfg, &a.out, a.lp.resume)?;
        println!(
            "best epoch {} (valid loss {:.4}); {}: {} (use with `mirkit {} --model`)",
            r.best_epoch + 1,
            r.best_valid_loss,
            if regression { "model" } else { "tagger" },
            r.best_path.display(),
            if regression { "predict" } else { "tag" }
        );
        let best = FineTune::load(&r.best_path.display().to_string())?;
        return test_report(
            &best,
            &d,
            (best.input_len(), a.lp.eval_chunks),
            regression_loss,
            &a.out,
            RunInfo::FineTune {
                best_epoch: r.best_epoch,
                command: "finetune",
                epochs_run: r.history.len(),
                freeze: a.freeze.clone(),
                from: from.clone(),
                frozen_bn_stats: a.frozen_bn_stats,
                head_lr_mult: a.head_lr_mult,
                loss: regression.then(|| loss_name(regression_loss)),
                seconds: t0.elapsed().as_secs_f64(),
            },
        );
    }
    let kind = match a.head {
        HeadArg::Linear => HeadKind::Linear,
        HeadArg::Mlp => HeadKind::Mlp {
            hidden: 256,
            dropout: 0.5,
        },
        HeadArg::Knn => HeadKind::Knn { k: a.k },
        HeadArg::Network => unreachable!("--head network returned above"),
    };
    let layers: Layers = a.layers.into();
    let source = Source::open(&from, layers)?;
    let emb = |s: &AudioSet| source.extract(s);
    let bar = ProgressBar::new_spinner();
    bar.set_message("embedding train/valid/test");
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let (xt, xv) = (emb(&d.train)?, emb(&d.valid)?);
    let xs = d.test.as_ref().map(emb).transpose()?;
    bar.finish_and_clear();
    let t_embed = t0.elapsed().as_secs_f64();
    let labels = |s: &AudioSet| s.items.iter().map(|i| i.labels.clone()).collect::<Vec<_>>();
    let cfg = HeadConfig {
        kind,
        l2: a.l2,
        lr: a.lp.lr.unwrap_or(if a.head == HeadArg::Mlp {
            1e-3
        } else {
            HeadConfig::default().lr
        }),
        seed: a.data.seed,
        loss: regression_loss,
        ..HeadConfig::default()
    };
    let head = if regression {
        let values = |s: &AudioSet| s.items.iter().map(|i| i.values.clone()).collect::<Vec<_>>();
        Head::fit_regression(
            &xt,
            &values(&d.train),
            Some((&xv, &values(&d.valid))),
            &d.ds.classes,
            &cfg,
        )?
    } else {
        Head::fit(
            &xt,
            &labels(&d.train),
            Some((&xv, &labels(&d.valid))),
            &d.ds.classes,
            d.ds.task,
            &cfg,
        )?
    };
    let mut meta = HashMap::new();
    meta.insert("embedding_model".to_string(), from.clone());
    meta.insert("layers".to_string(), a.layers.to_string());
    let path = a.out.join("head.safetensors");
    head.save(&path, &meta)?;
    println!(
        "head: {} ({} on {}-d {} embeddings of {})",
        path.display(),
        a.head,
        xt.dim,
        a.layers,
        from
    );
    if let (Some(test), Some(xs)) = (&d.test, &xs) {
        let p = head.predict(xs)?;
        let (v, line) = evaluate_probs(d.ds.task, &p, test, &d.ds.classes)?;
        if regression {
            write_predictions(&a.out.join("test_predictions.csv"), test, &d.ds.classes, &p)?;
        }
        let info = RunInfo::Head {
            command: "finetune",
            dim: xt.dim,
            embed_seconds: t_embed,
            from: from.clone(),
            head: a.head.to_string(),
            layers: a.layers.to_string(),
            loss: regression.then(|| loss_name(regression_loss)),
            seconds: t0.elapsed().as_secs_f64(),
        };
        write_json(&a.out.join("test.json"), &v.with(None, info))?;
        println!("test: {line}");
    }
    Ok(())
}

/// Scores of a model in its own vocabulary → the data set's tags: the translated scores
/// of the data-set tags that have a counterpart and both positives and negatives in
/// `set` (ROC-AUC needs both), with each item's labels renumbered to that list. The
/// tags left out are listed on standard error.
fn across_vocabularies(
    probs: &[f32],
    width: usize,
    t: &Translation,
    set: &AudioSet,
    classes: &[String],
) -> Res<(Vec<f32>, AudioSet, Vec<String>)> {
    let translated = t.apply(probs, width);
    let tw = t.tags().len();
    let (mut keep, mut no_counterpart, mut one_sided) = (vec![], vec![], vec![]);
    for (ci, c) in classes.iter().enumerate() {
        let Some(col) = t.tags().iter().position(|x| x == c) else {
            no_counterpart.push(c.as_str());
            continue;
        };
        let pos = set
            .items
            .iter()
            .filter(|it| it.labels.contains(&ci))
            .count();
        if pos == 0 || pos == set.len() {
            one_sided.push(c.as_str());
            continue;
        }
        keep.push((ci, col, c.clone()));
    }
    if !no_counterpart.is_empty() {
        eprintln!(
            "no counterpart in the model's tags: {}",
            no_counterpart.join(", ")
        );
    }
    if !one_sided.is_empty() {
        eprintln!(
            "left out (every track, or none, has the tag in this split): {}",
            one_sided.join(", ")
        );
    }
    if keep.is_empty() {
        return Err("no tag of the data set can be scored with this model".into());
    }
    let out: Vec<f32> = translated
        .chunks(tw)
        .flat_map(|row| keep.iter().map(|&(_, col, _)| row[col]).collect::<Vec<_>>())
        .collect();
    let mut sub = set.clone();
    for it in &mut sub.items {
        it.labels = keep
            .iter()
            .enumerate()
            .filter(|(_, (ci, _, _))| it.labels.contains(ci))
            .map(|(k, _)| k)
            .collect();
    }
    Ok((out, sub, keep.into_iter().map(|k| k.2).collect()))
}

/// A head file and the embedding source it was trained on (model and layers from its
/// metadata).
fn open_head(path: &Path) -> Res<(Head, Source)> {
    let (head, meta) = Head::load(path)?;
    let base = meta
        .get("embedding_model")
        .ok_or("head file without embedding_model")?;
    // heads written before the layers were recorded used every layer
    let layers = match meta.get("layers") {
        Some(s) => s.parse::<Layers>()?,
        None => Layers::All,
    };
    Ok((head, Source::open(base, layers)?))
}

/// `mirkit eval`.
#[derive(Args, Clone, Debug)]
pub struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    /// A model written by `mirkit train` or `mirkit finetune` (best.safetensors or
    /// head.safetensors), or a registry tagger whose tags are the data set's classes.
    #[arg(long)]
    model: String,
    /// Split to evaluate.
    #[arg(long, value_enum, default_value_t = SplitArg::Test)]
    split: SplitArg,
    /// Chunks per track averaged (trained/fine-tuned networks).
    #[arg(long, default_value_t = 4)]
    eval_chunks: usize,
    /// Write the metrics here as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// The data set's labels are tags of this vocabulary (`mtat`, `msd`, `jamendo`)
    /// while the registry tagger was trained on another's: its scores are translated
    /// (docs/applications.md) and the tags both sides share are scored.
    #[arg(long, value_parser = ["mtat", "msd", "jamendo"])]
    vocabulary: Option<String>,
}

pub fn eval_cmd(a: EvalArgs) -> Res<()> {
    let meta = if a.model.ends_with(".safetensors") {
        mirkit::models::weights::metadata(Path::new(&a.model))?
    } else {
        HashMap::new()
    };
    // a head file names the features it was trained on
    let head = if meta.contains_key("head") {
        Some(open_head(Path::new(&a.model))?)
    } else {
        None
    };
    let sr = head.as_ref().map(|h| h.1.sample_rate()).unwrap_or(16_000);
    let mut data_args = a.data.clone();
    if let Some((h, _)) = &head {
        if h.task() == Task::Regression && data_args.task != TaskArg::Regression {
            // a regression head reads its own target columns unless told otherwise
            data_args.task = TaskArg::Regression;
            data_args.target = h.classes().to_vec();
        }
    } else if TargetScaling::is_regression(&meta) && data_args.task != TaskArg::Regression {
        // so does a regression network (its outputs are named after the targets)
        data_args.task = TaskArg::Regression;
        data_args.target = serde_json::from_str(meta.get("tags").ok_or("no tags in the metadata")?)
            .map_err(|e| format!("{}: tags: {e}", a.model))?;
    }
    let d = load_data(&data_args, sr)?;
    let set = match a.split {
        SplitArg::Train => &d.train,
        SplitArg::Valid => &d.valid,
        SplitArg::Test => d.test.as_ref().ok_or("no test split")?,
    };
    let check_classes = |classes: &[String]| -> Res<()> {
        if classes != d.ds.classes.as_slice() {
            return Err(format!(
                "{}: model classes {:?} differ from the data set's {:?}",
                a.model, classes, d.ds.classes
            )
            .into());
        }
        Ok(())
    };
    let mut translation = None;
    let probs = if let Some((head, source)) = &head {
        check_classes(head.classes())?;
        let x = source.extract(set)?;
        head.predict(&x)?
    } else if meta
        .get("arch")
        .is_some_and(|s| mirkit_train::zoo::ARCHITECTURES.contains(&s.as_str()))
    {
        let m = ScratchModel::load(Path::new(&a.model))?;
        check_classes(m.classes())?;
        predict(
            &m,
            set,
            d.ds.task,
            d.ds.n_classes(),
            m.input_len(),
            a.eval_chunks,
        )?
        .probs
    } else if let Some(voc) = &a.vocabulary {
        if d.ds.task != Task::MultiLabel {
            return Err(CliError::Usage(
                "--vocabulary scores tags: give a multi-label manifest (--tag-sep)".into(),
            ));
        }
        let m = FineTune::load(&a.model)?;
        let from = Vocabulary::of_model(&a.model).ok_or_else(|| {
            CliError::Usage(format!(
                "--vocabulary: {} was not trained on MTAT, MSD or Jamendo tags",
                a.model
            ))
        })?;
        let t = Translation::new(m.model().tags(), from, Vocabulary::parse(voc)?)?;
        // raw scores of the model's own tags (labels blanked: they index another list)
        let mut blank = set.clone();
        blank.items.iter_mut().for_each(|it| it.labels.clear());
        let n = m.model().tags().len();
        let p = predict(
            &m,
            &blank,
            Task::MultiLabel,
            n,
            m.input_len(),
            a.eval_chunks,
        )?
        .probs;
        translation = Some((t, m.model().tags().to_vec()));
        p
    } else {
        let m = FineTune::load(&a.model)?;
        check_classes(m.model().tags())?;
        predict(
            &m,
            set,
            d.ds.task,
            d.ds.n_classes(),
            m.input_len(),
            a.eval_chunks,
        )?
        .probs
    };
    let (probs, set, classes) = match &a.vocabulary {
        None => (probs, set.clone(), d.ds.classes.clone()),
        Some(_) => {
            let (t, m_tags) = translation.as_ref().expect("made with the model");
            across_vocabularies(&probs, m_tags.len(), t, set, &d.ds.classes)?
        }
    };
    let set = &set;
    let (v, line) = evaluate_probs(d.ds.task, &probs, set, &classes)?;
    println!(
        "{} on {} ({}): {line}",
        a.model,
        a.split,
        a.data.data.display()
    );
    if let Some(j) = &a.json {
        write_json(j, &v)?;
    }
    Ok(())
}

/// `mirkit predict`.
#[derive(Args, Clone, Debug)]
pub struct PredictArgs {
    /// A model written by `mirkit finetune` (head.safetensors, or best.safetensors of
    /// `--head network`) or `mirkit train` (best.safetensors): a classifier, tagger or
    /// regression model. Registry taggers answer `mirkit tag`.
    #[arg(long)]
    model: String,
    /// Audio files or folders (every audio file below them).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Write the CSV here (atomically) instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Chunks per track averaged (networks; heads use the embedding model's windows).
    #[arg(long, default_value_t = 4)]
    eval_chunks: usize,
}

/// What a model file predicts with, and the meaning of its outputs.
enum Predictor {
    Head(Head, Source),
    Scratch(ScratchModel),
    Tuned(FineTune),
}

/// `mirkit predict`: one CSV row per readable file — `path`, for a classifier the
/// `predicted` class, then one column per output (class or tag probabilities, or
/// predicted values in the targets' units). Unreadable files are listed on standard
/// error and make the exit status 1; the others are still written.
pub fn predict_cmd(a: PredictArgs) -> Res<std::process::ExitCode> {
    if !a.model.ends_with(".safetensors") {
        return Err(CliError::Usage(format!(
            "--model {}: give a model file written by `mirkit train` or `mirkit finetune`; \
             registry taggers answer `mirkit tag`",
            a.model
        )));
    }
    let path = Path::new(&a.model);
    let meta = mirkit::models::weights::metadata(path)?;
    let (predictor, task) = if meta.contains_key("head") {
        let (head, source) = open_head(path)?;
        let task = head.task();
        (Predictor::Head(head, source), task)
    } else {
        // networks: the task the loop wrote; files from before it was recorded are
        // taggers (sigmoid), as the pretrained ones are
        let task = match meta.get("task") {
            Some(t) => Task::parse(t)?,
            None => Task::MultiLabel,
        };
        let is_scratch = meta
            .get("arch")
            .is_some_and(|s| mirkit_train::zoo::ARCHITECTURES.contains(&s.as_str()));
        if is_scratch {
            (Predictor::Scratch(ScratchModel::load(path)?), task)
        } else {
            (Predictor::Tuned(FineTune::load(&a.model)?), task)
        }
    };
    let (names, sr): (Vec<String>, u32) = match &predictor {
        Predictor::Head(h, s) => (h.classes().to_vec(), s.sample_rate()),
        Predictor::Scratch(m) => (m.classes().to_vec(), 16_000),
        Predictor::Tuned(m) => (
            m.model().tags().to_vec(),
            mirkit::models::won2020::SAMPLE_RATE,
        ),
    };
    let mut files = vec![];
    for p in &a.inputs {
        if p.is_dir() {
            files.extend(mirkit::io::audio_files(p)?);
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() {
        return Err("no audio files in the inputs".into());
    }
    let items: Vec<mirkit::train::data::Item> = files
        .iter()
        .map(|p| mirkit::train::data::Item {
            path: p.clone(),
            labels: vec![],
            values: vec![],
            split: None,
        })
        .collect();
    let set = AudioSet::load(&items, sr, None)?;
    for (p, why) in &set.skipped {
        eprintln!("{}: {why}", p.display());
    }
    let c = names.len();
    let out = if set.is_empty() {
        vec![]
    } else {
        match &predictor {
            Predictor::Head(h, s) => h.predict(&s.extract(&set)?)?,
            Predictor::Scratch(m) => outputs(m, &set, task, c, m.input_len(), a.eval_chunks)?,
            Predictor::Tuned(m) => outputs(m, &set, task, c, m.input_len(), a.eval_chunks)?,
        }
    };
    let mut w = csv::Writer::from_writer(Vec::new());
    let csv_err = |e: csv::Error| CliError::from(e.to_string());
    let mut header = vec!["path".to_string()];
    if task == Task::MultiClass {
        header.push("predicted".into());
    }
    header.extend(names.iter().cloned());
    w.write_record(&header).map_err(csv_err)?;
    for (i, it) in set.items.iter().enumerate() {
        let row = &out[i * c..(i + 1) * c];
        let mut rec = vec![it.path.display().to_string()];
        if task == Task::MultiClass {
            rec.push(names[argmax_rows(row, c)[0]].clone());
        }
        rec.extend(row.iter().map(|v| v.to_string()));
        w.write_record(&rec).map_err(csv_err)?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    match &a.output {
        Some(o) if !super::args::is_dash(o) => {
            use std::io::Write;
            mirkit::core::npy::write_atomic(o, |f| f.write_all(&bytes))?;
        }
        _ => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&bytes)
                .map_err(|e| format!("standard output: {e}"))?;
        }
    }
    Ok(super::error::status(set.skipped.len()))
}
