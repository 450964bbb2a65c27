//! Decoded audio for a data set: every file decoded and resampled once, kept in memory
//! and optionally in an on-disk `.npy` cache, with per-epoch random chunks and fixed
//! evaluation chunks.

use crate::data::Item;
use crate::error::{io_err, Result};
use mirkit_core::rng::Rng;
use rayon::prelude::*;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The decoded (mono, resampled) audio of a list of items; unreadable files are left out
/// and listed in [`AudioSet::skipped`].
///
/// ```
/// use mirkit_train::audio::AudioSet;
/// use mirkit_train::data::{CsvOptions, Dataset};
/// use mirkit_train::toy::{write_toy_set, ToyOptions};
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-{}-{}", std::process::id(), line!()));
/// let opts = ToyOptions { clips_per_class: 3, seconds: 4.0, sample_rate: 16000, seed: 0 };
/// let manifest = write_toy_set(&dir, &opts)?; // path,label,tempo_bpm,split
/// let ds = Dataset::csv_manifest(&manifest, &CsvOptions::default())?;
/// let train = AudioSet::load(&ds.split("train")?, 16_000, None)?; // decoded in parallel
/// assert_eq!(train.len(), 4);
/// assert!(train.skipped.is_empty());
/// assert_eq!(train.audio[0].len(), 64_000); // 4 s at 16 kHz
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), mirkit_train::TrainError>(())
/// ```
#[derive(Debug, Clone)]
pub struct AudioSet {
    /// Sample rate of every clip.
    pub sr: u32,
    /// The items that decoded, in their original order.
    pub items: Vec<Item>,
    /// Their samples.
    pub audio: Vec<Arc<Vec<f32>>>,
    /// Files that could not be used, with the reason.
    pub skipped: Vec<(PathBuf, String)>,
}

fn cache_key(path: &Path, sr: u32) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    let mut h = DefaultHasher::new();
    std::fs::canonicalize(path).ok()?.hash(&mut h);
    meta.len().hash(&mut h);
    meta.modified().ok()?.hash(&mut h);
    sr.hash(&mut h);
    // bump when the decoding/resampling path changes
    "mirkit-audio-cache-v1".hash(&mut h);
    Some(format!("{:016x}.npy", h.finish()))
}

fn decode(path: &Path, sr: u32, cache: Option<&Path>) -> std::result::Result<Vec<f32>, String> {
    let key = cache.and_then(|c| cache_key(path, sr).map(|k| c.join(k)));
    if let Some(k) = &key {
        if let Ok(a) = mirkit_core::npy::read(k) {
            let v = a.to_f32().into_raw_vec_and_offset().0;
            if !v.is_empty() {
                return Ok(v);
            }
        }
    }
    let opts = mirkit_io::LoadOptions {
        quality: mirkit_io::ResampleQuality::Fast,
        ..mirkit_io::LoadOptions::at(sr)
    };
    let buf = mirkit_io::load(path, &opts).map_err(|e| e.to_string())?;
    let y = buf.samples().to_vec();
    if y.is_empty() {
        return Err("no samples".into());
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(format!("non-finite sample at {i}"));
    }
    if let Some(k) = &key {
        // a failed cache write only costs a later re-decode
        let _ = mirkit_core::npy::write_f32(k, &[y.len()], &y);
    }
    Ok(y)
}

impl AudioSet {
    /// Decodes `items` at `sr` Hz in parallel (rubato's fast resampler, the one the
    /// pretrained-tagging path uses). With `cache_dir`, decoded audio is stored there as
    /// `.npy` keyed by path, size, modification time and rate, so later runs skip decoding.
    pub fn load(items: &[Item], sr: u32, cache_dir: Option<&Path>) -> Result<Self> {
        if let Some(c) = cache_dir {
            std::fs::create_dir_all(c).map_err(|e| io_err(c, e))?;
        }
        let res: Vec<std::result::Result<Vec<f32>, String>> = items
            .par_iter()
            .map(|it| decode(&it.path, sr, cache_dir))
            .collect();
        let mut out = Self {
            sr,
            items: Vec::new(),
            audio: Vec::new(),
            skipped: Vec::new(),
        };
        for (it, r) in items.iter().zip(res) {
            match r {
                Ok(y) => {
                    out.items.push(it.clone());
                    out.audio.push(Arc::new(y));
                }
                Err(e) => out.skipped.push((it.path.clone(), e)),
            }
        }
        Ok(out)
    }

    /// A set from audio already in memory (one clip per item, all at `sr`).
    pub fn from_memory(items: Vec<Item>, audio: Vec<Vec<f32>>, sr: u32) -> Result<Self> {
        if items.len() != audio.len() {
            return Err(crate::TrainError::Mismatch {
                what: "items vs clips".into(),
                got: audio.len(),
                expected: items.len(),
            });
        }
        if let Some(i) = audio
            .iter()
            .position(|a| a.is_empty() || a.iter().any(|v| !v.is_finite()))
        {
            return Err(crate::error::invalid("clip", i, "empty or non-finite"));
        }
        Ok(Self {
            sr,
            items,
            audio: audio.into_iter().map(Arc::new).collect(),
            skipped: vec![],
        })
    }

    /// Number of usable clips.
    pub fn len(&self) -> usize {
        self.items.len()
    }
    /// Whether no clip decoded.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// One random chunk of `len` samples from clip `i` (zero-padded if the clip is
    /// shorter), its start drawn from `rng`.
    pub fn random_chunk(&self, i: usize, len: usize, rng: &mut Rng) -> Vec<f32> {
        let y = &self.audio[i];
        if y.len() <= len {
            let mut v = y.to_vec();
            v.resize(len, 0.0);
            return v;
        }
        let start = rng.below((y.len() - len + 1) as u64) as usize;
        y[start..start + len].to_vec()
    }

    /// `n` evenly spaced chunks of `len` samples from clip `i` (Won et al. 2020's
    /// evaluation: `hop = (length − len) / n`, chunk `k` starts at `k·hop`); a clip
    /// shorter than `len` gives one zero-padded chunk.
    pub fn eval_chunks(&self, i: usize, len: usize, n: usize) -> Vec<Vec<f32>> {
        let y = &self.audio[i];
        if y.len() <= len {
            let mut v = y.to_vec();
            v.resize(len, 0.0);
            return vec![v];
        }
        let hop = (y.len() - len) / n.max(1);
        (0..n.max(1))
            .map(|k| y[k * hop..k * hop + len].to_vec())
            .collect()
    }
}
