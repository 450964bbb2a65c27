//! Fine-tuning a pretrained Won et al. 2020 tagger on a new task: a new output layer for
//! the new classes, chosen layers frozen, separate learning rates for the new head and
//! the pretrained body, trained by mirkit-train's loop. The result is one safetensors
//! file under the original names with the new tag list, which `mirkit tag --model
//! FILE.safetensors` loads like any pretrained tagger.

use crate::error::{invalid, Result};
use candle_core::{Tensor, Var};
use candle_nn::VarMap;
use mirkit_core::rng::Rng;
use mirkit_models::won2020::{Arch, Won2020};

use mirkit_train::data::TargetScaling;
use mirkit_train::trainer::{sorted_vars, ParamGroup, Trainable};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

/// Which pretrained parts stay fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freeze {
    /// Train everything (the mel filterbank and window are never trained).
    Nothing,
    /// Keep the input batch norm (`spec_bn`) fixed; train the network.
    FrontEnd,
    /// Keep every pretrained layer fixed (in evaluation mode); train only the new output
    /// layer — a linear probe trained through the audio pipeline.
    Body,
    /// Keep the variables whose names start with any of these prefixes fixed (e.g.
    /// `layers.`, `layer1.`).
    Prefixes(Vec<String>),
}

/// Fine-tuning settings.
#[derive(Debug, Clone)]
pub struct FineTuneConfig {
    /// What stays fixed.
    pub freeze: Freeze,
    /// Learning-rate multiplier of the new output layer.
    pub head_lr_mult: f64,
    /// Learning-rate multiplier of the pretrained layers being trained.
    pub body_lr_mult: f64,
    /// Dropout before the output layer while training (Won 2020's models use 0.5).
    pub dropout: f64,
    /// Seed of the new layer's initialisation and of dropout.
    pub seed: u64,
    /// Keep every batch norm in evaluation mode (pretrained running statistics, not
    /// batch statistics) while training the weights — the usual choice when fine-tuning
    /// on small data sets or small batches.
    pub frozen_bn_stats: bool,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self {
            freeze: Freeze::FrontEnd,
            head_lr_mult: 10.0,
            body_lr_mult: 1.0,
            dropout: 0.5,
            seed: 0,
            frozen_bn_stats: false,
        }
    }
}

/// A pretrained tagger prepared for fine-tuning (implements [`Trainable`]).
///
/// ```
/// use mirkit_transfer::finetune::{FineTune, FineTuneConfig};
/// use mirkit_train::trainer::{train, Control, TrainConfig, TrainData};
/// use mirkit_train::{audio::AudioSet, data::{CsvOptions, Dataset}, toy::{write_toy_set, ToyOptions}};
/// // a small labelled set (four synthetic dances); ballroom8 or your own CSV work the same
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-{}-{}", std::process::id(), line!()));
/// let opts = ToyOptions { clips_per_class: 3, seconds: 4.0, sample_rate: 16000, seed: 0 };
/// let ds = Dataset::csv_manifest(write_toy_set(&dir, &opts)?, &CsvOptions::default())?;
/// let load = |s: &str| AudioSet::load(&ds.split(s).unwrap(), 16_000, None);
/// // Won et al. 2020's Musicnn (MTAT) with a new 4-way output layer
/// let ft = FineTune::new("won2020-musicnn-mtat", &ds.classes, FineTuneConfig::default())?;
/// let cfg = TrainConfig { epochs: 1, batch_size: 4, chunk_len: ft.input_len(), eval_chunks: 1, ..TrainConfig::default() };
/// let (tr, va) = (load("train")?, load("valid")?);
/// let data = TrainData { train: &tr, valid: &va, task: ds.task, classes: &ds.classes };
/// let report = train(&ft, data, &cfg, &dir.join("run"), false, &mut |_| Control::Continue)?;
/// // a tagger of the new classes, for `mirkit tag --model` or FineTune::load
/// let tuned = FineTune::load(&report.best_path.display().to_string())?;
/// assert_eq!(tuned.input_len(), ft.input_len());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct FineTune {
    model: Won2020,
    vm: VarMap,
    cfg: FineTuneConfig,
    rng: Mutex<Rng>,
    source: String,
    /// Regression: the standardisation of the targets (the output layer predicts
    /// standardised values).
    scaling: Option<TargetScaling>,
}

fn head_prefix(arch: Arch) -> &'static str {
    match arch {
        Arch::Fcn | Arch::Crnn => "dense.",
        Arch::Musicnn => "dense2.",
    }
}

/// A trainable Won 2020 model from a registry name or a file; musicnn 0.1.0 models
/// (frozen feature extractors only) are refused by name.
fn trainable(
    source: &str,
    tags: Option<Vec<String>>,
    seed: u64,
) -> Result<(Won2020, candle_nn::VarMap)> {
    use mirkit_models::registry::{Family, MODELS};
    if let Some(e) = MODELS.iter().find(|e| e.name == source) {
        if let Family::Won2020(arch) = e.family {
            return Ok(Won2020::trainable_from_bytes(
                arch,
                e.weights()?,
                source,
                tags,
                seed,
            )?);
        }
        return Err(invalid(
            "model",
            source,
            "musicnn 0.1.0 models serve as frozen feature extractors (heads linear/mlp/knn); \
             fine-tune a won2020-* model",
        ));
    }
    let arch = Won2020::detect_arch(source)?;
    Ok(Won2020::load_trainable(arch, source, tags, seed)?)
}

impl FineTune {
    /// Loads a pretrained model — a registry name (e.g. `won2020-musicnn-mtat`) or a
    /// Won 2020-layout `.safetensors` file — and replaces its output layer with one for
    /// `classes`.
    pub fn new(source: &str, classes: &[String], cfg: FineTuneConfig) -> Result<Self> {
        if !(0.0..1.0).contains(&cfg.dropout) {
            return Err(invalid("dropout", cfg.dropout, "must be in [0, 1)"));
        }
        if !(cfg.head_lr_mult >= 0.0 && cfg.body_lr_mult >= 0.0) {
            return Err(invalid(
                "lr multipliers",
                format!("{}/{}", cfg.head_lr_mult, cfg.body_lr_mult),
                "must be >= 0",
            ));
        }
        let (model, vm) = trainable(source, Some(classes.to_vec()), cfg.seed)?;
        Ok(Self {
            model,
            vm,
            rng: Mutex::new(Rng::new(cfg.seed ^ 0xd0d0)),
            cfg,
            source: source.to_string(),
            scaling: None,
        })
    }

    /// Makes this a regression network: its outputs (one per name given to [`Self::new`])
    /// predict values standardised with `scaling` (the training split's, from
    /// [`TargetScaling::fit`]); the loop trains them with MSE or Huber
    /// (`TrainConfig::regression_loss`), `predict` answers in the targets' units, and the
    /// saved file keeps the scaling so [`Self::load`] does too.
    ///
    /// ```no_run
    /// use mirkit_transfer::finetune::{FineTune, FineTuneConfig};
    /// use mirkit_train::data::TargetScaling;
    /// let tempo = vec![vec![96.0f32], vec![120.0], vec![174.0]]; // training values
    /// let s = TargetScaling::fit(&tempo, 1)?;
    /// let ft = FineTune::new("won2020-musicnn-mtat", &["tempo_bpm".into()], FineTuneConfig::default())?
    ///     .regression(s)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn regression(mut self, scaling: TargetScaling) -> Result<Self> {
        let n = self.model.tags().len();
        if scaling.len() != n {
            return Err(invalid(
                "target scaling",
                scaling.len(),
                &format!("the network has {n} outputs"),
            ));
        }
        self.scaling = Some(scaling);
        Ok(self)
    }

    /// A saved tagger (registry name or `.safetensors`) as it is, output layer included,
    /// e.g. to evaluate a fine-tuned model with the training loop's protocol. A
    /// regression network ([`Self::regression`]) comes back with its target scaling.
    pub fn load(source: &str) -> Result<Self> {
        let (model, vm) = trainable(source, None, 0)?;
        let scaling = if source.ends_with(".safetensors") {
            let meta = mirkit_models::weights::metadata(Path::new(source))?;
            TargetScaling::from_metadata(&meta, model.tags().len(), source)?
        } else {
            None
        };
        Ok(Self {
            model,
            vm,
            rng: Mutex::new(Rng::new(0)),
            cfg: FineTuneConfig::default(),
            source: source.to_string(),
            scaling,
        })
    }

    /// The target scaling of a regression network ([`Self::regression`]).
    pub fn scaling(&self) -> Option<&TargetScaling> {
        self.scaling.as_ref()
    }

    /// The network.
    pub fn model(&self) -> &Won2020 {
        &self.model
    }

    /// Samples per input chunk (the model's window).
    pub fn input_len(&self) -> usize {
        self.model.input_len()
    }

    fn frozen(&self, name: &str) -> bool {
        if name.starts_with("spec.") {
            return true; // filterbank and window: constants in the original too
        }
        let head = name.starts_with(head_prefix(self.model.arch()));
        match &self.cfg.freeze {
            Freeze::Nothing => false,
            Freeze::FrontEnd => name.starts_with("spec_bn."),
            Freeze::Body => !head,
            Freeze::Prefixes(p) => !head && p.iter().any(|p| name.starts_with(p.as_str())),
        }
    }

    /// Writes the model as one safetensors file (original names, new tag list and `arch`
    /// in the metadata), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let named: Vec<(String, Tensor)> = sorted_vars(&self.vm)
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        mirkit_train::ckpt::save(path, &named, &self.metadata())?;
        Ok(())
    }
}

impl Trainable for FineTune {
    fn begin_step(&self, epoch: usize, step: usize) {
        // dropout masks from (seed, epoch, step) alone: a resumed run draws what an
        // uninterrupted one does (the generator's state is not in the checkpoint)
        let item = ((epoch as u64) << 32) | step as u64;
        *self.rng.lock().unwrap_or_else(|e| e.into_inner()) =
            Rng::for_item(self.cfg.seed ^ 0xd0d0, item);
    }

    fn prepare(&self, chunk: &[f32]) -> mirkit_train::Result<Tensor> {
        let t = self
            .model
            .log_mel(chunk)
            .map_err(|e| mirkit_train::TrainError::Invalid {
                name: "chunk".into(),
                value: chunk.len().to_string(),
                why: e.to_string(),
            })?;
        Ok(t.squeeze(0)?)
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> mirkit_train::Result<Tensor> {
        let map = |e: mirkit_models::ModelError| mirkit_train::TrainError::Invalid {
            name: "forward".into(),
            value: format!("{:?}", x.dims()),
            why: e.to_string(),
        };
        let body_train = train && self.cfg.freeze != Freeze::Body && !self.cfg.frozen_bn_stats;
        let spec_train = body_train && self.cfg.freeze == Freeze::Nothing;
        // frozen statistics while the weights train: an eval-mode forward that must carry
        // gradients, so the convolution blocks are composed instead of fused
        let _grad = (train && !body_train && self.cfg.freeze != Freeze::Body)
            .then(mirkit_nn::fused::DifferentiableEval::new);
        let h = self.model.spec_bn_t(x, spec_train).map_err(map)?;
        let e = self.model.embedding_t(&h, body_train).map_err(map)?;
        let e = if train && self.cfg.dropout > 0.0 {
            let mut rng = self.rng.lock().unwrap();
            mirkit_nn::dropout::dropout(&e, self.cfg.dropout, true, &mut rng)?
        } else {
            e
        };
        self.model.logits(&e).map_err(map)
    }

    fn varmap(&self) -> &VarMap {
        &self.vm
    }

    fn param_groups(&self) -> Vec<ParamGroup> {
        let hp = head_prefix(self.model.arch());
        let (mut head, mut body): (Vec<Var>, Vec<Var>) = (vec![], vec![]);
        for (name, v) in sorted_vars(&self.vm) {
            if self.frozen(&name) || name.ends_with("running_mean") || name.ends_with("running_var")
            {
                continue;
            }
            if name.starts_with(hp) {
                head.push(v);
            } else {
                body.push(v);
            }
        }
        vec![
            ParamGroup {
                name: "head".into(),
                vars: head,
                lr_mult: self.cfg.head_lr_mult,
            },
            ParamGroup {
                name: "body".into(),
                vars: body,
                lr_mult: self.cfg.body_lr_mult,
            },
        ]
    }

    fn metadata(&self) -> HashMap<String, String> {
        let mut m = HashMap::new();
        m.insert(
            "tags".into(),
            serde_json::to_string(self.model.tags()).unwrap(),
        );
        m.insert("arch".into(), self.model.arch().as_str().into());
        m.insert("fine_tuned_from".into(), self.source.clone());
        if let Some(s) = &self.scaling {
            s.to_metadata(&mut m);
        }
        m
    }

    fn target_scaling(&self) -> Option<&TargetScaling> {
        self.scaling.as_ref()
    }
}
