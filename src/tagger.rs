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
use mirkit_io::{AudioStream, LoadOptions};
use mirkit_models::registry;
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
        let mut idx: Vec<usize> = (0..self.scores.len()).collect();
        idx.sort_by(|&a, &b| self.scores[b].total_cmp(&self.scores[a]));
        idx.into_iter()
            .take(k)
            .map(|i| (self.tags[i].as_str(), self.scores[i]))
            .collect()
    }
}

/// A pretrained tagger.
pub struct Tagger {
    model: Won2020,
    name: String,
}

impl Tagger {
    /// The default model ([`registry::DEFAULT_MODEL`]), compiled into the library.
    #[allow(clippy::should_implement_trait)]
    pub fn default() -> Result<Self> {
        Self::new(registry::DEFAULT_MODEL)
    }
    /// A registry model by name.
    pub fn new(name: &str) -> Result<Self> {
        let model = registry::load(name).map_err(|e| Error::Other(e.to_string()))?;
        Ok(Self {
            model,
            name: name.to_string(),
        })
    }
    /// The underlying model.
    pub fn model(&self) -> &Won2020 {
        &self.model
    }
    /// Registry name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on every window of the file (Won 2020 protocol: 16 kHz mono,
    /// non-overlapping windows, trailing remainder dropped, a file shorter than one
    /// window zero-padded), streaming the audio.
    fn for_windows(
        &self,
        path: &Path,
        mut f: impl FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<usize> {
        let n = self.model.input_len();
        // The FFT resampler is the closest to the soxr HQ the models' references were fed
        // (83.5 dB SNR at 16 kHz; see tests/won2020.rs in mirkit-models).
        let opts = LoadOptions {
            quality: mirkit_io::ResampleQuality::Fast,
            ..LoadOptions::at(SAMPLE_RATE)
        };
        let stream = AudioStream::open(path, &opts)?;
        let mut buf: Vec<f32> = Vec::with_capacity(2 * n);
        let mut done = 0usize;
        for block in stream {
            buf.extend_from_slice(&block?);
            while buf.len() >= n {
                f(done, &buf[..n])?;
                done += 1;
                buf.drain(..n);
            }
        }
        if done == 0 {
            if buf.is_empty() {
                return Err(Error::Other(format!("{}: no audio", path.display())));
            }
            buf.resize(n, 0.0);
            f(0, &buf)?;
            done = 1;
        }
        Ok(done)
    }

    /// Tags a file, window by window (batching windows or running them in parallel was
    /// measured slower with Candle 0.11's CPU kernels: 0.82 s for the Brahms clip one by
    /// one, 0.96 / 0.99 s in batches of 4 / 16, 0.95 s in parallel).
    pub fn tag_file(&self, path: &Path) -> Result<TagResult> {
        let n = self.model.input_len();
        let mut segments = Vec::new();
        self.for_windows(path, |i, w| {
            let scores = self
                .model
                .tag(w)
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
            segments.push(Segment {
                start_secs: (i * n) as f64 / SAMPLE_RATE as f64,
                scores,
            });
            Ok(())
        })?;
        let per: Vec<Vec<f32>> = segments.iter().map(|s| s.scores.clone()).collect();
        Ok(TagResult {
            model: self.name.clone(),
            tags: self.model.tags().to_vec(),
            scores: average(&per),
            segments,
        })
    }

    /// All pooled intermediate layers of a file concatenated (Choi et al. 2017), averaged
    /// over windows; returns the vector and the `(name, dims)` of its parts.
    pub fn embed_layers_file(&self, path: &Path) -> Result<(Vec<f32>, Vec<(String, usize)>)> {
        let mut acc: Vec<Vec<f32>> = Vec::new();
        let mut parts = Vec::new();
        self.for_windows(path, |_, w| {
            let l = self
                .model
                .embed_layers(w)
                .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
            parts = l.iter().map(|(n, v)| (n.clone(), v.len())).collect();
            acc.push(l.into_iter().flat_map(|(_, v)| v).collect());
            Ok(())
        })?;
        Ok((average(&acc), parts))
    }

    /// The penultimate-layer embedding of a file, averaged over windows.
    pub fn embed_file(&self, path: &Path) -> Result<Vec<f32>> {
        let mut acc: Vec<Vec<f32>> = Vec::new();
        self.for_windows(path, |_, w| {
            acc.push(
                self.model
                    .embed(w)
                    .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?,
            );
            Ok(())
        })?;
        Ok(average(&acc))
    }
}
