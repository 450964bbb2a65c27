//! The one windowing driver of the pretrained taggers: audio goes in block by block (any
//! block sizes), one result per window comes out, in memory that does not grow with the
//! signal. Every whole-signal entry point — [`Pretrained::tag`](crate::registry::Pretrained::tag)
//! and its siblings, the facade's file tagger, mirkit-transfer's embeddings — runs
//! through it, so each family's protocol is written once:
//!
//! * **Won et al. 2020**: 16 kHz mono cut into non-overlapping windows of the model's
//!   input length; a trailing remainder shorter than a window is dropped; a signal shorter
//!   than one window is zero-padded to one.
//! * **musicnn 0.1.0**: the log-mel of the whole signal (computed frame by frame, equal
//!   bit for bit to the batch computation), cut into non-overlapping 187-frame patches;
//!   the remainder is dropped; a log-mel shorter than one patch is repeated to fill one.
//!   Two patches are run at a time, one per core (`rayon::join`): the matrix products
//!   inside one patch use two cores poorly (1.66 s for a 2-minute file with one thread,
//!   1.3–1.6 s with two, 0.95 s with two patches in parallel — same scores to the bit).
//!
//! What is computed per window is a [`WindowOutput`]: [`Scores`], [`Embedding`] or
//! [`Layers`].
//!
//! ```no_run
//! use mirkit_models::registry::load_pretrained;
//! use mirkit_models::windows::Scores;
//! let model = load_pretrained("musicnn-mtt")?;
//! let mut stream = model.stream::<Scores>();
//! for block in [vec![0.0f32; 16_000], vec![0.1f32; 40_000]] {
//!     stream.push(&block)?; // 16 kHz mono
//!     for scores in stream.take_ready() {
//!         println!("{} tags", scores.len());
//!     }
//! }
//! let rest = stream.finish()?;
//! # Ok::<(), mirkit_models::ModelError>(())
//! ```

use crate::error::{ModelError, Result};
use crate::musicnn::{Musicnn, N_MELS, PATCH_FRAMES};
use crate::registry::Pretrained;
use crate::won2020::Won2020;
use crate::NamedFeatures;
use candle_core::{Device, Tensor};
use mirkit_dsp::FrameStreamer;

/// What the driver computes for each window.
pub trait WindowOutput {
    /// The result of one window.
    type Item: Send;
    /// The result for one Won 2020 window (exactly the model's input length).
    fn won2020(model: &Won2020, window: &[f32]) -> Result<Self::Item>;
    /// The result for one musicnn 0.1.0 patch, `(1, frames, 96)`.
    fn musicnn(model: &Musicnn, patch: &Tensor) -> Result<Self::Item>;
}

/// Sigmoid scores per tag.
pub struct Scores;
/// The penultimate-layer embedding (Won 2020: the layer before the output; musicnn:
/// `penultimate`, or `pool5` flattened for VGG).
pub struct Embedding;
/// Every layer pooled to a vector, named, in network order (Choi et al. 2017).
pub struct Layers;

impl WindowOutput for Scores {
    type Item = Vec<f32>;
    fn won2020(model: &Won2020, window: &[f32]) -> Result<Vec<f32>> {
        model.tag_window(window)
    }
    fn musicnn(model: &Musicnn, patch: &Tensor) -> Result<Vec<f32>> {
        Ok(model.tag_patches(patch)?.remove(0))
    }
}

impl WindowOutput for Embedding {
    type Item = Vec<f32>;
    fn won2020(model: &Won2020, window: &[f32]) -> Result<Vec<f32>> {
        model.embed_window(window)
    }
    fn musicnn(model: &Musicnn, patch: &Tensor) -> Result<Vec<f32>> {
        Ok(model.embedding(patch)?.remove(0))
    }
}

impl WindowOutput for Layers {
    type Item = NamedFeatures;
    fn won2020(model: &Won2020, window: &[f32]) -> Result<NamedFeatures> {
        model.embed_layers_window(window)
    }
    fn musicnn(model: &Musicnn, patch: &Tensor) -> Result<NamedFeatures> {
        model
            .pooled_features(patch)?
            .into_iter()
            .map(|(n, t)| Ok((n, t.squeeze(0)?.to_vec1::<f32>()?)))
            .collect()
    }
}

enum State<'m> {
    Won2020 {
        model: &'m Won2020,
        buf: Vec<f32>,
    },
    Musicnn {
        model: &'m Musicnn,
        // boxed: the streamer is far larger than the Won 2020 state
        streamer: Box<FrameStreamer<'m>>,
        frames: Vec<f32>,
        total: usize,
    },
}

/// A windowing run over one signal (see the [module docs](self)); made by
/// [`Pretrained::stream`](crate::registry::Pretrained::stream).
pub struct WindowStream<'m, K: WindowOutput> {
    state: State<'m>,
    ready: Vec<K::Item>,
    windows: usize,
    samples: usize,
    timings: WindowTimings,
}

/// Where a [`WindowStream`]'s time went (wall clock on the calling thread).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WindowTimings {
    /// The streamed front end (musicnn's log-mel; Won 2020's front end runs inside the
    /// network and is counted under `model`).
    pub front_end: std::time::Duration,
    /// The network.
    pub model: std::time::Duration,
}

fn patch(frames: &[f32]) -> Result<Tensor> {
    Ok(Tensor::from_slice(
        frames,
        (1, PATCH_FRAMES, N_MELS),
        &Device::Cpu,
    )?)
}

impl<'m, K: WindowOutput> WindowStream<'m, K> {
    pub(crate) fn new(model: &'m Pretrained) -> Self {
        let state = match model {
            Pretrained::Won2020(m) => State::Won2020 {
                model: m,
                buf: Vec::with_capacity(2 * m.input_len()),
            },
            Pretrained::Musicnn(m) => State::Musicnn {
                model: m,
                streamer: Box::new(m.front_end().streamer()),
                frames: Vec::with_capacity(2 * PATCH_FRAMES * N_MELS),
                total: 0,
            },
        };
        Self {
            state,
            ready: Vec::new(),
            windows: 0,
            samples: 0,
            timings: WindowTimings::default(),
        }
    }

    /// Feeds the next block of 16 kHz mono samples; the windows it completes are run and
    /// their results wait in [`Self::take_ready`].
    pub fn push(&mut self, block: &[f32]) -> Result<()> {
        self.samples += block.len();
        match &mut self.state {
            State::Won2020 { model, buf } => {
                buf.extend_from_slice(block);
                let n = model.input_len();
                // one window at a time (two in parallel measured slower: 1.6–1.8 s against
                // 1.2–1.6 s for a 2-minute file with won2020-musicnn-mtat)
                let mut start = 0;
                let t = std::time::Instant::now();
                while buf.len() - start >= n {
                    self.ready.push(K::won2020(model, &buf[start..start + n])?);
                    self.windows += 1;
                    start += n;
                }
                self.timings.model += t.elapsed();
                buf.drain(..start);
            }
            State::Musicnn {
                model,
                streamer,
                frames,
                total,
            } => {
                let t = std::time::Instant::now();
                streamer.push(block, &mut |f: &[f32]| {
                    frames.extend_from_slice(f);
                    *total += 1;
                })?;
                let t1 = std::time::Instant::now();
                self.timings.front_end += t1 - t;
                self.windows += run_patches::<K>(model, frames, &mut self.ready, false)?;
                self.timings.model += t1.elapsed();
            }
        }
        Ok(())
    }

    /// Takes the results of the windows completed so far, in order.
    pub fn take_ready(&mut self) -> Vec<K::Item> {
        std::mem::take(&mut self.ready)
    }

    /// Windows run so far (including those already taken).
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Ends the signal: runs what the protocol makes of the tail (musicnn's last frames;
    /// the padded single window of a short signal) and returns every result not yet
    /// taken. A signal without a single sample is [`ModelError::Input`].
    pub fn finish(self) -> Result<Vec<K::Item>> {
        Ok(self.finish_with_timings()?.0)
    }

    /// [`Self::finish`], also returning where the time went over the whole stream.
    pub fn finish_with_timings(self) -> Result<(Vec<K::Item>, WindowTimings)> {
        if self.samples == 0 {
            return Err(ModelError::Input("no audio".into()));
        }
        let (mut ready, windows, mut timings) = (self.ready, self.windows, self.timings);
        let t = std::time::Instant::now();
        match self.state {
            State::Won2020 { model, mut buf } => {
                if windows == 0 {
                    if buf.is_empty() {
                        return Err(ModelError::Input("no audio".into()));
                    }
                    buf.resize(model.input_len(), 0.0);
                    ready.push(K::won2020(model, &buf)?);
                }
                timings.model += t.elapsed();
            }
            State::Musicnn {
                model,
                streamer,
                mut frames,
                mut total,
            } => {
                streamer.finish(&mut |f: &[f32]| {
                    frames.extend_from_slice(f);
                    total += 1;
                })?;
                let t1 = std::time::Instant::now();
                timings.front_end += t1 - t;
                let ran = run_patches::<K>(model, &mut frames, &mut ready, true)?;
                if windows + ran == 0 {
                    if total == 0 {
                        return Err(ModelError::Input("no audio".into()));
                    }
                    let mel = Tensor::from_vec(frames, (total, N_MELS), &Device::Cpu)?;
                    let p = model.patches(&mel)?;
                    ready.push(K::musicnn(model, &p)?);
                }
                timings.model += t1.elapsed();
            }
        }
        Ok((ready, timings))
    }
}

/// Runs the complete patches of `frames`: pairs in parallel, then (at the end) a single
/// last one; returns how many ran.
fn run_patches<K: WindowOutput>(
    model: &Musicnn,
    frames: &mut Vec<f32>,
    out: &mut Vec<K::Item>,
    last: bool,
) -> Result<usize> {
    let len = PATCH_FRAMES * N_MELS;
    let mut start = 0;
    let mut ran = 0;
    while frames.len() - start >= 2 * len {
        let (a, b) = (
            patch(&frames[start..start + len])?,
            patch(&frames[start + len..start + 2 * len])?,
        );
        let (ra, rb) = rayon::join(|| K::musicnn(model, &a), || K::musicnn(model, &b));
        out.push(ra?);
        out.push(rb?);
        start += 2 * len;
        ran += 2;
    }
    while last && frames.len() - start >= len {
        out.push(K::musicnn(model, &patch(&frames[start..start + len])?)?);
        start += len;
        ran += 1;
    }
    frames.drain(..start);
    Ok(ran)
}
