//! Embeddings of a data set from a pretrained tagger: per track, the model's windows
//! (its own protocol) embedded and averaged; either the penultimate layer or every
//! layer pooled and concatenated (Choi et al. 2017, "Transfer learning for music
//! classification and regression tasks").

use crate::error::Result;
use mirkit_models::won2020::Won2020;
use mirkit_train::audio::AudioSet;
use rayon::prelude::*;

/// Which representation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layers {
    /// The penultimate layer ([`Won2020::embed`]).
    Embedding,
    /// Every layer pooled to a vector and concatenated ([`Won2020::embed_layers`]).
    All,
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
    model: &Won2020,
    audio: &[f32],
    layers: Layers,
) -> Result<(Vec<f32>, Vec<(String, usize)>)> {
    let (windows, blocks) = match layers {
        Layers::Embedding => {
            let w = model.embed_windows(audio)?;
            let d = w.first().map(|v| v.len()).unwrap_or(0);
            (w, vec![("embedding".to_string(), d)])
        }
        Layers::All => {
            let named = model.embed_layers_windows(audio)?;
            let blocks = named
                .first()
                .map(|n| n.iter().map(|(k, v)| (k.clone(), v.len())).collect())
                .unwrap_or_default();
            let w = named
                .into_iter()
                .map(|n| n.into_iter().flat_map(|(_, v)| v).collect())
                .collect();
            (w, blocks)
        }
    };
    Ok((mirkit_models::won2020::average(&windows), blocks))
}

/// Embeds every track of `set` (which must be at the model's 16 kHz), in parallel.
pub fn extract(model: &Won2020, set: &AudioSet, layers: Layers) -> Result<Embeddings> {
    if set.sr != mirkit_models::won2020::SAMPLE_RATE {
        return Err(crate::error::invalid(
            "sample rate",
            set.sr,
            "the pretrained taggers take 16 kHz audio",
        ));
    }
    let rows: Vec<(Vec<f32>, Vec<(String, usize)>)> = set
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

/// Where a head's features come from: a pretrained tagger's layers, or the MFCC
/// statistics of the classic baseline (name `mfcc`).
pub enum Source {
    /// A tagger and which of its layers.
    Model(Box<Won2020>, Layers),
    /// [`mfcc_stats`].
    Mfcc,
}

impl Source {
    /// `mfcc`, a registry name or a Won 2020-layout `.safetensors` file.
    pub fn open(name: &str, layers: Layers) -> Result<Self> {
        if name == "mfcc" {
            return Ok(Source::Mfcc);
        }
        Ok(Source::Model(
            Box::new(mirkit_models::registry::load(name)?),
            layers,
        ))
    }
    /// The sample rate the audio must have.
    pub fn sample_rate(&self) -> u32 {
        match self {
            Source::Model(..) => mirkit_models::won2020::SAMPLE_RATE,
            Source::Mfcc => 22_050,
        }
    }
    /// One row of features per track of `set`.
    pub fn extract(&self, set: &AudioSet) -> Result<Embeddings> {
        match self {
            Source::Model(m, layers) => extract(m, set, *layers),
            Source::Mfcc => mfcc_stats(set),
        }
    }
}
