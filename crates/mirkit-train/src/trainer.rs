//! The training loop: seeded chunk sampling with a background loader, on-the-fly
//! augmentation, BCE or cross-entropy, AdamW/SGD or Won et al. 2020's recipe, early
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
use serde_json::{json, Value};
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
            augment: None,
            seed: 0,
            prefetch: 2,
        }
    }
}

/// One epoch's line of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLog {
    /// 0-based epoch.
    pub epoch: usize,
    /// Base learning rate used.
    pub lr: f64,
    /// Mean training loss.
    pub train_loss: f64,
    /// Validation loss (mean over evaluation chunks).
    pub valid_loss: f64,
    /// Validation accuracy (multi-class) or macro ROC-AUC (multi-label).
    pub valid_metric: f64,
    /// Macro F1 (multi-class) or macro PR-AUC (multi-label).
    pub valid_metric2: f64,
    /// Seconds the epoch took.
    pub seconds: f64,
}

impl EpochLog {
    fn to_json(&self) -> Value {
        json!({"epoch": self.epoch, "lr": self.lr, "train_loss": self.train_loss,
               "valid_loss": self.valid_loss, "valid_metric": self.valid_metric,
               "valid_metric2": self.valid_metric2, "seconds": self.seconds})
    }
    fn from_json(v: &Value) -> Option<Self> {
        Some(Self {
            epoch: v["epoch"].as_u64()? as usize,
            lr: v["lr"].as_f64()?,
            train_loss: v["train_loss"].as_f64()?,
            valid_loss: v["valid_loss"].as_f64()?,
            valid_metric: v["valid_metric"].as_f64()?,
            valid_metric2: v["valid_metric2"].as_f64()?,
            seconds: v["seconds"].as_f64()?,
        })
    }
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
/// `(B, classes)` f32 matrix (multi-label), from each row's class indices.
pub fn targets(task: Task, rows: &[&[usize]], classes: usize, dev: &Device) -> Result<Tensor> {
    Ok(match task {
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

fn targets_tensor(
    task: Task,
    items: &[&crate::data::Item],
    classes: usize,
    dev: &Device,
) -> Result<Tensor> {
    let rows: Vec<&[usize]> = items.iter().map(|it| it.labels.as_slice()).collect();
    targets(task, &rows, classes, dev)
}

/// Mean cross-entropy (multi-class) or binary cross-entropy (multi-label) of logits.
pub fn task_loss(task: Task, logits: &Tensor, y: &Tensor, smoothing: f64) -> Result<Tensor> {
    Ok(match task {
        Task::MultiClass => mirkit_nn::loss::cross_entropy(logits, y, smoothing)?,
        Task::MultiLabel => mirkit_nn::loss::bce_with_logits(logits, y, None, smoothing)?,
    })
}

/// Softmax (multi-class) or sigmoid (multi-label) of logits.
pub fn task_probs(task: Task, logits: &Tensor) -> Result<Tensor> {
    Ok(match task {
        Task::MultiClass => candle_nn::ops::softmax(logits, 1)?,
        Task::MultiLabel => candle_nn::ops::sigmoid(logits)?,
    })
}

/// Evaluates `model` on `set` (see [`Predictions`]).
pub fn predict<M: Trainable + ?Sized>(
    model: &M,
    set: &AudioSet,
    task: Task,
    classes: usize,
    chunk_len: usize,
    n_chunks: usize,
) -> Result<Predictions> {
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
        let item = &set.items[i];
        let its: Vec<&crate::data::Item> = vec![item; xs.len()];
        let y = targets_tensor(task, &its, classes, x.device())?;
        loss_sum += task_loss(task, &logits, &y, 0.0)?.to_scalar::<f32>()? as f64 * xs.len() as f64;
        count += xs.len();
        let p: Vec<f32> = task_probs(task, &logits)?.mean(0)?.to_vec1()?;
        probs.extend(p);
    }
    Ok(Predictions {
        probs,
        loss: loss_sum / count.max(1) as f64,
    })
}

/// (metric, metric2) of predictions: accuracy and macro F1, or macro ROC-AUC and PR-AUC.
pub fn score(task: Task, probs: &[f32], set: &AudioSet, classes: &[String]) -> Result<(f64, f64)> {
    match task {
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

/// Runs training, writing into `dir`: `last.safetensors` (weights, optimiser state and
/// the loop's state in its metadata — one atomic file, so a kill at any moment leaves a
/// consistent checkpoint), `best.safetensors` (the best weights under the model's own
/// names, with its metadata), `log.csv`, `loss.png`, `metric.png`. With `resume` and a
/// checkpoint present, training continues after the last completed epoch and ends
/// bit-identical to an uninterrupted run.
#[allow(clippy::too_many_arguments)]
pub fn train<M: Trainable>(
    model: &M,
    train_set: &AudioSet,
    valid_set: &AudioSet,
    task: Task,
    classes: &[String],
    cfg: &TrainConfig,
    dir: &Path,
    resume: bool,
    progress: &mut dyn FnMut(Progress) -> Control,
) -> Result<TrainReport> {
    if train_set.is_empty() {
        return Err(TrainError::EmptySplit {
            split: "train".into(),
            why: " (no readable files)".into(),
        });
    }
    if valid_set.is_empty() {
        return Err(TrainError::EmptySplit {
            split: "valid".into(),
            why: " (no readable files)".into(),
        });
    }
    if cfg.batch_size == 0 || cfg.chunk_len == 0 || cfg.epochs == 0 {
        return Err(invalid(
            "batch_size/chunk_len/epochs",
            format!("{}/{}/{}", cfg.batch_size, cfg.chunk_len, cfg.epochs),
            "must be positive",
        ));
    }
    for it in train_set.items.iter().chain(&valid_set.items) {
        if let Some(&l) = it.labels.iter().find(|&&l| l >= classes.len()) {
            return Err(TrainError::Mismatch {
                what: format!("label of {} vs classes", it.path.display()),
                got: l,
                expected: classes.len(),
            });
        }
        if task == Task::MultiClass && it.labels.len() != 1 {
            return Err(invalid(
                "labels",
                it.path.display(),
                "a multi-class item needs exactly one class",
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let last_path = dir.join("last.safetensors");
    let best_path = dir.join("best.safetensors");
    let vars = sorted_vars(model.varmap());
    let groups = model.param_groups();

    // loop state
    let mut start = 0usize;
    let mut phase = 0usize;
    let mut drop_counter = 0usize;
    let mut since_best = 0usize;
    let mut best_loss = f64::INFINITY;
    let mut best_epoch = 0usize;
    let mut history: Vec<EpochLog> = Vec::new();
    let mut opt = Opt::new(&cfg.optimizer, 0, &groups)?;

    if resume && last_path.exists() {
        let (tensors, meta) = ckpt::load(&last_path)?;
        let bad = |why: String| TrainError::Checkpoint {
            file: last_path.display().to_string(),
            why,
        };
        let st: Value = serde_json::from_str(
            meta.get("mirkit_train_state")
                .ok_or_else(|| bad("no training state".into()))?,
        )
        .map_err(|e| bad(e.to_string()))?;
        if st["seed"].as_u64() != Some(cfg.seed)
            || st["batch_size"].as_u64() != Some(cfg.batch_size as u64)
        {
            return Err(bad(format!(
                "written with seed {} and batch size {}, resuming with {} and {}",
                st["seed"], st["batch_size"], cfg.seed, cfg.batch_size
            )));
        }
        for (name, v) in &vars {
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
        let g = |k: &str| {
            st[k]
                .as_u64()
                .map(|x| x as usize)
                .ok_or_else(|| bad(format!("no {k}")))
        };
        start = g("epochs_done")?;
        phase = g("phase")?;
        drop_counter = g("drop_counter")?;
        since_best = g("since_best")?;
        best_epoch = g("best_epoch")?;
        best_loss = st["best_loss"].as_f64().unwrap_or(f64::INFINITY);
        history = st["history"]
            .as_array()
            .map(|a| a.iter().filter_map(EpochLog::from_json).collect())
            .unwrap_or_default();
        opt = Opt::new(&cfg.optimizer, phase, &groups)?;
        let n_groups = st["opt_steps"].as_array().map(|a| a.len()).unwrap_or(0);
        let mut states = vec![OptState::default(); n_groups];
        for (k, s) in states.iter_mut().enumerate() {
            s.step = st["opt_steps"][k].as_u64().unwrap_or(0);
            let prefix = format!("optim.{k}.");
            s.buffers = tensors
                .iter()
                .filter_map(|(n, t)| n.strip_prefix(&prefix).map(|r| (r.to_string(), t.clone())))
                .collect();
            s.buffers.sort_by(|a, b| a.0.cmp(&b.0));
        }
        opt.set_states(&states)?;
        progress(Progress::Resumed(start));
        if st["finished"].as_bool() == Some(true) {
            return Ok(TrainReport {
                history,
                best_epoch,
                best_valid_loss: best_loss,
                stopped_early: st["stopped_early"].as_bool().unwrap_or(false),
                best_path,
            });
        }
    }

    let dev = Device::Cpu;
    let n = train_set.len();
    let steps = n.div_ceil(cfg.batch_size);
    let mut stopped_early = false;
    for epoch in start..cfg.epochs {
        let t0 = std::time::Instant::now();
        let base_lr = match (&cfg.schedule, &cfg.optimizer) {
            (Some(s), OptimizerConfig::AdamW { lr, .. } | OptimizerConfig::Sgd { lr, .. }) => {
                s.lr(*lr, epoch)
            }
            _ => cfg.optimizer.phase_lr(phase),
        };
        opt.set_lr(base_lr);
        // this epoch's order and chunks come from (seed, epoch) alone
        let mut order: Vec<usize> = (0..n).collect();
        Rng::for_item(cfg.seed, epoch as u64).shuffle(&mut order);
        let mut loss_sum = 0.0;
        let mut interrupted = None;
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
                            targets_tensor(task, &its, classes.len(), dev)?,
                        ))
                    })();
                    if tx.send(batch).is_err() {
                        return; // the trainer stopped
                    }
                }
            });
            for (step, batch) in rx.iter().enumerate() {
                let (x, y) = batch?;
                let logits = model.forward_t(&x, true)?;
                if logits.dims() != [x.dim(0)?, classes.len()] {
                    return Err(TrainError::Mismatch {
                        what: "model outputs vs classes".into(),
                        got: logits.dims().last().copied().unwrap_or(0),
                        expected: classes.len(),
                    });
                }
                let loss = task_loss(task, &logits, &y, cfg.label_smoothing)?;
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
        let pred = predict(
            model,
            valid_set,
            task,
            classes.len(),
            cfg.chunk_len,
            cfg.eval_chunks,
        )?;
        let (m1, m2) = score(task, &pred.probs, valid_set, classes)?;
        let log = EpochLog {
            epoch,
            lr: base_lr,
            train_loss: loss_sum / steps as f64,
            valid_loss: pred.loss,
            valid_metric: m1,
            valid_metric2: m2,
            seconds: t0.elapsed().as_secs_f64(),
        };
        history.push(log.clone());
        let improved = pred.loss < best_loss;
        if improved {
            best_loss = pred.loss;
            best_epoch = epoch;
            since_best = 0;
            drop_counter = 0;
            let named: Vec<(String, Tensor)> = vars
                .iter()
                .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
                .collect();
            let mut meta = model.metadata();
            meta.insert("mirkit_best_epoch".into(), epoch.to_string());
            ckpt::save(&best_path, &named, &meta)?;
        } else {
            since_best += 1;
            drop_counter += 1;
        }
        // Won 2020's phase switches: reload the best weights, change optimiser or rate
        if let OptimizerConfig::Won2020 {
            adam_patience,
            sgd_patience,
        } = cfg.optimizer
        {
            let limit = if phase == 0 {
                adam_patience
            } else {
                sgd_patience
            };
            if phase < 3 && drop_counter >= limit {
                let (best, _) = ckpt::load(&best_path)?;
                for (k, v) in &vars {
                    if let Some(t) = best.get(k) {
                        v.set(t)?;
                    }
                }
                phase += 1;
                drop_counter = 0;
                if phase == 1 {
                    opt = Opt::new(&cfg.optimizer, phase, &groups)?;
                }
            }
        }
        let finished_now = epoch + 1 == cfg.epochs || cfg.patience.is_some_and(|p| since_best >= p);
        stopped_early = finished_now && epoch + 1 < cfg.epochs;
        // one atomic file holds weights, optimiser state and loop state
        let mut named: Vec<(String, Tensor)> = vars
            .iter()
            .map(|(k, v)| (format!("model.{k}"), v.as_tensor().clone()))
            .collect();
        let states = opt.states();
        for (g, s) in states.iter().enumerate() {
            for (name, t) in &s.buffers {
                named.push((format!("optim.{g}.{name}"), t.clone()));
            }
        }
        let st = json!({
            "version": 1, "seed": cfg.seed, "batch_size": cfg.batch_size,
            "epochs_done": epoch + 1, "phase": phase, "drop_counter": drop_counter,
            "since_best": since_best, "best_epoch": best_epoch, "best_loss": best_loss,
            "opt_steps": states.iter().map(|s| s.step).collect::<Vec<_>>(),
            "history": history.iter().map(|h| h.to_json()).collect::<Vec<_>>(),
            "finished": finished_now, "stopped_early": stopped_early,
        });
        let mut meta = HashMap::new();
        meta.insert("mirkit_train_state".to_string(), st.to_string());
        ckpt::save(&last_path, &named, &meta)?;
        write_log(dir, &history, task)?;
        progress(Progress::Epoch(log));
        if finished_now {
            break;
        }
    }
    Ok(TrainReport {
        history,
        best_epoch,
        best_valid_loss: best_loss,
        stopped_early,
        best_path,
    })
}

/// Writes `log.csv` (atomically) and the `loss.png` / `metric.png` curves.
pub fn write_log(dir: &Path, history: &[EpochLog], task: Task) -> Result<()> {
    let (m1, m2) = match task {
        Task::MultiClass => ("valid_accuracy", "valid_f1_macro"),
        Task::MultiLabel => ("valid_roc_auc", "valid_pr_auc"),
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
