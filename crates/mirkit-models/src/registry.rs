//! Named pretrained models, compiled into the library so they need no download and no
//! files on disk:
//! * musicnn 0.1.0 (Pons & Serra 2019; ISC licence, see the `LICENSE` of the
//!   mirkit-weights-musicnn and mirkit-weights-vgg crates):
//!   `musicnn-mtt` (the default), `musicnn-msd`, `vgg-mtt`, `vgg-msd`, converted from the
//!   PyPI wheel's TensorFlow checkpoints by `tools/convert_musicnn.py`;
//! * Won et al. 2020 (MagnaTagATune, Million Song Dataset, MTG-Jamendo; MIT licence, Music
//!   Technology Group, Universitat Pompeu Fabra — see the `LICENSE` of the
//!   mirkit-weights-won2020-* crates), converted
//!   by `tools/convert_won2020.py`.
//!
//! [`load_pretrained`] gives any of them as a [`Pretrained`]; [`load`] gives the Won 2020
//! ones (and fine-tuned files of their layout) as a trainable-layout [`Won2020`].

use crate::error::{ModelError, Result};
use crate::musicnn::Musicnn;
use crate::scores::average;
use crate::windows::{Embedding, Layers, Scores, WindowOutput, WindowStream};
use crate::won2020::{Arch, Won2020};

/// Which implementation a registry model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// A Won et al. 2020 PyTorch model of this architecture ([`Won2020`]).
    Won2020(Arch),
    /// A musicnn 0.1.0 TensorFlow model, musicnn or VGG ([`Musicnn`]).
    Musicnn,
}

/// A registry entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Registry name.
    pub name: &'static str,
    /// Implementation and architecture.
    pub family: Family,
    /// What the model is.
    pub description: &'static str,
    /// The safetensors bytes; `None` when mirkit-models is built without its `pretrained`
    /// feature.
    pub bytes: Option<&'static [u8]>,
}

impl Entry {
    /// The compiled-in safetensors bytes, or an error naming the model when mirkit-models
    /// was built without its `pretrained` feature.
    pub fn weights(&self) -> Result<&'static [u8]> {
        self.bytes.ok_or_else(|| ModelError::Weights {
            file: self.name.to_string(),
            why:
                "mirkit-models was built without its `pretrained` feature (the compiled-in weights)"
                    .into(),
        })
    }
}

#[cfg(feature = "pretrained")]
macro_rules! weights {
    ($($path:tt)*) => {
        Some($($path)*)
    };
}
#[cfg(not(feature = "pretrained"))]
macro_rules! weights {
    ($($path:tt)*) => {
        None
    };
}

/// Every registry model (compiled in with the `pretrained` feature, the default).
pub const MODELS: &[Entry] = &[
    Entry {
        name: "musicnn-mtt",
        family: Family::Musicnn,
        description: "musicnn 0.1.0 (Pons et al.), MagnaTagATune top-50, 3 s patches (ROC-AUC .9067, PR-AUC .3831, the wheel's experiment.result)",
        bytes: weights!(mirkit_weights_musicnn::MUSICNN_MTT),
    },
    Entry {
        name: "musicnn-msd",
        family: Family::Musicnn,
        description: "musicnn 0.1.0 (Pons et al.), Million Song Dataset top-50, 3 s patches (ROC-AUC .8802, PR-AUC .2891)",
        bytes: weights!(mirkit_weights_musicnn::MUSICNN_MSD),
    },
    Entry {
        name: "vgg-mtt",
        family: Family::Musicnn,
        description: "musicnn 0.1.0 VGG baseline, MagnaTagATune top-50, 3 s patches (ROC-AUC .9030, PR-AUC .3823)",
        bytes: weights!(mirkit_weights_vgg::VGG_MTT),
    },
    Entry {
        name: "vgg-msd",
        family: Family::Musicnn,
        description: "musicnn 0.1.0 VGG baseline, Million Song Dataset top-50, 3 s patches (ROC-AUC .8768, PR-AUC .2819)",
        bytes: weights!(mirkit_weights_vgg::VGG_MSD),
    },
    Entry {
        name: "won2020-fcn-mtat",
        family: Family::Won2020(Arch::Fcn),
        description: "Won et al. 2020 FCN-5, MagnaTagATune top-50, 29 s windows (ROC-AUC .9005, PR-AUC .4295)",
        bytes: weights!(mirkit_weights_won2020_mtat::FCN),
    },
    Entry {
        name: "won2020-musicnn-mtat",
        family: Family::Won2020(Arch::Musicnn),
        description: "Won et al. 2020 Musicnn, MagnaTagATune top-50, 3 s windows (ROC-AUC .9106, PR-AUC .4493)",
        bytes: weights!(mirkit_weights_won2020_mtat::MUSICNN),
    },
    Entry {
        name: "won2020-crnn-mtat",
        family: Family::Won2020(Arch::Crnn),
        description: "Won et al. 2020 CRNN, MagnaTagATune top-50, 29 s windows (ROC-AUC .8722, PR-AUC .3625)",
        bytes: weights!(mirkit_weights_won2020_mtat::CRNN),
    },
    Entry {
        name: "won2020-fcn-msd",
        family: Family::Won2020(Arch::Fcn),
        description: "Won et al. 2020 FCN-5, Million Song Dataset top-50, 29 s windows (ROC-AUC .8744, PR-AUC .2970)",
        bytes: weights!(mirkit_weights_won2020_msd::FCN),
    },
    Entry {
        name: "won2020-crnn-msd",
        family: Family::Won2020(Arch::Crnn),
        description: "Won et al. 2020 CRNN, Million Song Dataset top-50, 29 s windows (ROC-AUC .8499, PR-AUC .2469)",
        bytes: weights!(mirkit_weights_won2020_msd::CRNN),
    },
    Entry {
        name: "won2020-fcn-jamendo",
        family: Family::Won2020(Arch::Fcn),
        description: "Won et al. 2020 FCN-5, MTG-Jamendo top-50, 29 s windows",
        bytes: weights!(mirkit_weights_won2020_jamendo::FCN),
    },
    Entry {
        name: "won2020-crnn-jamendo",
        family: Family::Won2020(Arch::Crnn),
        description: "Won et al. 2020 CRNN, MTG-Jamendo top-50, 29 s windows",
        bytes: weights!(mirkit_weights_won2020_jamendo::CRNN),
    },
    Entry {
        name: "won2020-musicnn-jamendo",
        family: Family::Won2020(Arch::Musicnn),
        description: "Won et al. 2020 Musicnn, MTG-Jamendo top-50, 3 s windows",
        bytes: weights!(mirkit_weights_won2020_jamendo::MUSICNN),
    },
];

/// The default tagger: musicnn 0.1.0's MagnaTagATune model.
pub const DEFAULT_MODEL: &str = "musicnn-mtt";

/// A loaded pretrained model of either family. Every whole-signal method runs the
/// family's own windowing protocol through the one driver of [`crate::windows`] and means
/// the same for both families: `*_windows` return one result per window, the others the
/// mean over the windows. Input is mono audio at [`Pretrained::sample_rate`].
///
/// ```
/// use mirkit_models::registry::load_pretrained;
/// let model = load_pretrained("won2020-fcn-mtat")?; // weights compiled in
/// assert_eq!((model.sample_rate(), model.tags().len()), (16000, 50));
/// // 4 s of a 440 Hz tone at the model's rate: scores per window, and their mean
/// let sr = model.sample_rate() as f32;
/// let y: Vec<f32> = (0..4 * 16000).map(|i| 0.3 * (6.2832 * 440.0 * i as f32 / sr).sin()).collect();
/// let scores = model.tag(&y)?;
/// assert_eq!(scores.len(), 50);
/// assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
/// # Ok::<(), mirkit_models::ModelError>(())
/// ```
pub enum Pretrained {
    /// A Won et al. 2020 model.
    Won2020(Won2020),
    /// A musicnn 0.1.0 model.
    Musicnn(Musicnn),
}

impl Pretrained {
    /// Tag names in output order.
    pub fn tags(&self) -> &[String] {
        match self {
            Pretrained::Won2020(m) => m.tags(),
            Pretrained::Musicnn(m) => m.tags(),
        }
    }
    /// The sample rate the model takes (16 kHz for every registry model).
    pub fn sample_rate(&self) -> u32 {
        match self {
            Pretrained::Won2020(_) => crate::won2020::SAMPLE_RATE,
            Pretrained::Musicnn(_) => crate::musicnn::SAMPLE_RATE,
        }
    }
    /// Seconds between the starts of successive windows (patches).
    pub fn window_secs(&self) -> f64 {
        let sr = self.sample_rate() as f64;
        match self {
            Pretrained::Won2020(m) => m.input_len() as f64 / sr,
            Pretrained::Musicnn(_) => {
                (crate::musicnn::PATCH_FRAMES * crate::musicnn::HOP) as f64 / sr
            }
        }
    }
    /// A streaming windowing run computing `K` per window ([`crate::windows`]).
    pub fn stream<K: WindowOutput>(&self) -> WindowStream<'_, K> {
        WindowStream::new(self)
    }
    fn all_windows<K: WindowOutput>(&self, audio: &[f32]) -> Result<Vec<K::Item>> {
        let mut s = self.stream::<K>();
        s.push(audio)?;
        s.finish()
    }
    /// Sigmoid scores of each window.
    pub fn tag_windows(&self, audio: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.all_windows::<Scores>(audio)
    }
    /// Sigmoid scores averaged over the windows.
    pub fn tag(&self, audio: &[f32]) -> Result<Vec<f32>> {
        Ok(average(&self.tag_windows(audio)?))
    }
    /// The penultimate-layer embedding of each window.
    pub fn embed_windows(&self, audio: &[f32]) -> Result<Vec<Vec<f32>>> {
        self.all_windows::<Embedding>(audio)
    }
    /// The penultimate-layer embedding averaged over the windows.
    pub fn embed(&self, audio: &[f32]) -> Result<Vec<f32>> {
        Ok(average(&self.embed_windows(audio)?))
    }
    /// Every layer pooled to a vector, per window.
    pub fn embed_layers_windows(&self, audio: &[f32]) -> Result<Vec<crate::NamedFeatures>> {
        self.all_windows::<Layers>(audio)
    }
    /// Every layer pooled and concatenated (Choi et al. 2017), averaged over the windows,
    /// with the `(name, dims)` of its parts.
    pub fn embed_layers(&self, audio: &[f32]) -> Result<crate::BlockEmbedding> {
        Ok(average_layers(self.embed_layers_windows(audio)?))
    }
}

/// The mean over windows of per-window named layers, concatenated in order, and the
/// `(name, dims)` of the parts.
pub fn average_layers(per_window: Vec<crate::NamedFeatures>) -> crate::BlockEmbedding {
    let parts = per_window
        .first()
        .map(|w| w.iter().map(|(n, v)| (n.clone(), v.len())).collect())
        .unwrap_or_default();
    let flat: Vec<Vec<f32>> = per_window
        .into_iter()
        .map(|l| l.into_iter().flat_map(|(_, v)| v).collect())
        .collect();
    (average(&flat), parts)
}

fn unknown(name: &str) -> ModelError {
    ModelError::Weights {
        file: name.to_string(),
        why: format!(
            "unknown model; known: {}",
            MODELS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// musicnn 0.1.0's own model names (`musicnn.extractor(model=...)`) and the registry
/// names they stand for, so commands written for musicnn keep working.
pub const MUSICNN_ALIASES: &[(&str, &str)] = &[
    ("MTT_musicnn", "musicnn-mtt"),
    ("MSD_musicnn", "musicnn-msd"),
    ("MTT_vgg", "vgg-mtt"),
    ("MSD_vgg", "vgg-msd"),
];

/// The registry name `name` stands for: itself, or the registry name of a musicnn alias
/// ([`MUSICNN_ALIASES`]).
pub fn canonical_name(name: &str) -> &str {
    MUSICNN_ALIASES
        .iter()
        .find(|(alias, _)| *alias == name)
        .map_or(name, |(_, real)| real)
}

/// Loads any registry model by name (or musicnn 0.1.0's name for it, e.g. `MTT_musicnn`),
/// or a `.safetensors` file of either family (told apart by its metadata and tensor
/// names).
///
/// ```
/// use mirkit_models::registry::load_pretrained;
/// let m = load_pretrained("MTT_musicnn")?; // musicnn's own name for musicnn-mtt
/// assert_eq!(m.tags()[0], "guitar");
/// // an unknown name is a typed error that lists the known ones
/// let e = load_pretrained("no-such-model").err().unwrap().to_string();
/// assert!(e.contains("musicnn-mtt"), "{e}");
/// # Ok::<(), mirkit_models::ModelError>(())
/// ```
pub fn load_pretrained(name: &str) -> Result<Pretrained> {
    if name.ends_with(".safetensors") {
        let path = std::path::Path::new(name);
        if crate::musicnn::Musicnn::is_musicnn_file(path)? {
            return Ok(Pretrained::Musicnn(Musicnn::load(path)?));
        }
        let h = crate::weights::Header::read(path)?;
        // the mark mirkit-train's TargetScaling writes (mirkit-models is below it)
        if h.metadata().get("task").map(String::as_str) == Some("regression") {
            // written by `mirkit finetune --task regression --head network`: its outputs
            // are standardised values, which a tagger's sigmoid would turn into nonsense
            return Err(ModelError::Input(format!(
                "{name} is a regression network (outputs: {}): it predicts values, not tag \
                 scores; use `mirkit predict --model {name} FILES` or `mirkit eval`",
                h.metadata().get("tags").map(String::as_str).unwrap_or("?")
            )));
        }
        return Ok(Pretrained::Won2020(Won2020::load_any(path)?));
    }
    let real = canonical_name(name);
    let e = MODELS
        .iter()
        .find(|e| e.name == real)
        .ok_or_else(|| unknown(name))?;
    let bytes = e.weights()?;
    Ok(match e.family {
        Family::Won2020(arch) => Pretrained::Won2020(Won2020::from_bytes(arch, bytes, e.name)?),
        Family::Musicnn => Pretrained::Musicnn(Musicnn::from_bytes(bytes, e.name)?),
    })
}

/// Loads a Won 2020 registry model by name, or a Won 2020-layout safetensors file (e.g.
/// one written by fine-tuning) when `name` ends in `.safetensors`. The musicnn 0.1.0
/// models are an error here (use [`load_pretrained`]).
pub fn load(name: &str) -> Result<Won2020> {
    match load_pretrained(name)? {
        Pretrained::Won2020(m) => Ok(m),
        Pretrained::Musicnn(_) => Err(ModelError::Weights {
            file: name.to_string(),
            why: "a musicnn 0.1.0 (TensorFlow) model; this needs a Won 2020 model".into(),
        }),
    }
}
