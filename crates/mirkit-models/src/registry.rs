//! Named pretrained models. The Won et al. 2020 taggers (MagnaTagATune, Million Song
//! Dataset, MTG-Jamendo) are compiled into
//! the library (converted by `tools/convert_won2020.py`; MIT licence, Music Technology
//! Group, Universitat Pompeu Fabra — see `weights/won2020/LICENSE`), so they need no
//! download and no files on disk.

use crate::error::{ModelError, Result};
use crate::won2020::{Arch, Won2020};

/// A registry entry.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    /// Registry name.
    pub name: &'static str,
    /// Architecture.
    pub arch: Arch,
    /// What the model is.
    pub description: &'static str,
    /// The safetensors bytes.
    pub bytes: &'static [u8],
}

/// Every compiled-in model.
pub const MODELS: &[Entry] = &[
    Entry {
        name: "won2020-fcn-mtat",
        arch: Arch::Fcn,
        description: "Won et al. 2020 FCN-5, MagnaTagATune top-50, 29 s windows (ROC-AUC .9005, PR-AUC .4295)",
        bytes: include_bytes!("../../../weights/won2020/mtat/fcn.safetensors"),
    },
    Entry {
        name: "won2020-musicnn-mtat",
        arch: Arch::Musicnn,
        description: "Won et al. 2020 Musicnn, MagnaTagATune top-50, 3 s windows (ROC-AUC .9106, PR-AUC .4493)",
        bytes: include_bytes!("../../../weights/won2020/mtat/musicnn.safetensors"),
    },
    Entry {
        name: "won2020-crnn-mtat",
        arch: Arch::Crnn,
        description: "Won et al. 2020 CRNN, MagnaTagATune top-50, 29 s windows (ROC-AUC .8722, PR-AUC .3625)",
        bytes: include_bytes!("../../../weights/won2020/mtat/crnn.safetensors"),
    },
    Entry {
        name: "won2020-fcn-msd",
        arch: Arch::Fcn,
        description: "Won et al. 2020 FCN-5, Million Song Dataset top-50, 29 s windows (ROC-AUC .8744, PR-AUC .2970)",
        bytes: include_bytes!("../../../weights/won2020/msd/fcn.safetensors"),
    },
    Entry {
        name: "won2020-crnn-msd",
        arch: Arch::Crnn,
        description: "Won et al. 2020 CRNN, Million Song Dataset top-50, 29 s windows (ROC-AUC .8499, PR-AUC .2469)",
        bytes: include_bytes!("../../../weights/won2020/msd/crnn.safetensors"),
    },
    Entry {
        name: "won2020-fcn-jamendo",
        arch: Arch::Fcn,
        description: "Won et al. 2020 FCN-5, MTG-Jamendo top-50, 29 s windows",
        bytes: include_bytes!("../../../weights/won2020/jamendo/fcn.safetensors"),
    },
    Entry {
        name: "won2020-crnn-jamendo",
        arch: Arch::Crnn,
        description: "Won et al. 2020 CRNN, MTG-Jamendo top-50, 29 s windows",
        bytes: include_bytes!("../../../weights/won2020/jamendo/crnn.safetensors"),
    },
    Entry {
        name: "won2020-musicnn-jamendo",
        arch: Arch::Musicnn,
        description: "Won et al. 2020 Musicnn, MTG-Jamendo top-50, 3 s windows",
        bytes: include_bytes!("../../../weights/won2020/jamendo/musicnn.safetensors"),
    },
];

/// The default tagger until musicnn 0.1.0's `musicnn-mtt` is converted.
pub const DEFAULT_MODEL: &str = "won2020-musicnn-mtat";

/// Loads a registry model by name, or a Won 2020-layout safetensors file (e.g. one
/// written by fine-tuning) when `name` ends in `.safetensors`.
pub fn load(name: &str) -> Result<Won2020> {
    if name.ends_with(".safetensors") {
        return Won2020::load_any(name);
    }
    let e = MODELS
        .iter()
        .find(|e| e.name == name)
        .ok_or_else(|| ModelError::Weights {
            file: name.to_string(),
            why: format!(
                "unknown model; known: {}",
                MODELS.iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
            ),
        })?;
    Won2020::from_bytes(e.arch, e.bytes, e.name)
}

/// The architecture and safetensors bytes of a registry model.
pub fn entry(name: &str) -> Option<(Arch, &'static [u8])> {
    MODELS
        .iter()
        .find(|e| e.name == name)
        .map(|e| (e.arch, e.bytes))
}
