//! Named pretrained models, compiled into the library so they need no download and no
//! files on disk:
//! * musicnn 0.1.0 (Pons & Serra 2019; ISC licence, see `weights/musicnn/LICENSE`):
//!   `musicnn-mtt` (the default), `musicnn-msd`, `vgg-mtt`, `vgg-msd`, converted from the
//!   PyPI wheel's TensorFlow checkpoints by `tools/convert_musicnn.py`;
//! * Won et al. 2020 (MagnaTagATune, Million Song Dataset, MTG-Jamendo; MIT licence, Music
//!   Technology Group, Universitat Pompeu Fabra — see `weights/won2020/LICENSE`), converted
//!   by `tools/convert_won2020.py`.
//!
//! [`load_pretrained`] gives any of them as a [`Pretrained`]; [`load`] gives the Won 2020
//! ones (and fine-tuned files of their layout) as a trainable-layout [`Won2020`].

use crate::error::{ModelError, Result};
use crate::musicnn::Musicnn;
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
    /// The safetensors bytes.
    pub bytes: &'static [u8],
}

/// Every compiled-in model.
pub const MODELS: &[Entry] = &[
    Entry {
        name: "musicnn-mtt",
        family: Family::Musicnn,
        description: "musicnn 0.1.0 (Pons et al.), MagnaTagATune top-50, 3 s patches (ROC-AUC .9067, PR-AUC .3831, the wheel's experiment.result)",
        bytes: include_bytes!("../../../weights/musicnn/musicnn-mtt.safetensors"),
    },
    Entry {
        name: "musicnn-msd",
        family: Family::Musicnn,
        description: "musicnn 0.1.0 (Pons et al.), Million Song Dataset top-50, 3 s patches (ROC-AUC .8802, PR-AUC .2891)",
        bytes: include_bytes!("../../../weights/musicnn/musicnn-msd.safetensors"),
    },
    Entry {
        name: "vgg-mtt",
        family: Family::Musicnn,
        description: "musicnn 0.1.0 VGG baseline, MagnaTagATune top-50, 3 s patches (ROC-AUC .9030, PR-AUC .3823)",
        bytes: include_bytes!("../../../weights/musicnn/vgg-mtt.safetensors"),
    },
    Entry {
        name: "vgg-msd",
        family: Family::Musicnn,
        description: "musicnn 0.1.0 VGG baseline, Million Song Dataset top-50, 3 s patches (ROC-AUC .8768, PR-AUC .2819)",
        bytes: include_bytes!("../../../weights/musicnn/vgg-msd.safetensors"),
    },
    Entry {
        name: "won2020-fcn-mtat",
        family: Family::Won2020(Arch::Fcn),
        description: "Won et al. 2020 FCN-5, MagnaTagATune top-50, 29 s windows (ROC-AUC .9005, PR-AUC .4295)",
        bytes: include_bytes!("../../../weights/won2020/mtat/fcn.safetensors"),
    },
    Entry {
        name: "won2020-musicnn-mtat",
        family: Family::Won2020(Arch::Musicnn),
        description: "Won et al. 2020 Musicnn, MagnaTagATune top-50, 3 s windows (ROC-AUC .9106, PR-AUC .4493)",
        bytes: include_bytes!("../../../weights/won2020/mtat/musicnn.safetensors"),
    },
    Entry {
        name: "won2020-crnn-mtat",
        family: Family::Won2020(Arch::Crnn),
        description: "Won et al. 2020 CRNN, MagnaTagATune top-50, 29 s windows (ROC-AUC .8722, PR-AUC .3625)",
        bytes: include_bytes!("../../../weights/won2020/mtat/crnn.safetensors"),
    },
    Entry {
        name: "won2020-fcn-msd",
        family: Family::Won2020(Arch::Fcn),
        description: "Won et al. 2020 FCN-5, Million Song Dataset top-50, 29 s windows (ROC-AUC .8744, PR-AUC .2970)",
        bytes: include_bytes!("../../../weights/won2020/msd/fcn.safetensors"),
    },
    Entry {
        name: "won2020-crnn-msd",
        family: Family::Won2020(Arch::Crnn),
        description: "Won et al. 2020 CRNN, Million Song Dataset top-50, 29 s windows (ROC-AUC .8499, PR-AUC .2469)",
        bytes: include_bytes!("../../../weights/won2020/msd/crnn.safetensors"),
    },
    Entry {
        name: "won2020-fcn-jamendo",
        family: Family::Won2020(Arch::Fcn),
        description: "Won et al. 2020 FCN-5, MTG-Jamendo top-50, 29 s windows",
        bytes: include_bytes!("../../../weights/won2020/jamendo/fcn.safetensors"),
    },
    Entry {
        name: "won2020-crnn-jamendo",
        family: Family::Won2020(Arch::Crnn),
        description: "Won et al. 2020 CRNN, MTG-Jamendo top-50, 29 s windows",
        bytes: include_bytes!("../../../weights/won2020/jamendo/crnn.safetensors"),
    },
    Entry {
        name: "won2020-musicnn-jamendo",
        family: Family::Won2020(Arch::Musicnn),
        description: "Won et al. 2020 Musicnn, MTG-Jamendo top-50, 3 s windows",
        bytes: include_bytes!("../../../weights/won2020/jamendo/musicnn.safetensors"),
    },
];

/// The default tagger: musicnn 0.1.0's MagnaTagATune model.
pub const DEFAULT_MODEL: &str = "musicnn-mtt";

/// A loaded pretrained model of either family.
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
    /// The embedding of each window (Won 2020) or patch (musicnn) of 16 kHz mono audio.
    pub fn embed_windows(&self, audio: &[f32]) -> Result<Vec<Vec<f32>>> {
        match self {
            Pretrained::Won2020(m) => m.embed_windows(audio),
            Pretrained::Musicnn(m) => m.embed_windows(audio),
        }
    }
    /// Every layer pooled to a vector, per window or patch of 16 kHz mono audio.
    pub fn embed_layers_windows(&self, audio: &[f32]) -> Result<Vec<crate::NamedFeatures>> {
        match self {
            Pretrained::Won2020(m) => m.embed_layers_windows(audio),
            Pretrained::Musicnn(m) => m.embed_layers_windows(audio),
        }
    }
    /// Sigmoid scores of 16 kHz mono audio, by the model's own protocol (windows or
    /// patches, averaged).
    pub fn tag(&self, audio: &[f32]) -> Result<Vec<f32>> {
        match self {
            Pretrained::Won2020(m) => m.tag(audio),
            Pretrained::Musicnn(m) => m.tag(audio),
        }
    }
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

/// Loads any registry model by name, or a `.safetensors` file of either family (told
/// apart by its metadata and tensor names).
pub fn load_pretrained(name: &str) -> Result<Pretrained> {
    if name.ends_with(".safetensors") {
        let path = std::path::Path::new(name);
        if crate::musicnn::Musicnn::is_musicnn_file(path)? {
            return Ok(Pretrained::Musicnn(Musicnn::load(path)?));
        }
        return Ok(Pretrained::Won2020(Won2020::load_any(path)?));
    }
    let e = MODELS
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| unknown(name))?;
    Ok(match e.family {
        Family::Won2020(arch) => Pretrained::Won2020(Won2020::from_bytes(arch, e.bytes, e.name)?),
        Family::Musicnn => Pretrained::Musicnn(Musicnn::from_bytes(e.bytes, e.name)?),
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
