//! The training loop: seeded chunk sampling with a background loader, on-the-fly
//! augmentation, BCE, cross-entropy or (on standardised targets) MSE/Huber, AdamW/SGD or Won et al. 2020's recipe, early
//! stopping on validation loss, atomic checkpoints that resume to the same result, a CSV
//! log and PNG curves.

use crate::audio::AudioSet;
use crate::ckpt;
use crate::data::Task;
use crate::error::{invalid, io_err, Result, TrainError};
use crate::metrics;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use mirkit_augment::Augment;
use mirkit_core::rng::Rng;
use mirkit_nn::optim::{AdamW, OptState, Sgd};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A model the loop can train: it turns audio chunks into inputs, inputs into logits,
/// and owns its variables in a [`VarMap`].
pub trait Trainable: Sync {
    /// The input of one audio chunk (no batch dimension), computed on loader threads.
    fn prepare(&self, chunk: &[f32]) -> Result<Tensor>;
    /// Logits `(B, classes)` of a batch, in training (batch statistics, dropout) or
    /// evaluation mode.
    fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor>;
    /// Every variable (trainable weights and batch-norm statistics), by name.
    fn varmap(&self) -> &VarMap;
    /// Groups of trainable variables with their learning-rate multipliers; variables in
    /// no group are frozen. Default: everything at ×1.
    fn param_groups(&self) -> Vec<ParamGroup> {
        vec![ParamGroup {
            name: "all".into(),
            vars: sorted_vars(self.varmap())
                .into_iter()
                .map(|(_, v)| v)
                .collect(),
            lr_mult: 1.0,
        }]
    }
    /// Metadata stored with the saved model (tags, architecture, front end).
    fn metadata(&self) -> HashMap<String, String> {
        HashMap::new()
    }
    /// Called before each training step's forward pass with the step's position. A model
    /// with randomness of its own (dropout) draws it from `(seed, epoch, step)` here
    /// rather than from a generator's history, so a run resumed from a checkpoint draws
    /// exactly what an uninterrupted run would. Default: nothing.
    fn begin_step(&self, epoch: usize, step: usize) {
        let _ = (epoch, step);
    }
    /// Regression models: the standardisation of their targets. The loop trains the
    /// outputs against standardised values and [`predict`] returns them in the targets'
    /// units. A model without one cannot train or evaluate a regression. Default: none.
    fn target_scaling(&self) -> Option<&crate::data::TargetScaling> {
        None
    }
}

/// Trainable variables sharing a learning-rate multiplier.
pub struct ParamGroup {
    /// For logs.
    pub name: String,
    /// The variables.
    pub vars: Vec<Var>,
    /// Multiplier of the base learning rate.
    pub lr_mult: f64,
}

/// The variables of a [`VarMap`] sorted by name (a deterministic order).
pub fn sorted_vars(vm: &VarMap) -> Vec<(String, Var)> {
    let data = vm.data().lock().unwrap();
    let mut v: Vec<(String, Var)> = data.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// Which optimiser and learning rates.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerConfig {
    /// AdamW (decoupled weight decay).
    AdamW {
        /// learning rate
        lr: f64,
        /// decoupled weight decay
        weight_decay: f64,
    },
    /// SGD with momentum.
    Sgd {
        /// learning rate
        lr: f64,
        /// momentum
        momentum: f64,
        /// Nesterov momentum
        nesterov: bool,
        /// L2 weight decay
        weight_decay: f64,
    },
    /// Won et al. 2020 (sota-music-tagging-models `solver.py`): Adam (lr 1e-4, L2 1e-4);
    /// after `adam_patience` epochs without a better validation loss, reload the best
    /// weights and switch to SGD (Nesterov 0.9, lr 1e-3, wd 1e-4); after `sgd_patience`
    /// more, reload and drop to 1e-4, then 1e-5. Published patiences: 80 and 20.
    Won2020 {
        /// epochs without improvement before leaving Adam
        adam_patience: usize,
        /// epochs without improvement before each SGD drop
        sgd_patience: usize,
    },
}

impl OptimizerConfig {
    fn phase_lr(&self, phase: usize) -> f64 {
        match *self {
            OptimizerConfig::AdamW { lr, .. } | OptimizerConfig::Sgd { lr, .. } => lr,
            OptimizerConfig::Won2020 { .. } => [1e-4, 1e-3, 1e-4, 1e-5][phase.min(3)],
        }
    }
}

/// Training settings.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    /// Maximum epochs.
    pub epochs: usize,
    /// Examples per step.
    pub batch_size: usize,
    /// Samples per training chunk (the model's input length).
    pub chunk_len: usize,
    /// Chunks per track averaged in evaluation (Won 2020: 16).
    pub eval_chunks: usize,
    /// Optimiser.
    pub optimizer: OptimizerConfig,
    /// Per-epoch schedule of the base rate (AdamW/SGD only).
    pub schedule: Option<mirkit_nn::optim::Schedule>,
    /// Stop after this many epochs without a lower validation loss.
    pub patience: Option<usize>,
    /// Clip the global gradient norm.
    pub grad_clip: Option<f64>,
    /// Label smoothing of the loss.
    pub label_smoothing: f64,
    /// Loss of a regression (on standardised targets; also the validation loss that
    /// early stopping watches).
    pub regression_loss: mirkit_nn::loss::RegressionLoss,
    /// Waveform augmentation of training chunks (seeded per epoch and item).
    pub augment: Option<Augment>,
    /// Seed of chunk positions, order and augmentation.
    pub seed: u64,
    /// Batches prepared ahead by the loader thread.
    pub prefetch: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 20,
            batch_size: 16,
            chunk_len: 48_000,
            eval_chunks: 4,
            optimizer: OptimizerConfig::AdamW {
                lr: 1e-3,
                weight_decay: 1e-4,
            },
            schedule: None,
            patience: Some(10),
            grad_clip: None,
            label_smoothing: 0.0,
            regression_loss: mirkit_nn::loss::RegressionLoss::Mse,
            augment: None,
            seed: 0,
            prefetch: 2,
        }
    }
}

/// One epoch's line of the log (in the checkpoint's JSON with its fields in this,
/// alphabetical, order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochLog {
    /// 0-based epoch.
    pub epoch: usize,
    /// Base learning rate used.
    pub lr: f64,
    /// Seconds the epoch took.
    pub seconds: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss (mean over evaluation chunks).
    pub valid_loss: f64,
    /// Validation accuracy (multi-class) or macro ROC-AUC (multi-label).
    pub valid_metric: f64,
    /// Macro F1 (multi-class) or macro PR-AUC (multi-label).
    pub valid_metric2: f64,
}

/// What the loop reports as it goes.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A training step finished.
    Step {
        /// epoch
        epoch: usize,
        /// steps done this epoch
        step: usize,
        /// steps per epoch
        steps: usize,
        /// its loss
        loss: f64,
    },
    /// An epoch (with validation) finished and was checkpointed.
    Epoch(EpochLog),
    /// Resumed from a checkpoint after this many completed epochs.
    Resumed(usize),
    /// Resumed a run that has nothing left to do: it stopped early (patience), or it has
    /// done the epochs asked for (a larger epoch count continues it instead).
    NothingToDo {
        /// epochs the run has done
        epochs_done: usize,
        /// whether patience ended it
        stopped_early: bool,
    },
}

/// Reply of the progress callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Go on.
    Continue,
    /// Stop now (returns [`TrainError::Interrupted`]; the last checkpoint stays valid).
    Stop,
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct TrainReport {
    /// Every epoch, including those before a resume.
    pub history: Vec<EpochLog>,
    /// Epoch with the lowest validation loss.
    pub best_epoch: usize,
    /// That loss.
    pub best_valid_loss: f64,
    /// Stopped by patience before `epochs`.
    pub stopped_early: bool,
    /// The best model's weights (loadable with the model's own loader).
    pub best_path: PathBuf,
}

enum Opt {
    Adam(Vec<(AdamW, f64)>),
    Sgd(Vec<(Sgd, f64)>),
}

impl Opt {
    fn new(cfg: &OptimizerConfig, phase: usize, groups: &[ParamGroup]) -> Result<Self> {
        let lr = cfg.phase_lr(phase);
        Ok(match (cfg, phase) {
            (OptimizerConfig::AdamW { weight_decay, .. }, _) => Opt::Adam(
                groups
                    .iter()
                    .map(|g| {
                        Ok((
                            AdamW::new(g.vars.clone(), lr * g.lr_mult, *weight_decay)?,
                            g.lr_mult,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
            (OptimizerConfig::Won2020 { .. }, 0) => Opt::Adam(
                groups
                    .iter()
                    .map(|g| {
                        Ok((
                            AdamW::adam_l2(g.vars.clone(), lr * g.lr_mult, 1e-4)?,
                            g.lr_mult,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
            (OptimizerConfig::Won2020 { .. }, _) => Opt::Sgd(
                groups
                    .iter()
                    .map(|g| {
                        Ok((
                            Sgd::new(g.vars.clone(), lr * g.lr_mult, 0.9, 0.0, true, 1e-4)?,
                            g.lr_mult,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
            (
                OptimizerConfig::Sgd {
                    momentum,
                    nesterov,
                    weight_decay,
                    ..
                },
                _,
            ) => Opt::Sgd(
                groups
                    .iter()
                    .map(|g| {
                        Ok((
                            Sgd::new(
                                g.vars.clone(),
                                lr * g.lr_mult,
                                *momentum,
                                0.0,
                                *nesterov,
                                *weight_decay,
                            )?,
                            g.lr_mult,
                        ))
                    })
                    .collect::<Result<_>>()?,
            ),
        })
    }
    fn set_lr(&mut self, lr: f64) {
        match self {
            Opt::Adam(v) => v.iter_mut().for_each(|(o, m)| o.lr = lr * *m),
            Opt::Sgd(v) => v.iter_mut().for_each(|(o, m)| o.lr = lr * *m),
        }
    }
    fn step(&mut self, grads: &candle_core::backprop::GradStore) -> Result<()> {
        match self {
            Opt::Adam(v) => v.iter_mut().try_for_each(|(o, _)| o.step(grads))?,
            Opt::Sgd(v) => v.iter_mut().try_for_each(|(o, _)| o.step(grads))?,
        }
        Ok(())
    }
    fn states(&self) -> Vec<OptState> {
        match self {
            Opt::Adam(v) => v.iter().map(|(o, _)| o.state()).collect(),
            Opt::Sgd(v) => v.iter().map(|(o, _)| o.state()).collect(),
        }
    }
    fn set_states(&mut self, st: &[OptState]) -> Result<()> {
        match self {
            Opt::Adam(v) => v
                .iter_mut()
                .zip(st)
                .try_for_each(|((o, _), s)| o.set_state(s))?,
            Opt::Sgd(v) => v
                .iter_mut()
                .zip(st)
                .try_for_each(|((o, _), s)| o.set_state(s))?,
        }
        Ok(())
    }
}

/// Predictions of a model on a set: per-track class probabilities (softmax or sigmoid)
/// averaged over `n_chunks` evenly spaced chunks, and the mean loss over all chunks.
pub struct Predictions {
    /// `tracks × classes`, row-major.
    pub probs: Vec<f32>,
    /// Mean loss over every evaluated chunk.
    pub loss: f64,
}

/// The loss target of a batch: class indices `(B,)` u32 (multi-class) or a multi-hot
/// `(B, classes)` f32 matrix (multi-label), from each row's class indices. Regression
/// targets are values, not class indices: see [`value_targets`].
pub fn targets(task: Task, rows: &[&[usize]], classes: usize, dev: &Device) -> Result<Tensor> {
    Ok(match task {
        Task::Regression => {
            return Err(invalid(
                "task",
                "regression",
                "targets are values: use value_targets",
            ))
        }
        Task::MultiClass => {
            let y: Vec<u32> = rows
                .iter()
                .map(|l| l.first().copied().unwrap_or(0) as u32)
                .collect();
            Tensor::from_vec(y, rows.len(), dev)?
        }
        Task::MultiLabel => Tensor::from_vec(
            crate::data::multi_hot(rows.iter().copied(), classes),
            (rows.len(), classes),
            dev,
        )?,
    })
}

/// Regression targets `(B, outputs)` f32 from each row's values (every row must hold
/// `outputs` values).
pub fn value_targets(rows: &[&[f32]], outputs: usize, dev: &Device) -> Result<Tensor> {
    if let Some(r) = rows.iter().find(|r| r.len() != outputs) {
        return Err(TrainError::Mismatch {
            what: "target values per row vs outputs".into(),
            got: r.len(),
            expected: outputs,
        });
    }
    let y: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
    Ok(Tensor::from_vec(y, (rows.len(), outputs), dev)?)
}

/// The loss target of a batch of items; regression values are standardised with
/// `scaling` (required for regression).
fn targets_tensor(
    task: Task,
    items: &[&crate::data::Item],
    classes: usize,
    scaling: Option<&crate::data::TargetScaling>,
    dev: &Device,
) -> Result<Tensor> {
    if task == Task::Regression {
        let s = scaling.ok_or_else(no_scaling)?;
        let z: Vec<Vec<f32>> = items
            .iter()
            .map(|it| {
                if it.values.len() == classes {
                    Ok(s.standardise(&it.values))
                } else {
                    Err(TrainError::Mismatch {
                        what: format!("target values of {} vs outputs", it.path.display()),
                        got: it.values.len(),
                        expected: classes,
                    })
                }
            })
            .collect::<Result<_>>()?;
        let rows: Vec<&[f32]> = z.iter().map(|r| r.as_slice()).collect();
        return value_targets(&rows, classes, dev);
    }
    let rows: Vec<&[usize]> = items.iter().map(|it| it.labels.as_slice()).collect();
    targets(task, &rows, classes, dev)
}

/// Mean cross-entropy (multi-class), binary cross-entropy (multi-label) or squared error
/// (regression; see [`mirkit_nn::loss::RegressionLoss`] for Huber) of the outputs.
pub fn task_loss(task: Task, logits: &Tensor, y: &Tensor, smoothing: f64) -> Result<Tensor> {
    Ok(match task {
        Task::MultiClass => mirkit_nn::loss::cross_entropy(logits, y, smoothing)?,
        Task::MultiLabel => mirkit_nn::loss::bce_with_logits(logits, y, None, smoothing)?,
        Task::Regression => mirkit_nn::loss::mse(logits, y)?,
    })
}

/// Softmax (multi-class) or sigmoid (multi-label) of logits; regression outputs are
/// returned as they are.
pub fn task_probs(task: Task, logits: &Tensor) -> Result<Tensor> {
    Ok(match task {
        Task::MultiClass => candle_nn::ops::softmax(logits, 1)?,
        Task::MultiLabel => candle_nn::ops::sigmoid(logits)?,
        Task::Regression => logits.clone(),
    })
}

fn no_scaling() -> TrainError {
    invalid(
        "task",
        "regression",
        "the model has no target standardisation (Trainable::target_scaling): train a \
         regression network made for it (e.g. FineTune::regression), or fit a regression \
         head on embeddings",
    )
}

/// The training loss of a batch: the task's (cross-entropy, BCE) with `smoothing`, or
/// `regression` on standardised targets.
fn loop_loss(
    task: Task,
    logits: &Tensor,
    y: &Tensor,
    smoothing: f64,
    regression: mirkit_nn::loss::RegressionLoss,
) -> Result<Tensor> {
    if task == Task::Regression {
        return Ok(regression.apply(logits, y)?);
    }
    task_loss(task, logits, y, smoothing)
}

/// Evaluates `model` on `set` (see [`Predictions`]). Regression: the loss is the mean
/// squared error of the standardised outputs (as [`TrainConfig::regression_loss`]'s
/// default) and `probs` are the predicted values in the targets' units.
pub fn predict<M: Trainable + ?Sized>(
    model: &M,
    set: &AudioSet,
    task: Task,
    classes: usize,
    chunk_len: usize,
    n_chunks: usize,
) -> Result<Predictions> {
    let mse = mirkit_nn::loss::RegressionLoss::Mse;
    evaluate(model, set, task, classes, (chunk_len, n_chunks), Some(mse))
}

/// [`predict`] with the regression loss of the run (the validation loss of a run trained
/// with Huber is Huber's).
pub fn predict_with_loss<M: Trainable + ?Sized>(
    model: &M,
    set: &AudioSet,
    task: Task,
    classes: usize,
    chunk_len: usize,
    n_chunks: usize,
    regression: mirkit_nn::loss::RegressionLoss,
) -> Result<Predictions> {
    evaluate(
        model,
        set,
        task,
        classes,
        (chunk_len, n_chunks),
        Some(regression),
    )
}

/// The per-track outputs of `model` on `set` — class probabilities, or values in the
/// targets' units for a regression network — averaged over `n_chunks` evenly spaced
/// chunks as [`predict`] does, for files without labels or targets (no loss).
pub fn outputs<M: Trainable + ?Sized>(
    model: &M,
    set: &AudioSet,
    task: Task,
    classes: usize,
    chunk_len: usize,
    n_chunks: usize,
) -> Result<Vec<f32>> {
    Ok(evaluate(model, set, task, classes, (chunk_len, n_chunks), None)?.probs)
}

/// [`predict_with_loss`] (with `loss`) or [`outputs`] (without: the loss is 0).
fn evaluate<M: Trainable + ?Sized>(
    model: &M,
    set: &AudioSet,
    task: Task,
    classes: usize,
    (chunk_len, n_chunks): (usize, usize),
    loss: Option<mirkit_nn::loss::RegressionLoss>,
) -> Result<Predictions> {
    let scaling = model.target_scaling();
    if task == Task::Regression && scaling.is_none() {
        return Err(no_scaling());
    }
    let mut probs = Vec::with_capacity(set.len() * classes);
    let (mut loss_sum, mut count) = (0.0, 0usize);
    for i in 0..set.len() {
        let chunks = set.eval_chunks(i, chunk_len, n_chunks);
        let xs: Vec<Tensor> = chunks
            .par_iter()
            .map(|c| model.prepare(c))
            .collect::<Result<_>>()?;
        let x = Tensor::stack(&xs, 0)?;
        let logits = model.forward_t(&x, false)?;
        if logits.dims() != [xs.len(), classes] {
            return Err(TrainError::Mismatch {
                what: "model outputs vs classes".into(),
                got: logits.dims().last().copied().unwrap_or(0),
                expected: classes,
            });
        }
        if let Some(regression) = loss {
            let its: Vec<&crate::data::Item> = vec![&set.items[i]; xs.len()];
            let y = targets_tensor(task, &its, classes, scaling, x.device())?;
            loss_sum += loop_loss(task, &logits, &y, 0.0, regression)?.to_scalar::<f32>()? as f64
                * xs.len() as f64;
            count += xs.len();
        }
        let p: Vec<f32> = task_probs(task, &logits)?.mean(0)?.to_vec1()?;
        probs.extend(p);
    }
    if let (Task::Regression, Some(s)) = (task, scaling) {
        s.restore(&mut probs);
    }
    Ok(Predictions {
        probs,
        loss: loss_sum / count.max(1) as f64,
    })
}

/// (metric, metric2) of predictions: accuracy and macro F1, macro ROC-AUC and PR-AUC, or
/// mean R² and Spearman's ρ.
pub fn score(task: Task, probs: &[f32], set: &AudioSet, classes: &[String]) -> Result<(f64, f64)> {
    match task {
        Task::Regression => {
            let y = crate::data::value_rows(&set.items);
            let m = metrics::regression_metrics(probs, &y, classes)?;
            Ok((m.r2_mean, m.spearman_mean))
        }
        Task::MultiClass => {
            let truth: Vec<usize> = set.items.iter().map(|it| it.labels[0]).collect();
            let pred = metrics::argmax_rows(probs, classes.len());
            let m = metrics::classification_metrics(&truth, &pred, classes.len())?;
            Ok((m.accuracy, m.f1_macro))
        }
        Task::MultiLabel => {
            let y = crate::data::multi_hot(
                set.items.iter().map(|it| it.labels.as_slice()),
                classes.len(),
            );
            let m = metrics::tagging_metrics(probs, &y, classes)?;
            Ok((m.roc_auc_macro, m.pr_auc_macro))
        }
    }
}

/// What a run trains on: the two splits, the task and the class names.
#[derive(Clone, Copy)]
pub struct TrainData<'a> {
    /// Training split.
    pub train: &'a AudioSet,
    /// Validation split (early stopping, best model).
    pub valid: &'a AudioSet,
    /// Single- or multi-label.
    pub task: Task,
    /// Class or tag names in output order.
    pub classes: &'a [String],
}

impl TrainData<'_> {
    /// Both splits non-empty, every label a known class, one label per multi-class item;
    /// a regression needs the model's target standardisation for as many targets as
    /// classes, and every item as many finite values.
    fn check(&self, scaling: Option<&crate::data::TargetScaling>) -> Result<()> {
        if self.task == Task::Regression {
            let s = scaling.ok_or_else(no_scaling)?;
            if s.len() != self.classes.len() {
                return Err(TrainError::Mismatch {
                    what: "model target standardisation vs targets".into(),
                    got: s.len(),
                    expected: self.classes.len(),
                });
            }
            for it in self.train.items.iter().chain(&self.valid.items) {
                if it.values.len() != self.classes.len() || it.values.iter().any(|v| !v.is_finite())
                {
                    return Err(invalid(
                        "target values",
                        it.path.display(),
                        &format!("need {} finite values", self.classes.len()),
                    ));
                }
            }
        }
        for (name, set) in [("train", self.train), ("valid", self.valid)] {
            if set.is_empty() {
                return Err(TrainError::EmptySplit {
                    split: name.into(),
                    why: " (no readable files)".into(),
                });
            }
        }
        for it in self.train.items.iter().chain(&self.valid.items) {
            if let Some(&l) = it.labels.iter().find(|&&l| l >= self.classes.len()) {
                return Err(TrainError::Mismatch {
                    what: format!("label of {} vs classes", it.path.display()),
                    got: l,
                    expected: self.classes.len(),
                });
            }
            if self.task == Task::MultiClass && it.labels.len() != 1 {
                return Err(invalid(
                    "labels",
                    it.path.display(),
                    "a multi-class item needs exactly one class",
                ));
            }
        }
        Ok(())
    }
}

/// The loop's state: everything besides the weights and optimiser buffers that a resumed
/// run needs to continue exactly. Saved as JSON under `mirkit_train_state` in the metadata
/// of `last.safetensors`, with the fields in this (alphabetical) order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    /// Batch size the run was started with (a resume must use the same).
    pub batch_size: usize,
    /// Epoch with the lowest validation loss so far.
    pub best_epoch: usize,
    /// That loss (`null` in JSON, infinity here, before any epoch improved).
    #[serde(deserialize_with = "infinity_if_null")]
    pub best_loss: f64,
    /// Epochs without improvement since the last phase change (Won 2020's recipe).
    pub drop_counter: usize,
    /// Completed epochs.
    pub epochs_done: usize,
    /// The run ended (epoch limit or patience).
    pub finished: bool,
    /// Every completed epoch.
    pub history: Vec<EpochLog>,
    /// Optimiser steps per parameter group.
    pub opt_steps: Vec<u64>,
    /// Won 2020 recipe phase (0: Adam, 1–3: SGD at falling rates).
    pub phase: usize,
    /// Seed the run was started with (a resume must use the same).
    pub seed: u64,
    /// Epochs since the best one (patience).
    pub since_best: usize,
    /// Ended by patience before the epoch limit.
    pub stopped_early: bool,
    /// Format version (1).
    pub version: u32,
}

fn infinity_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
}

impl LoopState {
    fn new(cfg: &TrainConfig) -> Self {
        Self {
            batch_size: cfg.batch_size,
            best_epoch: 0,
            best_loss: f64::INFINITY,
            drop_counter: 0,
            epochs_done: 0,
            finished: false,
            history: Vec::new(),
            opt_steps: Vec::new(),
            phase: 0,
            seed: cfg.seed,
            since_best: 0,
            stopped_early: false,
            version: 1,
        }
    }
}

/// A training run as a small state machine: fixed parts (model, data, configuration,
/// paths), the optimiser, and the [`LoopState`] that each epoch advances and checkpoints.
/// [`train`] is `new` → (`resume`) → `run`.
pub struct Trainer<'a, M: Trainable> {
    model: &'a M,
    data: TrainData<'a>,
    cfg: &'a TrainConfig,
    dir: PathBuf,
    last_path: PathBuf,
    best_path: PathBuf,
    vars: Vec<(String, Var)>,
    groups: Vec<ParamGroup>,
    opt: Opt,
    state: LoopState,
}

impl<'a, M: Trainable> Trainer<'a, M> {
    /// Checks the data and configuration and prepares a fresh run writing into `dir`.
    pub fn new(
        model: &'a M,
        data: TrainData<'a>,
        cfg: &'a TrainConfig,
        dir: &Path,
    ) -> Result<Self> {
        data.check(model.target_scaling())?;
        if cfg.batch_size == 0 || cfg.chunk_len == 0 || cfg.epochs == 0 {
            return Err(invalid(
                "batch_size/chunk_len/epochs",
                format!("{}/{}/{}", cfg.batch_size, cfg.chunk_len, cfg.epochs),
                "must be positive",
            ));
        }
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let groups = model.param_groups();
        Ok(Self {
            model,
            data,
            cfg,
            dir: dir.to_path_buf(),
            last_path: dir.join("last.safetensors"),
            best_path: dir.join("best.safetensors"),
            vars: sorted_vars(model.varmap()),
            opt: Opt::new(&cfg.optimizer, 0, &groups)?,
            groups,
            state: LoopState::new(cfg),
        })
    }

    /// The loop's state.
    pub fn state(&self) -> &LoopState {
        &self.state
    }

    /// Continues from `dir/last.safetensors` when it exists (weights, optimiser state,
    /// loop state; the seed and batch size must match): returns whether it did.
    pub fn resume(&mut self) -> Result<bool> {
        if !self.last_path.exists() {
            return Ok(false);
        }
        let (tensors, meta) = ckpt::load(&self.last_path)?;
        let bad = |why: String| TrainError::Checkpoint {
            file: self.last_path.display().to_string(),
            why,
        };
        let st: LoopState = serde_json::from_str(
            meta.get("mirkit_train_state")
                .ok_or_else(|| bad("no training state".into()))?,
        )
        .map_err(|e| bad(format!("training state: {e}")))?;
        if st.seed != self.cfg.seed || st.batch_size != self.cfg.batch_size {
            return Err(bad(format!(
                "written with seed {} and batch size {}, resuming with {} and {}",
                st.seed, st.batch_size, self.cfg.seed, self.cfg.batch_size
            )));
        }
        for (name, v) in &self.vars {
            let t = tensors
                .get(&format!("model.{name}"))
                .ok_or_else(|| bad(format!("missing model.{name}")))?;
            if t.dims() != v.dims() {
                return Err(bad(format!(
                    "model.{name} has shape {:?}, model wants {:?}",
                    t.dims(),
                    v.dims()
                )));
            }
            v.set(&t.to_dtype(v.dtype())?)?;
        }
        self.opt = Opt::new(&self.cfg.optimizer, st.phase, &self.groups)?;
        let mut states = vec![OptState::default(); st.opt_steps.len()];
        for (k, s) in states.iter_mut().enumerate() {
            s.step = st.opt_steps[k];
            let prefix = format!("optim.{k}.");
            s.buffers = tensors
                .iter()
                .filter_map(|(n, t)| n.strip_prefix(&prefix).map(|r| (r.to_string(), t.clone())))
                .collect();
            s.buffers.sort_by(|a, b| a.0.cmp(&b.0));
        }
        self.opt.set_states(&states)?;
        self.state = st;
        Ok(true)
    }

    /// Runs epochs until the epoch limit or patience ends the run (or `progress` says
    /// stop: [`TrainError::Interrupted`], the last checkpoint stays valid).
    pub fn run(mut self, progress: &mut dyn FnMut(Progress) -> Control) -> Result<TrainReport> {
        while !self.state.finished && self.state.epochs_done < self.cfg.epochs {
            self.epoch(progress)?;
        }
        Ok(self.report())
    }

    fn report(self) -> TrainReport {
        TrainReport {
            history: self.state.history,
            best_epoch: self.state.best_epoch,
            best_valid_loss: self.state.best_loss,
            stopped_early: self.state.stopped_early,
            best_path: self.best_path,
        }
    }

    /// The base learning rate of an epoch.
    fn base_lr(&self, epoch: usize) -> f64 {
        match (&self.cfg.schedule, &self.cfg.optimizer) {
            (Some(s), OptimizerConfig::AdamW { lr, .. } | OptimizerConfig::Sgd { lr, .. }) => {
                s.lr(*lr, epoch)
            }
            _ => self.cfg.optimizer.phase_lr(self.state.phase),
        }
    }

    /// One epoch: train, validate, keep the best model, switch phase, checkpoint.
    fn epoch(&mut self, progress: &mut dyn FnMut(Progress) -> Control) -> Result<()> {
        let epoch = self.state.epochs_done;
        let t0 = std::time::Instant::now();
        let base_lr = self.base_lr(epoch);
        self.opt.set_lr(base_lr);
        let train_loss = self.train_steps(epoch, progress)?;
        let (task, classes) = (self.data.task, self.data.classes);
        let pred = predict_with_loss(
            self.model,
            self.data.valid,
            task,
            classes.len(),
            self.cfg.chunk_len,
            self.cfg.eval_chunks,
            self.cfg.regression_loss,
        )?;
        let (m1, m2) = score(task, &pred.probs, self.data.valid, classes)?;
        let log = EpochLog {
            epoch,
            lr: base_lr,
            seconds: t0.elapsed().as_secs_f64(),
            train_loss,
            valid_loss: pred.loss,
            valid_metric: m1,
            valid_metric2: m2,
        };
        self.state.history.push(log.clone());
        self.keep_best(epoch, pred.loss)?;
        self.switch_phase()?;
        let st = &mut self.state;
        st.epochs_done = epoch + 1;
        st.finished =
            epoch + 1 == self.cfg.epochs || self.cfg.patience.is_some_and(|p| st.since_best >= p);
        st.stopped_early = st.finished && epoch + 1 < self.cfg.epochs;
        self.checkpoint()?;
        write_log(&self.dir, &self.state.history, task)?;
        progress(Progress::Epoch(log));
        Ok(())
    }

    /// The training steps of an epoch, batches prepared by a loader thread; returns the
    /// mean loss. The order and chunks come from (seed, epoch) alone.
    fn train_steps(
        &mut self,
        epoch: usize,
        progress: &mut dyn FnMut(Progress) -> Control,
    ) -> Result<f64> {
        let (cfg, model, train_set) = (self.cfg, self.model, self.data.train);
        let (task, n_classes) = (self.data.task, self.data.classes.len());
        let scaling = model.target_scaling();
        let dev = Device::Cpu;
        let n = train_set.len();
        let steps = n.div_ceil(cfg.batch_size);
        let mut order: Vec<usize> = (0..n).collect();
        Rng::for_item(cfg.seed, epoch as u64).shuffle(&mut order);
        let mut loss_sum = 0.0;
        let mut interrupted = None;
        let (groups, opt) = (&self.groups, &mut self.opt);
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) =
                std::sync::mpsc::sync_channel::<Result<(Tensor, Tensor)>>(cfg.prefetch.max(1));
            let order = &order;
            let dev = &dev;
            s.spawn(move || {
                for b in 0..steps {
                    let idx = &order[b * cfg.batch_size..((b + 1) * cfg.batch_size).min(n)];
                    let batch = (|| -> Result<(Tensor, Tensor)> {
                        let xs: Vec<Tensor> = idx
                            .par_iter()
                            .map(|&i| {
                                let mut r = Rng::for_item(
                                    cfg.seed ^ 0x9e37_79b9_7f4a_7c15,
                                    (epoch * n + i) as u64,
                                );
                                let mut chunk = train_set.random_chunk(i, cfg.chunk_len, &mut r);
                                if let Some(a) = &cfg.augment {
                                    let mut log = Vec::new();
                                    a.apply(&mut chunk, train_set.sr, &mut r, &mut log)?;
                                    chunk.resize(cfg.chunk_len, 0.0);
                                }
                                model.prepare(&chunk)
                            })
                            .collect::<Result<_>>()?;
                        let its: Vec<&crate::data::Item> =
                            idx.iter().map(|&i| &train_set.items[i]).collect();
                        Ok((
                            Tensor::stack(&xs, 0)?,
                            targets_tensor(task, &its, n_classes, scaling, dev)?,
                        ))
                    })();
                    if tx.send(batch).is_err() {
                        return; // the trainer stopped
                    }
                }
            });
            for (step, batch) in rx.iter().enumerate() {
                let (x, y) = batch?;
                model.begin_step(epoch, step);
                let logits = model.forward_t(&x, true)?;
                if logits.dims() != [x.dim(0)?, n_classes] {
                    return Err(TrainError::Mismatch {
                        what: "model outputs vs classes".into(),
                        got: logits.dims().last().copied().unwrap_or(0),
                        expected: n_classes,
                    });
                }
                let loss = loop_loss(task, &logits, &y, cfg.label_smoothing, cfg.regression_loss)?;
                let lv = loss.to_scalar::<f32>()? as f64;
                if !lv.is_finite() {
                    return Err(TrainError::Diverged {
                        epoch,
                        step,
                        value: lv,
                    });
                }
                let mut grads = loss.backward()?;
                if let Some(c) = cfg.grad_clip {
                    let all: Vec<Var> =
                        groups.iter().flat_map(|g| g.vars.iter().cloned()).collect();
                    mirkit_nn::optim::clip_grad_norm(&all, &mut grads, c)?;
                }
                opt.step(&grads)?;
                loss_sum += lv;
                if progress(Progress::Step {
                    epoch,
                    step: step + 1,
                    steps,
                    loss: lv,
                }) == Control::Stop
                {
                    interrupted = Some(step + 1);
                    return Ok(()); // drops rx: the loader thread ends
                }
            }
            Ok(())
        })?;
        if let Some(steps) = interrupted {
            return Err(TrainError::Interrupted { epoch, steps });
        }
        Ok(loss_sum / steps as f64)
    }

    /// Saves `best.safetensors` when the validation loss improved; counts epochs since.
    fn keep_best(&mut self, epoch: usize, valid_loss: f64) -> Result<()> {
        let st = &mut self.state;
        if valid_loss < st.best_loss {
            st.best_loss = valid_loss;
            st.best_epoch = epoch;
            st.since_best = 0;
            st.drop_counter = 0;
            let named: Vec<(String, Tensor)> = self
                .vars
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect();
            let mut meta = self.model.metadata();
            meta.insert("mirkit_best_epoch".into(), epoch.to_string());
            // what the outputs mean (softmax, sigmoid or values), for `mirkit predict`
            meta.entry("task".into())
                .or_insert_with(|| self.data.task.as_str().into());
            ckpt::save(&self.best_path, &named, &meta)?;
        } else {
            st.since_best += 1;
            st.drop_counter += 1;
        }
        Ok(())
    }

    /// Won 2020's phase switches: after enough epochs without improvement, reload the
    /// best weights and move to the next optimiser or rate.
    fn switch_phase(&mut self) -> Result<()> {
        let OptimizerConfig::Won2020 {
            adam_patience,
            sgd_patience,
        } = self.cfg.optimizer
        else {
            return Ok(());
        };
        let st = &mut self.state;
        let limit = if st.phase == 0 {
            adam_patience
        } else {
            sgd_patience
        };
        if st.phase < 3 && st.drop_counter >= limit {
            let (best, _) = ckpt::load(&self.best_path)?;
            for (k, v) in &self.vars {
                if let Some(t) = best.get(k) {
                    v.set(t)?;
                }
            }
            st.phase += 1;
            st.drop_counter = 0;
            if st.phase == 1 {
                self.opt = Opt::new(&self.cfg.optimizer, st.phase, &self.groups)?;
            }
        }
        Ok(())
    }

    /// Writes `last.safetensors`: weights, optimiser state and loop state in one atomic
    /// file.
    fn checkpoint(&mut self) -> Result<()> {
        let mut named: Vec<(String, Tensor)> = self
            .vars
            .iter()
            .map(|(k, v)| (format!("model.{k}"), v.as_tensor().clone()))
            .collect();
        let states = self.opt.states();
        for (g, s) in states.iter().enumerate() {
            for (name, t) in &s.buffers {
                named.push((format!("optim.{g}.{name}"), t.clone()));
            }
        }
        self.state.opt_steps = states.iter().map(|s| s.step).collect();
        let mut meta = HashMap::new();
        meta.insert(
            "mirkit_train_state".to_string(),
            serde_json::to_string(&self.state).expect("plain values"),
        );
        ckpt::save(&self.last_path, &named, &meta)
    }
}

/// Runs training, writing into `dir`: `last.safetensors` (weights, optimiser state and
/// the loop's state in its metadata — one atomic file, so a kill at any moment leaves a
/// consistent checkpoint), `best.safetensors` (the best weights under the model's own
/// names, with its metadata), `log.csv`, `loss.png`, `metric.png`. With `resume` and a
/// checkpoint present, training continues after the last completed epoch and ends
/// bit-identical to an uninterrupted run. The steps are those of [`Trainer`].
///
/// ```
/// use mirkit_train::audio::AudioSet;
/// use mirkit_train::data::{CsvOptions, Dataset};
/// use mirkit_train::trainer::{train, Control, Progress, TrainConfig, TrainData};
/// use mirkit_train::zoo::{ScratchModel, SHORT_CHUNK_LEN};
/// use mirkit_train::toy::{write_toy_set, ToyOptions};
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-{}-{}", std::process::id(), line!()));
/// let opts = ToyOptions { clips_per_class: 3, seconds: 4.0, sample_rate: 16000, seed: 0 };
/// let manifest = write_toy_set(&dir, &opts)?; // path,label,tempo_bpm,split
/// let ds = Dataset::csv_manifest(&manifest, &CsvOptions::default())?;
/// let (tr, va) = (AudioSet::load(&ds.split("train")?, 16_000, None)?, AudioSet::load(&ds.split("valid")?, 16_000, None)?);
/// // a seeded short-chunk CNN of width 4 (the published one is 128), two epochs
/// let model = ScratchModel::new("short-chunk-cnn", 4, &ds.classes, 0)?;
/// let cfg = TrainConfig { epochs: 2, batch_size: 4, chunk_len: SHORT_CHUNK_LEN, eval_chunks: 1, ..TrainConfig::default() };
/// let data = TrainData { train: &tr, valid: &va, task: ds.task, classes: &ds.classes };
/// let report = train(&model, data, &cfg, &dir.join("run"), false, &mut |p| {
///     if let Progress::Epoch(l) = p {
///         println!("epoch {}: valid loss {:.3}", l.epoch + 1, l.valid_loss);
///     }
///     Control::Continue // or Control::Stop, e.g. on Ctrl-C
/// })?;
/// assert_eq!(report.history.len(), 2);
/// assert!(report.best_path.exists()); // best.safetensors: ScratchModel::load reads it
/// assert!(dir.join("run/log.csv").exists() && dir.join("run/loss.png").exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), mirkit_train::TrainError>(())
/// ```
pub fn train<M: Trainable>(
    model: &M,
    data: TrainData<'_>,
    cfg: &TrainConfig,
    dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(Progress) -> Control,
) -> Result<TrainReport> {
    let mut t = Trainer::new(model, data, cfg, dir)?;
    if resume && t.resume()? {
        let st = &mut t.state;
        // a run that ended at its epoch limit goes on when asked for more epochs; one that
        // patience stopped stays stopped
        if st.finished && !st.stopped_early && st.epochs_done < t.cfg.epochs {
            st.finished = false;
        }
        if st.finished || st.epochs_done >= t.cfg.epochs {
            progress(Progress::NothingToDo {
                epochs_done: st.epochs_done,
                stopped_early: st.stopped_early,
            });
            return Ok(t.report());
        }
        progress(Progress::Resumed(st.epochs_done));
    }
    t.run(progress)
}

/// Writes `log.csv` (atomically) and the `loss.png` / `metric.png` curves.
pub fn write_log(dir: &Path, history: &[EpochLog], task: Task) -> Result<()> {
    let (m1, m2) = match task {
        Task::MultiClass => ("valid_accuracy", "valid_f1_macro"),
        Task::MultiLabel => ("valid_roc_auc", "valid_pr_auc"),
        Task::Regression => ("valid_r2", "valid_spearman"),
    };
    let mut csv = format!("epoch,lr,train_loss,valid_loss,{m1},{m2},seconds\n");
    for h in history {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{:.3}\n",
            h.epoch, h.lr, h.train_loss, h.valid_loss, h.valid_metric, h.valid_metric2, h.seconds
        ));
    }
    use std::io::Write;
    mirkit_core::npy::write_atomic(&dir.join("log.csv"), |w| w.write_all(csv.as_bytes()))?;
    if history.len() >= 2 {
        let tl: Vec<f32> = history.iter().map(|h| h.train_loss as f32).collect();
        let vl: Vec<f32> = history.iter().map(|h| h.valid_loss as f32).collect();
        let a: Vec<f32> = history.iter().map(|h| h.valid_metric as f32).collect();
        let b: Vec<f32> = history.iter().map(|h| h.valid_metric2 as f32).collect();
        let opts = |title: &str, y: &str| mirkit_io::plot::LinePlot {
            title: title.into(),
            x_label: "epoch".into(),
            y_label: y.into(),
            x_start_step: (history[0].epoch as f64, 1.0),
            size: (700, 300),
        };
        let plot_err = |e: mirkit_io::IoError| TrainError::Audio(e);
        mirkit_io::plot::line_plot_png(
            dir.join("loss.png"),
            &[("train", &tl), ("valid", &vl)],
            &opts("Loss", "loss"),
        )
        .map_err(plot_err)?;
        mirkit_io::plot::line_plot_png(
            dir.join("metric.png"),
            &[(m1, &a), (m2, &b)],
            &opts("Validation", "score"),
        )
        .map_err(plot_err)?;
    }
    Ok(())
}

/// Loads the weights of a saved model (e.g. `best.safetensors`) into `vm`'s variables;
/// every variable must be present with its shape.
pub fn load_weights(vm: &VarMap, path: &Path) -> Result<HashMap<String, String>> {
    let (tensors, meta) = ckpt::load(path)?;
    for (name, v) in sorted_vars(vm) {
        let t = tensors.get(&name).ok_or_else(|| TrainError::Checkpoint {
            file: path.display().to_string(),
            why: format!("missing tensor {name}"),
        })?;
        if t.dims() != v.dims() {
            return Err(TrainError::Checkpoint {
                file: path.display().to_string(),
                why: format!(
                    "{name} has shape {:?}, model wants {:?}",
                    t.dims(),
                    v.dims()
                ),
            });
        }
        v.set(&t.to_dtype(DType::F32)?)?;
    }
    Ok(meta)
}
