//! Heads on frozen embeddings: logistic/linear regression, a small MLP and k-NN.
//!
//! Features are standardised with the training set's per-column mean and standard
//! deviation (kept with the head). Linear and MLP heads train with Adam on the
//! cross-entropy (multi-class), BCE (multi-label) or squared error / Huber (regression),
//! coupled L2 on the weights, seeded mini-batches, and keep the weights of the epoch with
//! the lowest validation loss.
//!
//! Regression ([`Head::fit_regression`]) standardises the targets too (training mean and
//! standard deviation per target, kept with the head), so the learning rate, L2 and the
//! Huber δ mean the same for tempo in BPM as for valence in [−1, 1]; predictions are
//! returned in the targets' own units. The k-NN regressor predicts the mean of the `k`
//! nearest training rows' values (scikit-learn's `KNeighborsRegressor` with uniform
//! weights, cosine distance).

use crate::embed::Embeddings;
use crate::error::{invalid, Result, TransferError};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{Module, VarBuilder, VarMap};
use mirkit_core::rng::Rng;
use mirkit_train::data::{TargetScaling, Task};
use std::collections::HashMap;
use std::path::Path;

/// Which head.
#[derive(Debug, Clone, PartialEq)]
pub enum HeadKind {
    /// Logistic regression (softmax or per-tag sigmoid) on the embedding.
    Linear,
    /// One hidden ReLU layer with dropout, then the output layer.
    Mlp {
        /// hidden width
        hidden: usize,
        /// dropout probability on the hidden layer
        dropout: f64,
    },
    /// Cosine k-nearest neighbours; scores are the vote fractions.
    Knn {
        /// neighbours
        k: usize,
    },
}

/// How a [`HeadKind`] is stored in a head file's metadata (`head`): fields in
/// alphabetical order, absent ones left out.
#[derive(serde::Serialize, serde::Deserialize)]
struct HeadKindJson {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dropout: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hidden: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<usize>,
    kind: String,
}

impl From<&HeadKind> for HeadKindJson {
    fn from(h: &HeadKind) -> Self {
        let (dropout, hidden, k) = match *h {
            HeadKind::Linear => (None, None, None),
            HeadKind::Mlp { hidden, dropout } => (Some(dropout), Some(hidden), None),
            HeadKind::Knn { k } => (None, None, Some(k)),
        };
        Self {
            dropout,
            hidden,
            k,
            kind: h.name().to_string(),
        }
    }
}

impl HeadKind {
    /// `linear`, `mlp` or `knn`.
    pub fn name(&self) -> &'static str {
        match self {
            HeadKind::Linear => "linear",
            HeadKind::Mlp { .. } => "mlp",
            HeadKind::Knn { .. } => "knn",
        }
    }
}

/// Training settings of a head.
#[derive(Debug, Clone)]
pub struct HeadConfig {
    /// The head.
    pub kind: HeadKind,
    /// L2 penalty on the weights.
    pub l2: f64,
    /// Adam learning rate.
    pub lr: f64,
    /// Maximum passes over the training set.
    pub epochs: usize,
    /// Rows per step.
    pub batch_size: usize,
    /// Seed of initialisation, order and dropout.
    pub seed: u64,
    /// Loss of a regression head (squared error or Huber with δ in standardised units);
    /// unused for classification and tagging.
    pub loss: mirkit_nn::loss::RegressionLoss,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            kind: HeadKind::Linear,
            l2: 1e-3,
            lr: 1e-2,
            epochs: 300,
            batch_size: 64,
            seed: 0,
            loss: mirkit_nn::loss::RegressionLoss::Mse,
        }
    }
}

/// A trained head with its standardisation.
///
/// ```
/// use mirkit_models::registry::load_pretrained;
/// use mirkit_transfer::embed::{extract, Layers};
/// use mirkit_transfer::heads::{Head, HeadConfig};
/// use mirkit_train::{audio::AudioSet, data::{CsvOptions, Dataset}, toy::{write_toy_set, ToyOptions}};
/// // a small labelled set (four synthetic dances); ballroom8 or your own CSV work the same
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-{}-{}", std::process::id(), line!()));
/// let opts = ToyOptions { clips_per_class: 3, seconds: 4.0, sample_rate: 16000, seed: 0 };
/// let ds = Dataset::csv_manifest(write_toy_set(&dir, &opts)?, &CsvOptions::default())?;
/// let load = |s: &str| AudioSet::load(&ds.split(s).unwrap(), 16_000, None);
/// let model = load_pretrained("musicnn-mtt")?;
/// let (tr, va, te) = (load("train")?, load("valid")?, load("test")?);
/// let emb = |s: &AudioSet| extract(&model, s, Layers::All);
/// let labels = |s: &AudioSet| s.items.iter().map(|i| i.labels.clone()).collect::<Vec<_>>();
/// // logistic regression on standardised embeddings (HeadKind::Mlp / Knn for the others)
/// let head = Head::fit(&emb(&tr)?, &labels(&tr), Some((&emb(&va)?, &labels(&va))), &ds.classes, ds.task, &HeadConfig::default())?;
/// let probs = head.predict(&emb(&te)?)?; // 4 test clips × 4 classes
/// assert_eq!(probs.len(), 16);
/// head.save(&dir.join("head.safetensors"), &Default::default())?; // mirkit eval reads it
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Head {
    kind: HeadKind,
    task: Task,
    classes: Vec<String>,
    mean: Vec<f32>,
    std: Vec<f32>,
    vm: VarMap,
    layers: Vec<candle_nn::Linear>,
    knn: Option<(Vec<f32>, Vec<Vec<usize>>)>,
    /// Regression: training mean and standard deviation of each target (empty for
    /// classes and tags).
    scaling: TargetScaling,
    /// Regression k-NN: the training rows' standardised values.
    knn_values: Vec<Vec<f32>>,
}

/// What a head is fitted to: class indices per row, or target values per row.
#[derive(Clone, Copy)]
enum Y<'a> {
    Labels(&'a [Vec<usize>]),
    Values(&'a [Vec<f32>]),
}

impl Y<'_> {
    fn len(&self) -> usize {
        match self {
            Y::Labels(l) => l.len(),
            Y::Values(v) => v.len(),
        }
    }
}

fn check_values(x: &Embeddings, values: &[Vec<f32>], outputs: usize) -> Result<()> {
    if x.n != values.len() {
        return Err(TransferError::Mismatch {
            what: "embeddings vs target rows".into(),
            got: x.n,
            expected: values.len(),
        });
    }
    for (i, v) in values.iter().enumerate() {
        if v.len() != outputs {
            return Err(TransferError::Mismatch {
                what: format!("values of row {i} vs targets"),
                got: v.len(),
                expected: outputs,
            });
        }
        if let Some(t) = v.iter().find(|t| !t.is_finite()) {
            return Err(invalid("target", format!("row {i}: {t}"), "must be finite"));
        }
    }
    if x.n < 2 {
        return Err(invalid(
            "embeddings",
            x.n,
            "a regression needs at least two rows",
        ));
    }
    check_finite(x)
}

/// Every embedding value finite.
fn check_finite(x: &Embeddings) -> Result<()> {
    if let Some(i) = x.data.iter().position(|v| !v.is_finite()) {
        return Err(invalid(
            "embeddings",
            format!("value #{i}"),
            "must be finite",
        ));
    }
    Ok(())
}

fn check(x: &Embeddings, labels: &[Vec<usize>], classes: usize, task: Task) -> Result<()> {
    if x.n != labels.len() {
        return Err(TransferError::Mismatch {
            what: "embeddings vs labels".into(),
            got: x.n,
            expected: labels.len(),
        });
    }
    for l in labels {
        if let Some(&c) = l.iter().find(|&&c| c >= classes) {
            return Err(TransferError::Mismatch {
                what: "label index vs classes".into(),
                got: c,
                expected: classes,
            });
        }
        if task == Task::MultiClass && l.len() != 1 {
            return Err(invalid(
                "labels",
                format!("{l:?}"),
                "multi-class rows need exactly one class",
            ));
        }
    }
    if x.n == 0 {
        return Err(invalid("embeddings", 0, "no rows"));
    }
    check_finite(x)
}

fn build_layers(
    kind: &HeadKind,
    dim: usize,
    classes: usize,
    vb: VarBuilder,
) -> Result<Vec<candle_nn::Linear>> {
    Ok(match kind {
        HeadKind::Linear => vec![candle_nn::linear(dim, classes, vb.pp("out"))?],
        HeadKind::Mlp { hidden, .. } => vec![
            candle_nn::linear(dim, *hidden, vb.pp("hidden"))?,
            candle_nn::linear(*hidden, classes, vb.pp("out"))?,
        ],
        HeadKind::Knn { .. } => vec![],
    })
}

impl Head {
    /// Fits a head on `train` rows with their class indices, choosing the epoch by the
    /// loss on `valid` when given (else the last epoch).
    pub fn fit(
        train: &Embeddings,
        train_labels: &[Vec<usize>],
        valid: Option<(&Embeddings, &[Vec<usize>])>,
        classes: &[String],
        task: Task,
        cfg: &HeadConfig,
    ) -> Result<Self> {
        if task == Task::Regression {
            return Err(invalid(
                "task",
                "regression",
                "regression heads take values: use Head::fit_regression",
            ));
        }
        let c = classes.len();
        check(train, train_labels, c, task)?;
        if let Some((v, vl)) = valid {
            check(v, vl, c, task)?;
        }
        Self::fit_any(
            train,
            Y::Labels(train_labels),
            valid.map(|(v, l)| (v, Y::Labels(l))),
            classes,
            task,
            cfg,
        )
    }

    /// Fits a regression head: `train_values[i]` holds the targets of row `i`, one per
    /// name in `targets` (e.g. `["tempo_bpm"]` or `["valence", "arousal"]`). The epoch is
    /// chosen by the loss on `valid` when given. Targets are standardised with the
    /// training statistics and [`Head::predict`] returns values in the original units.
    pub fn fit_regression(
        train: &Embeddings,
        train_values: &[Vec<f32>],
        valid: Option<(&Embeddings, &[Vec<f32>])>,
        targets: &[String],
        cfg: &HeadConfig,
    ) -> Result<Self> {
        if targets.is_empty() {
            return Err(invalid("targets", "[]", "name at least one target"));
        }
        check_values(train, train_values, targets.len())?;
        if let Some((v, vv)) = valid {
            check_values(v, vv, targets.len())?;
        }
        if let mirkit_nn::loss::RegressionLoss::Huber { delta } = cfg.loss {
            if !(delta > 0.0 && delta.is_finite()) {
                return Err(invalid("huber delta", delta, "must be finite and > 0"));
            }
        }
        Self::fit_any(
            train,
            Y::Values(train_values),
            valid.map(|(v, y)| (v, Y::Values(y))),
            targets,
            Task::Regression,
            cfg,
        )
    }

    fn fit_any(
        train: &Embeddings,
        train_y: Y,
        valid: Option<(&Embeddings, Y)>,
        classes: &[String],
        task: Task,
        cfg: &HeadConfig,
    ) -> Result<Self> {
        let c = classes.len();
        debug_assert_eq!(train_y.len(), train.n);
        if let Some((v, _)) = valid {
            if v.dim != train.dim {
                return Err(TransferError::Mismatch {
                    what: "validation vs training embedding width".into(),
                    got: v.dim,
                    expected: train.dim,
                });
            }
        }
        if !(cfg.l2 >= 0.0 && cfg.lr > 0.0 && cfg.batch_size > 0) {
            return Err(invalid(
                "l2/lr/batch_size",
                format!("{}/{}/{}", cfg.l2, cfg.lr, cfg.batch_size),
                "l2 >= 0, lr and batch size > 0",
            ));
        }
        let d = train.dim;
        let (mut mean, mut std) = (vec![0f64; d], vec![0f64; d]);
        for i in 0..train.n {
            for (j, v) in train.row(i).iter().enumerate() {
                mean[j] += *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= train.n as f64);
        for i in 0..train.n {
            for (j, v) in train.row(i).iter().enumerate() {
                std[j] += (*v as f64 - mean[j]).powi(2);
            }
        }
        let std: Vec<f32> = std
            .iter()
            .map(|s| {
                let s = (s / train.n as f64).sqrt();
                if s > 1e-8 {
                    s as f32
                } else {
                    1.0
                }
            })
            .collect();
        let mean: Vec<f32> = mean.iter().map(|m| *m as f32).collect();
        let vm = VarMap::new();
        let scaling = match train_y {
            Y::Values(v) => TargetScaling::fit(v, c)?,
            Y::Labels(_) => TargetScaling {
                mean: vec![],
                std: vec![],
            },
        };
        let mut head = Self {
            kind: cfg.kind.clone(),
            task,
            classes: classes.to_vec(),
            mean,
            std,
            vm: vm.clone(),
            layers: vec![],
            knn: None,
            scaling,
            knn_values: vec![],
        };
        if let HeadKind::Knn { k } = cfg.kind {
            if k == 0 {
                return Err(invalid("k", 0, "must be at least 1"));
            }
            let rows = head.normalised_rows(train);
            match train_y {
                Y::Labels(l) => head.knn = Some((rows, l.to_vec())),
                Y::Values(v) => {
                    head.knn_values = v.iter().map(|r| head.scaling.standardise(r)).collect();
                    head.knn = Some((rows, vec![]));
                }
            }
            return Ok(head);
        }
        // seeded PyTorch-default initialisation
        let mut rng = Rng::new(cfg.seed);
        let dev = Device::Cpu;
        let shapes: Vec<(String, usize, usize)> = match cfg.kind {
            HeadKind::Linear => vec![("out".into(), d, c)],
            HeadKind::Mlp { hidden, .. } => {
                vec![("hidden".into(), d, hidden), ("out".into(), hidden, c)]
            }
            HeadKind::Knn { .. } => unreachable!(),
        };
        let mut weights = Vec::new();
        for (name, i, o) in &shapes {
            let w = mirkit_nn::init::seeded_var(
                &vm,
                &format!("{name}.weight"),
                &[*o, *i],
                mirkit_nn::init::Init::KaimingUniformDefault,
                &mut rng,
                &dev,
            )?;
            mirkit_nn::init::seeded_var(
                &vm,
                &format!("{name}.bias"),
                &[*o],
                mirkit_nn::init::Init::Uniform(1.0 / (*i as f64).sqrt()),
                &mut rng,
                &dev,
            )?;
            weights.push(w);
        }
        head.layers = build_layers(
            &cfg.kind,
            d,
            c,
            VarBuilder::from_varmap(&vm, DType::F32, &dev),
        )?;
        let all: Vec<Var> = mirkit_train::trainer::sorted_vars(&vm)
            .into_iter()
            .map(|(_, v)| v)
            .collect();
        let biases: Vec<Var> = all
            .iter()
            .filter(|v| {
                !weights
                    .iter()
                    .any(|w| w.as_tensor().id() == v.as_tensor().id())
            })
            .cloned()
            .collect();
        let mut opt_w = mirkit_nn::optim::AdamW::adam_l2(weights.clone(), cfg.lr, cfg.l2)?;
        let mut opt_b = mirkit_nn::optim::AdamW::adam_l2(biases, cfg.lr, 0.0)?;
        let x = head.input(train)?;
        let y = head.targets(task, train_y, c, &dev)?;
        let vxy = match valid {
            Some((v, vl)) => Some((head.input(v)?, head.targets(task, vl, c, &dev)?)),
            None => None,
        };
        let mut best: Option<(f64, Vec<(String, Tensor)>)> = None;
        let n = train.n;
        for epoch in 0..cfg.epochs {
            let mut order: Vec<usize> = (0..n).collect();
            let mut r = Rng::for_item(cfg.seed, epoch as u64);
            r.shuffle(&mut order);
            for b in order.chunks(cfg.batch_size) {
                let idx = Tensor::from_vec(
                    b.iter().map(|&i| i as u32).collect::<Vec<_>>(),
                    b.len(),
                    &dev,
                )?;
                let xb = x.index_select(&idx, 0)?;
                let yb = y.index_select(&idx, 0)?;
                let logits = head.logits_t(&xb, true, &mut r)?;
                let loss = loss_of(task, cfg, &logits, &yb)?;
                let g = loss.backward()?;
                opt_w.step(&g)?;
                opt_b.step(&g)?;
            }
            if let Some((vx, vy)) = &vxy {
                let l = loss_of(task, cfg, &head.logits_t(vx, false, &mut r)?, vy)?
                    .to_scalar::<f32>()? as f64;
                if best.as_ref().is_none_or(|(b, _)| l < *b) {
                    let snap = mirkit_train::trainer::sorted_vars(&vm)
                        .into_iter()
                        .map(|(k, v)| Ok((k, v.as_tensor().copy()?)))
                        .collect::<Result<Vec<_>>>()?;
                    best = Some((l, snap));
                }
            }
        }
        if let Some((_, snap)) = best {
            let data = vm.data().lock().unwrap();
            for (k, t) in snap {
                data[&k].set(&t)?;
            }
        }
        Ok(head)
    }

    /// The loss target tensor: labels as [`mirkit_train::trainer::targets`], values
    /// standardised with the head's target statistics.
    fn targets(&self, task: Task, y: Y, c: usize, dev: &Device) -> Result<Tensor> {
        match y {
            Y::Labels(l) => targets(task, l, c, dev),
            Y::Values(v) => {
                let z: Vec<Vec<f32>> = v.iter().map(|r| self.scaling.standardise(r)).collect();
                let rows: Vec<&[f32]> = z.iter().map(|r| r.as_slice()).collect();
                Ok(mirkit_train::trainer::value_targets(&rows, c, dev)?)
            }
        }
    }

    fn normalised_rows(&self, x: &Embeddings) -> Vec<f32> {
        let mut out = Vec::with_capacity(x.data.len());
        for i in 0..x.n {
            let z: Vec<f32> = x
                .row(i)
                .iter()
                .zip(&self.mean)
                .zip(&self.std)
                .map(|((v, m), s)| (v - m) / s)
                .collect();
            let norm = z.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            out.extend(z.iter().map(|v| v / norm));
        }
        out
    }

    fn input(&self, x: &Embeddings) -> Result<Tensor> {
        let z: Vec<f32> = (0..x.n)
            .flat_map(|i| {
                x.row(i)
                    .iter()
                    .zip(&self.mean)
                    .zip(&self.std)
                    .map(|((v, m), s)| (v - m) / s)
                    .collect::<Vec<_>>()
            })
            .collect();
        Ok(Tensor::from_vec(z, (x.n, x.dim), &Device::Cpu)?)
    }

    fn logits_t(&self, x: &Tensor, train: bool, rng: &mut Rng) -> Result<Tensor> {
        Ok(match (&self.kind, self.layers.as_slice()) {
            (HeadKind::Linear, [out]) => out.forward(x)?,
            (HeadKind::Mlp { dropout, .. }, [hidden, out]) => {
                let h = hidden.forward(x)?.relu()?;
                let h = mirkit_nn::dropout::dropout(&h, *dropout, train, rng)?;
                out.forward(&h)?
            }
            _ => return Err(invalid("head", self.kind.name(), "has no layers")),
        })
    }

    /// Class probabilities (softmax or sigmoid; k-NN: neighbour vote fractions), or the
    /// predicted values of a regression head in the targets' units; row-major
    /// `rows × classes`.
    pub fn predict(&self, x: &Embeddings) -> Result<Vec<f32>> {
        let mut out = self.predict_raw(x)?;
        if self.task == Task::Regression {
            self.scaling.restore(&mut out);
        }
        Ok(out)
    }

    /// The task the head was fitted for.
    pub fn task(&self) -> Task {
        self.task
    }

    fn predict_raw(&self, x: &Embeddings) -> Result<Vec<f32>> {
        if x.dim != self.mean.len() {
            return Err(TransferError::Mismatch {
                what: "embedding width vs head".into(),
                got: x.dim,
                expected: self.mean.len(),
            });
        }
        let c = self.classes.len();
        if let (HeadKind::Knn { k }, Some((train, labels))) = (&self.kind, &self.knn) {
            let q = self.normalised_rows(x);
            let d = x.dim;
            let mut out = vec![0f32; x.n * c];
            for i in 0..x.n {
                let qi = &q[i * d..(i + 1) * d];
                let mut sims: Vec<(f32, usize)> = (0..train.len() / d)
                    .map(|j| {
                        (
                            qi.iter()
                                .zip(&train[j * d..(j + 1) * d])
                                .map(|(a, b)| a * b)
                                .sum::<f32>(),
                            j,
                        )
                    })
                    .collect();
                sims.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                let k = (*k).min(sims.len());
                for &(_, j) in &sims[..k] {
                    if self.task == Task::Regression {
                        for (o, v) in out[i * c..(i + 1) * c].iter_mut().zip(&self.knn_values[j]) {
                            *o += v / k as f32;
                        }
                        continue;
                    }
                    for &l in &labels[j] {
                        out[i * c + l] += 1.0 / k as f32;
                    }
                }
            }
            return Ok(out);
        }
        let logits = self.logits_t(&self.input(x)?, false, &mut Rng::new(0))?;
        let p = mirkit_train::trainer::task_probs(self.task, &logits)?;
        Ok(p.flatten_all()?.to_vec1()?)
    }

    /// Class names, in output order.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Saves the head (weights, standardisation, k-NN memory, classes, kind, and `extra`
    /// metadata such as the embedding model) as one safetensors file, atomically.
    pub fn save(&self, path: &Path, extra: &HashMap<String, String>) -> Result<()> {
        let dev = Device::Cpu;
        let mut tensors: Vec<(String, Tensor)> = mirkit_train::trainer::sorted_vars(&self.vm)
            .into_iter()
            .map(|(k, v)| (k, v.as_tensor().clone()))
            .collect();
        tensors.push((
            "mean".into(),
            Tensor::from_vec(self.mean.clone(), self.mean.len(), &dev)?,
        ));
        tensors.push((
            "std".into(),
            Tensor::from_vec(self.std.clone(), self.std.len(), &dev)?,
        ));
        let mut meta = extra.clone();
        meta.insert(
            "classes".into(),
            serde_json::to_string(&self.classes).unwrap(),
        );
        meta.insert("task".into(), self.task.as_str().into());
        meta.insert(
            "head".into(),
            serde_json::to_string(&HeadKindJson::from(&self.kind)).expect("plain values"),
        );
        if let Some((rows, labels)) = &self.knn {
            let d = self.mean.len();
            tensors.push((
                "knn.rows".into(),
                Tensor::from_vec(rows.clone(), (rows.len() / d, d), &dev)?,
            ));
            meta.insert("knn_labels".into(), serde_json::to_string(labels).unwrap());
            if self.task == Task::Regression {
                let c = self.classes.len();
                let flat: Vec<f32> = self.knn_values.iter().flatten().copied().collect();
                tensors.push((
                    "knn.values".into(),
                    Tensor::from_vec(flat, (self.knn_values.len(), c), &dev)?,
                ));
            }
        }
        if self.task == Task::Regression {
            let c = self.classes.len();
            tensors.push((
                "target_mean".into(),
                Tensor::from_vec(self.scaling.mean.clone(), c, &dev)?,
            ));
            tensors.push((
                "target_std".into(),
                Tensor::from_vec(self.scaling.std.clone(), c, &dev)?,
            ));
        }
        mirkit_train::ckpt::save(path, &tensors, &meta)?;
        Ok(())
    }

    /// Loads [`Head::save`]'s file (shapes and metadata checked); returns the head and
    /// the file's metadata.
    pub fn load(path: &Path) -> Result<(Self, HashMap<String, String>)> {
        let file = path.display().to_string();
        let bad = |why: String| TransferError::Head {
            file: file.clone(),
            why,
        };
        let (tensors, meta) = mirkit_train::ckpt::load(path)?;
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| bad(format!("no {k} in the metadata")))
        };
        let classes: Vec<String> =
            serde_json::from_str(get("classes")?).map_err(|e| bad(e.to_string()))?;
        let task = Task::parse(get("task")?)?;
        let hk: HeadKindJson =
            serde_json::from_str(get("head")?).map_err(|e| bad(format!("head: {e}")))?;
        let kind = match hk.kind.as_str() {
            "linear" => HeadKind::Linear,
            "mlp" => HeadKind::Mlp {
                hidden: hk.hidden.ok_or_else(|| bad("mlp without hidden".into()))?,
                dropout: hk.dropout.unwrap_or(0.0),
            },
            "knn" => HeadKind::Knn {
                k: hk.k.ok_or_else(|| bad("knn without k".into()))?,
            },
            other => return Err(bad(format!("unknown head kind {other:?}"))),
        };
        let vec1 = |k: &str| -> Result<Vec<f32>> {
            Ok(tensors
                .get(k)
                .ok_or_else(|| bad(format!("missing tensor {k}")))?
                .to_vec1()?)
        };
        let mean = vec1("mean")?;
        let std = vec1("std")?;
        if mean.len() != std.len() {
            return Err(bad("mean and std differ in length".into()));
        }
        let d = mean.len();
        let vm = VarMap::new();
        let mut knn = None;
        let mut layers = vec![];
        let c = classes.len();
        let (mut target_mean, mut target_std, mut knn_values) = (vec![], vec![], vec![]);
        if task == Task::Regression {
            target_mean = vec1("target_mean")?;
            target_std = vec1("target_std")?;
            if target_mean.len() != c || target_std.len() != c {
                return Err(bad(format!(
                    "target_mean/target_std have {}/{} values for {c} targets",
                    target_mean.len(),
                    target_std.len()
                )));
            }
            if target_std.iter().any(|s| !(*s > 0.0 && s.is_finite())) {
                return Err(bad("target_std must be finite and > 0".into()));
            }
        }
        if let HeadKind::Knn { .. } = kind {
            let rows = tensors
                .get("knn.rows")
                .ok_or_else(|| bad("missing knn.rows".into()))?;
            let labels: Vec<Vec<usize>> =
                serde_json::from_str(get("knn_labels")?).map_err(|e| bad(e.to_string()))?;
            let n = if task == Task::Regression {
                let v = tensors
                    .get("knn.values")
                    .ok_or_else(|| bad("missing knn.values".into()))?;
                if v.rank() != 2 || v.dim(1)? != c {
                    return Err(bad(format!(
                        "knn.values has shape {:?}, expected [rows, {c}]",
                        v.dims()
                    )));
                }
                knn_values = v.to_vec2()?;
                knn_values.len()
            } else {
                labels.len()
            };
            if rows.dims() != [n, d] {
                return Err(bad(format!(
                    "knn.rows has shape {:?}, expected [{n}, {d}]",
                    rows.dims(),
                )));
            }
            knn = Some((rows.flatten_all()?.to_vec1()?, labels));
        } else {
            let expected: Vec<(String, Vec<usize>)> = match &kind {
                HeadKind::Linear => vec![
                    ("out.weight".into(), vec![classes.len(), d]),
                    ("out.bias".into(), vec![classes.len()]),
                ],
                HeadKind::Mlp { hidden, .. } => vec![
                    ("hidden.weight".into(), vec![*hidden, d]),
                    ("hidden.bias".into(), vec![*hidden]),
                    ("out.weight".into(), vec![classes.len(), *hidden]),
                    ("out.bias".into(), vec![classes.len()]),
                ],
                HeadKind::Knn { .. } => unreachable!(),
            };
            {
                let mut data = vm.data().lock().unwrap();
                for (name, shape) in expected {
                    let t = tensors
                        .get(&name)
                        .ok_or_else(|| bad(format!("missing tensor {name}")))?;
                    if t.dims() != shape.as_slice() {
                        return Err(bad(format!(
                            "{name} has shape {:?}, expected {shape:?}",
                            t.dims()
                        )));
                    }
                    data.insert(name, Var::from_tensor(t)?);
                }
            }
            layers = build_layers(
                &kind,
                d,
                classes.len(),
                VarBuilder::from_varmap(&vm, DType::F32, &Device::Cpu),
            )?;
        }
        Ok((
            Self {
                kind,
                task,
                classes,
                mean,
                std,
                vm,
                layers,
                knn,
                scaling: TargetScaling {
                    mean: target_mean,
                    std: target_std,
                },
                knn_values,
            },
            meta,
        ))
    }
}

fn targets(task: Task, labels: &[Vec<usize>], c: usize, dev: &Device) -> Result<Tensor> {
    let rows: Vec<&[usize]> = labels.iter().map(|l| l.as_slice()).collect();
    Ok(mirkit_train::trainer::targets(task, &rows, c, dev)?)
}

fn loss_of(task: Task, cfg: &HeadConfig, logits: &Tensor, y: &Tensor) -> Result<Tensor> {
    if task == Task::Regression {
        return Ok(cfg.loss.apply(logits, y)?);
    }
    Ok(mirkit_train::trainer::task_loss(task, logits, y, 0.0)?)
}
