//! Tagging and embedding of whole files with a pretrained model, streamed: memory is one
//! window plus a decoded block, whatever the file length.
//!
//! ```no_run
//! let result = mirkit::Tagger::default()?.tag_file("song.mp3".as_ref())?;
//! for (tag, score) in result.top_k(5) {
//!     println!("{tag:>12} {score:.3}");
//! }
//! # Ok::<(), mirkit::Error>(())
//! ```

use crate::{Error, Result};
use candle_core::{Device, Tensor};
use mirkit_io::{AudioStream, LoadOptions};
use mirkit_models::musicnn::{Musicnn, HOP, N_MELS, PATCH_FRAMES};
use mirkit_models::registry::{self, Pretrained};
use mirkit_models::won2020::{average, Won2020, SAMPLE_RATE};
use std::path::Path;

/// Windows per forward pass when tagging a file.
pub const BATCH: usize = 4;

/// Scores of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    /// Start of the window, seconds.
    pub start_secs: f64,
    /// Sigmoid score per tag.
    pub scores: Vec<f32>,
}

/// What [`Tagger::tag_file`] returns.
#[derive(Debug, Clone, PartialEq)]
pub struct TagResult {
    /// Registry name of the model.
    pub model: String,
    /// Tag names in score order.
    pub tags: Vec<String>,
    /// Scores averaged over the windows.
    pub scores: Vec<f32>,
    /// Per-window scores.
    pub segments: Vec<Segment>,
}

impl TagResult {
    /// The `k` best tags, best first.
    pub fn top_k(&self, k: usize) -> Vec<(&str, f32)> {
        mirkit_models::won2020::top_k(&self.tags, &self.scores, k)
    }
}

/// A pretrained tagger.
pub struct Tagger {
    model: Pretrained,
    name: String,
}

impl Tagger {
    /// The default model ([`registry::DEFAULT_MODEL`], musicnn 0.1.0's `musicnn-mtt`),
    /// compiled into the library.
    #[allow(clippy::should_implement_trait)]
    pub fn default() -> Result<Self> {
        Self::new(registry::DEFAULT_MODEL)
    }
    /// A registry model by name, or a `.safetensors` file of either family.
    pub fn new(name: &str) -> Result<Self> {
        let model = registry::load_pretrained(name).map_err(|e| Error::Other(e.to_string()))?;
        Ok(Self {
            model,
            name: name.to_string(),
        })
    }
    /// The underlying model.
    pub fn model(&self) -> &Pretrained {
        &self.model
    }
    /// Registry name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Tag names in score order.
    pub fn tags(&self) -> &[String] {
        self.model.tags()
    }
    /// Seconds between the starts of successive windows (patches).
    pub fn window_secs(&self) -> f64 {
        match &self.model {
            Pretrained::Won2020(m) => m.input_len() as f64 / SAMPLE_RATE as f64,
            Pretrained::Musicnn(_) => (PATCH_FRAMES * HOP) as f64 / SAMPLE_RATE as f64,
        }
    }

    /// Runs the model's own protocol over a file, streaming the audio, and returns one
    /// result per window:
    /// * Won 2020: 16 kHz mono, non-overlapping windows of the input length, trailing
    ///   remainder dropped, a file shorter than one window zero-padded; `won` per window.
    /// * musicnn 0.1.0: the log-mel of the whole signal (computed frame by frame), cut
    ///   into non-overlapping 187-frame patches, remainder dropped, a file shorter than one
    ///   patch repeat-padded; `mus` per patch `(1, 187, 96)`.
    fn per_window<T: Send>(
        &self,
        path: &Path,
        won: impl Fn(&Won2020, &[f32]) -> mirkit_models::Result<T>,
        mus: impl Fn(&Musicnn, &Tensor) -> mirkit_models::Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let named = |e: mirkit_models::ModelError| Error::Other(format!("{}: {e}", path.display()));
        // The FFT resampler is the closest to the soxr HQ the models' references were fed
        // (83.5 dB SNR at 16 kHz; see tests/won2020.rs in mirkit-models).
        let opts = LoadOptions {
            quality: mirkit_io::ResampleQuality::Fast,
            ..LoadOptions::at(SAMPLE_RATE)
        };
        let stream = AudioStream::open(path, &opts)?;
        let mut out = Vec::new();
        match &self.model {
            Pretrained::Won2020(m) => {
                let n = m.input_len();
                let mut buf: Vec<f32> = Vec::with_capacity(2 * n);
                for block in stream {
                    buf.extend_from_slice(&block?);
                    // one window at a time (two in parallel measured slower here: 1.6–1.8 s
                    // against 1.2–1.6 s for a 2-minute file with won2020-musicnn-mtat)
                    while buf.len() >= n {
                        out.push(won(m, &buf[..n]).map_err(named)?);
                        buf.drain(..n);
                    }
                }
                if out.is_empty() {
                    if buf.is_empty() {
                        return Err(Error::Other(format!("{}: no audio", path.display())));
                    }
                    buf.resize(n, 0.0);
                    out.push(won(m, &buf).map_err(named)?);
                }
            }
            Pretrained::Musicnn(m) => {
                let mut fs = m.front_end().streamer();
                let mut frames: Vec<f32> = Vec::with_capacity(2 * PATCH_FRAMES * N_MELS);
                let mut total = 0usize;
                let patch_len = PATCH_FRAMES * N_MELS;
                let patch = |f: &[f32]| {
                    Tensor::from_slice(f, (1, PATCH_FRAMES, N_MELS), &Device::Cpu)
                        .map_err(|e| Error::Other(e.to_string()))
                };
                let run = |frames: &mut Vec<f32>, out: &mut Vec<T>, last: bool| -> Result<()> {
                    // two patches at a time, one per core
                    while frames.len() >= 2 * patch_len {
                        let (a, b) = (
                            patch(&frames[..patch_len])?,
                            patch(&frames[patch_len..2 * patch_len])?,
                        );
                        let (ra, rb) = rayon::join(|| mus(m, &a), || mus(m, &b));
                        out.push(ra.map_err(named)?);
                        out.push(rb.map_err(named)?);
                        frames.drain(..2 * patch_len);
                    }
                    while last && frames.len() >= patch_len {
                        out.push(mus(m, &patch(&frames[..patch_len])?).map_err(named)?);
                        frames.drain(..patch_len);
                    }
                    Ok(())
                };
                let dsp = |e: mirkit_dsp::DspError| Error::Dsp {
                    path: path.display().to_string(),
                    source: e,
                };
                for block in stream {
                    fs.push(&block?, &mut |f: &[f32]| {
                        frames.extend_from_slice(f);
                        total += 1;
                    })
                    .map_err(dsp)?;
                    run(&mut frames, &mut out, false)?;
                }
                fs.finish(&mut |f: &[f32]| {
                    frames.extend_from_slice(f);
                    total += 1;
                })
                .map_err(dsp)?;
                run(&mut frames, &mut out, true)?;
                if out.is_empty() {
                    if total == 0 {
                        return Err(Error::Other(format!("{}: no audio", path.display())));
                    }
                    let mel = Tensor::from_vec(frames, (total, N_MELS), &Device::Cpu)
                        .map_err(|e| Error::Other(e.to_string()))?;
                    let p = m.patches(&mel).map_err(named)?;
                    out.push(mus(m, &p).map_err(named)?);
                }
            }
        }
        Ok(out)
    }

    /// Tags a file window by window. musicnn 0.1.0 patches go two at a time on two cores
    /// (`rayon::join`): the matrix products inside one patch use two cores poorly (1.66 s
    /// for a 2-minute file with one thread, 1.3–1.6 s with two, 0.95 s with two patches
    /// in parallel — same scores to the bit). Won 2020 windows go one by one (batches of
    /// 4/16 and parallel windows were slower with Candle 0.11's CPU kernels).
    pub fn tag_file(&self, path: &Path) -> Result<TagResult> {
        let per = self.per_window(
            path,
            |m, w| m.tag(w),
            |m, p| Ok(m.tag_patches(p)?.remove(0)),
        )?;
        let step = self.window_secs();
        Ok(TagResult {
            model: self.name.clone(),
            tags: self.tags().to_vec(),
            scores: average(&per),
            segments: per
                .into_iter()
                .enumerate()
                .map(|(i, scores)| Segment {
                    start_secs: i as f64 * step,
                    scores,
                })
                .collect(),
        })
    }

    /// All pooled intermediate layers of a file concatenated (Choi et al. 2017), averaged
    /// over windows; returns the vector and the `(name, dims)` of its parts.
    pub fn embed_layers_file(&self, path: &Path) -> Result<mirkit_models::BlockEmbedding> {
        let per = self.per_window(
            path,
            |m, w| m.embed_layers(w),
            |m, p| {
                m.pooled_features(p)?
                    .into_iter()
                    .map(|(n, t)| Ok((n, t.squeeze(0)?.to_vec1::<f32>()?)))
                    .collect()
            },
        )?;
        let parts = per[0].iter().map(|(n, v)| (n.clone(), v.len())).collect();
        let flat: Vec<Vec<f32>> = per
            .into_iter()
            .map(|l| l.into_iter().flat_map(|(_, v)| v).collect())
            .collect();
        Ok((average(&flat), parts))
    }

    /// The penultimate-layer embedding of a file, averaged over windows (musicnn 0.1.0:
    /// its `penultimate` features, 200 dimensions).
    pub fn embed_file(&self, path: &Path) -> Result<Vec<f32>> {
        let per = self.per_window(
            path,
            |m, w| m.embed(w),
            |m, p| Ok(m.embedding(p)?.remove(0)),
        )?;
        Ok(average(&per))
    }
}
