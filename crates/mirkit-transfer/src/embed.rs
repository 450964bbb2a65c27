//! Embeddings of a data set from a pretrained tagger: per track, the model's windows
//! (its own protocol) embedded and averaged; either the penultimate layer or every
//! layer pooled and concatenated (Choi et al. 2017, "Transfer learning for music
//! classification and regression tasks").

use crate::error::Result;
use mirkit_models::registry::Pretrained;
use mirkit_train::audio::AudioSet;
use rayon::prelude::*;

/// Which representation (`"embedding"`, `"all"`, `"all-max"`, `"all-mean-max"` in JSON
/// and on the command line, as `mirkit embed` index metadata and head files record it).
///
/// A track is cut into the model's windows; each window gives the penultimate layer, or
/// every layer pooled over the window's time by the model's own pooling. The track's
/// vector then pools the windows: the mean (the default, what musicnn and Won 2020 do),
/// the maximum, or both concatenated (blocks named `mean/LAYER`, then `max/LAYER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Layers {
    #[default]
    /// The penultimate layer ([`Pretrained::embed_windows`]), mean over windows.
    #[serde(rename = "embedding")]
    Embedding,
    /// Every layer pooled to a vector and concatenated ([`Pretrained::embed_layers_windows`]),
    /// mean over windows.
    #[serde(rename = "all")]
    All,
    /// Every layer, maximum over windows.
    #[serde(rename = "all-max")]
    AllMax,
    /// Every layer, mean and maximum over windows concatenated (twice [`Layers::All`]'s width).
    #[serde(rename = "all-mean-max")]
    AllMeanMax,
}

impl Layers {
    /// Every representation, in the order above.
    pub const ALL: [Layers; 4] = [Self::Embedding, Self::All, Self::AllMax, Self::AllMeanMax];

    /// Its name (`embedding`, `all`, `all-max`, `all-mean-max`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Embedding => "embedding",
            Self::All => "all",
            Self::AllMax => "all-max",
            Self::AllMeanMax => "all-mean-max",
        }
    }

    /// One track's vector from its windows' named layers (from
    /// [`Pretrained::embed_layers_windows`] for the every-layer representations, or the
    /// penultimate layer of each window named `embedding`), pooled over the windows as
    /// this representation asks, with the `(name, dims)` of its blocks.
    ///
    /// ```
    /// use mirkit_transfer::embed::Layers;
    /// let windows = vec![
    ///     vec![("conv1".to_string(), vec![1.0, 4.0]), ("dense".to_string(), vec![0.0])],
    ///     vec![("conv1".to_string(), vec![3.0, 2.0]), ("dense".to_string(), vec![-2.0])],
    /// ];
    /// assert_eq!(Layers::All.pool_windows(windows.clone()).0, [2.0, 3.0, -1.0]);
    /// assert_eq!(Layers::AllMax.pool_windows(windows.clone()).0, [3.0, 4.0, 0.0]);
    /// let (v, blocks) = Layers::AllMeanMax.pool_windows(windows);
    /// assert_eq!(v, [2.0, 3.0, -1.0, 3.0, 4.0, 0.0]);
    /// assert_eq!(blocks[2], ("max/conv1".to_string(), 2));
    /// ```
    pub fn pool_windows(
        self,
        per_window: Vec<mirkit_models::NamedFeatures>,
    ) -> mirkit_models::BlockEmbedding {
        match self {
            Self::Embedding | Self::All => mirkit_models::registry::average_layers(per_window),
            Self::AllMax => max_layers(&per_window),
            Self::AllMeanMax => {
                let (mx, mx_parts) = max_layers(&per_window);
                let (mut v, parts) = mirkit_models::registry::average_layers(per_window);
                v.extend(mx);
                let named = |p: Vec<(String, usize)>, how: &str| {
                    p.into_iter()
                        .map(move |(n, d)| (format!("{how}/{n}"), d))
                        .collect::<Vec<_>>()
                };
                let mut blocks = named(parts, "mean");
                blocks.extend(named(mx_parts, "max"));
                (v, blocks)
            }
        }
    }
}

/// The element-wise maximum over windows of per-window named layers, concatenated in
/// order (empty for no windows).
fn max_layers(per_window: &[mirkit_models::NamedFeatures]) -> mirkit_models::BlockEmbedding {
    let parts: Vec<(String, usize)> = per_window
        .first()
        .map(|w| w.iter().map(|(n, v)| (n.clone(), v.len())).collect())
        .unwrap_or_default();
    let mut out: Vec<f32> = Vec::new();
    for (k, w) in per_window.iter().enumerate() {
        let flat = w.iter().flat_map(|(_, v)| v.iter().copied());
        if k == 0 {
            out.extend(flat);
        } else {
            out.iter_mut().zip(flat).for_each(|(o, v)| *o = o.max(v));
        }
    }
    (out, parts)
}

impl std::str::FromStr for Layers {
    type Err = crate::TransferError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|l| l.as_str() == s || (s == "penultimate" && *l == Self::Embedding))
            .ok_or_else(|| {
                crate::error::invalid(
                    "layers",
                    s,
                    "one of embedding (or penultimate), all, all-max, all-mean-max",
                )
            })
    }
}

impl std::fmt::Display for Layers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A matrix of embeddings, one row per track.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// Rows (tracks).
    pub n: usize,
    /// Columns.
    pub dim: usize,
    /// Row-major values.
    pub data: Vec<f32>,
    /// `(layer name, width)` of the concatenated blocks, in order.
    pub blocks: Vec<(String, usize)>,
}

impl Embeddings {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// Embeds one track: its windows under the model's protocol, averaged.
pub fn embed_track(
    model: &Pretrained,
    audio: &[f32],
    layers: Layers,
) -> Result<mirkit_models::BlockEmbedding> {
    Ok(match layers {
        Layers::Embedding => {
            let e = model.embed(audio)?;
            let d = e.len();
            (e, vec![("embedding".to_string(), d)])
        }
        l => l.pool_windows(model.embed_layers_windows(audio)?),
    })
}

/// Embeds every track of `set` (which must be at the model's 16 kHz), in parallel.
///
/// ```
/// use mirkit_models::registry::load_pretrained;
/// use mirkit_transfer::embed::{extract, Layers};
/// use mirkit_train::{audio::AudioSet, data::{CsvOptions, Dataset}, toy::{write_toy_set, ToyOptions}};
/// // a small labelled set (four synthetic dances); ballroom8 or your own CSV work the same
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-{}-{}", std::process::id(), line!()));
/// let opts = ToyOptions { clips_per_class: 3, seconds: 4.0, sample_rate: 16000, seed: 0 };
/// let ds = Dataset::csv_manifest(write_toy_set(&dir, &opts)?, &CsvOptions::default())?;
/// let load = |s: &str| AudioSet::load(&ds.split(s).unwrap(), 16_000, None);
/// let model = load_pretrained("musicnn-mtt")?;
/// let e = extract(&model, &load("train")?, Layers::Embedding)?; // penultimate layer
/// assert_eq!((e.n, e.dim), (4, 200));
/// let all = extract(&model, &load("train")?, Layers::All)?; // every pooled layer (Choi et al. 2017)
/// assert_eq!(all.dim, all.blocks.iter().map(|b| b.1).sum::<usize>());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn extract(model: &Pretrained, set: &AudioSet, layers: Layers) -> Result<Embeddings> {
    if set.sr != model.sample_rate() {
        return Err(crate::error::invalid(
            "sample rate",
            set.sr,
            &format!("the model takes {} Hz audio", model.sample_rate()),
        ));
    }
    let rows: Vec<mirkit_models::BlockEmbedding> = set
        .audio
        .par_iter()
        .map(|a| embed_track(model, a, layers))
        .collect::<Result<_>>()?;
    let dim = rows.first().map(|r| r.0.len()).unwrap_or(0);
    let blocks = rows.first().map(|r| r.1.clone()).unwrap_or_default();
    Ok(Embeddings {
        n: rows.len(),
        dim,
        data: rows.into_iter().flat_map(|r| r.0).collect(),
        blocks,
    })
}

/// The classic baseline's features: MFCC-20 mean and standard deviation over time per
/// track (40 values), with `librosa.feature.mfcc` defaults (22.05 kHz, n_fft 2048, hop
/// 512, 128 Slaney mels, `power_to_db` with top_db 80, orthonormal DCT-II). `set` must be
/// at 22.05 kHz.
pub fn mfcc_stats(set: &AudioSet) -> Result<Embeddings> {
    use mirkit_dsp::{Compression, DbConfig, FeatureConfig, FeatureExtractor, MfccSettings};
    if set.sr != 22_050 {
        return Err(crate::error::invalid(
            "sample rate",
            set.sr,
            "MFCC statistics use librosa's 22050 Hz",
        ));
    }
    let mut cfg = FeatureConfig::librosa();
    cfg.compression = Compression::Db(DbConfig::default());
    cfg.mfcc = Some(MfccSettings {
        n_mfcc: 20,
        lifter: 0.0,
    });
    let fx = FeatureExtractor::new(cfg)?;
    let rows: Vec<Vec<f32>> = set
        .audio
        .par_iter()
        .map(|a| {
            let m = fx.compute(a)?.into_array(); // (20, frames)
            let mut v = Vec::with_capacity(40);
            let mut sd = Vec::with_capacity(20);
            for row in m.rows() {
                let n = row.len() as f64;
                let mean = row.iter().map(|x| *x as f64).sum::<f64>() / n;
                let var = row.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n;
                v.push(mean as f32);
                sd.push(var.sqrt() as f32);
            }
            v.extend(sd);
            Ok(v)
        })
        .collect::<Result<_>>()?;
    Ok(Embeddings {
        n: rows.len(),
        dim: 40,
        data: rows.into_iter().flatten().collect(),
        blocks: vec![("mfcc20_mean".into(), 20), ("mfcc20_std".into(), 20)],
    })
}

/// Where a head's features come from: a pretrained tagger's layers, the MFCC statistics
/// of the classic baseline (name `mfcc`), or several pretrained taggers' features
/// concatenated (names joined by `+`, e.g. `won2020-fcn-mtat+musicnn-msd`).
pub enum Source {
    /// A tagger and which of its layers.
    Model(Box<Pretrained>, Layers),
    /// [`mfcc_stats`].
    Mfcc,
    /// Each source's features side by side, in order (all at one sample rate).
    Concat(Vec<(String, Source)>),
}

impl Source {
    /// `mfcc`, a registry name (Won 2020 or musicnn 0.1.0), a `.safetensors` file, or
    /// several of these joined by `+`.
    pub fn open(name: &str, layers: Layers) -> Result<Self> {
        if name.contains('+') {
            let parts = name
                .split('+')
                .map(|n| Ok((n.to_string(), Source::open(n, layers)?)))
                .collect::<Result<Vec<_>>>()?;
            let sr = parts[0].1.sample_rate();
            if let Some((n, _)) = parts.iter().find(|(_, s)| s.sample_rate() != sr) {
                return Err(crate::error::invalid(
                    "source",
                    n,
                    "concatenated sources must share a sample rate (mfcc is 22.05 kHz, the taggers 16 kHz)",
                ));
            }
            return Ok(Source::Concat(parts));
        }
        if name == "mfcc" {
            return Ok(Source::Mfcc);
        }
        Ok(Source::Model(
            Box::new(mirkit_models::registry::load_pretrained(name)?),
            layers,
        ))
    }
    /// The sample rate the audio must have.
    pub fn sample_rate(&self) -> u32 {
        match self {
            Source::Model(m, _) => m.sample_rate(),
            Source::Mfcc => 22_050,
            Source::Concat(p) => p[0].1.sample_rate(),
        }
    }
    /// One row of features per track of `set`.
    pub fn extract(&self, set: &AudioSet) -> Result<Embeddings> {
        match self {
            Source::Model(m, layers) => extract(m, set, *layers),
            Source::Mfcc => mfcc_stats(set),
            Source::Concat(parts) => {
                let each = parts
                    .iter()
                    .map(|(_, s)| s.extract(set))
                    .collect::<Result<Vec<_>>>()?;
                let dim = each.iter().map(|e| e.dim).sum();
                let mut data = Vec::with_capacity(set.audio.len() * dim);
                for i in 0..set.audio.len() {
                    for e in &each {
                        data.extend_from_slice(e.row(i));
                    }
                }
                let blocks = parts
                    .iter()
                    .zip(&each)
                    .flat_map(|((n, _), e)| {
                        e.blocks.iter().map(move |(b, d)| (format!("{n}/{b}"), *d))
                    })
                    .collect();
                Ok(Embeddings {
                    n: set.audio.len(),
                    dim,
                    data,
                    blocks,
                })
            }
        }
    }
}
