//! Tagging and embedding of whole files with a pretrained model, streamed: memory is one
//! window plus a decoded block, whatever the file length.
//!
//! ```no_run
//! let result = mirkit::Tagger::default()?.tag_file("song.mp3")?;
//! for (tag, score) in result.top_k(5) {
//!     println!("{tag:>12} {score:.3}");
//! }
//! # Ok::<(), mirkit::Error>(())
//! ```

use crate::pipeline::Timings;
use crate::{Error, Result};
use mirkit_io::{AudioStream, LoadOptions};
use mirkit_models::registry::{self, average_layers, Pretrained};
use mirkit_models::scores::average;
use mirkit_models::windows::{Embedding, Scores, WindowOutput};
use mirkit_transfer::embed::Layers;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

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
    /// Where the time went.
    pub timings: Timings,
}

impl TagResult {
    /// The same result in another data set's tag vocabulary
    /// ([`mirkit_models::vocabulary`]): each target tag scored by the maximum over the
    /// model's tags of the same concept, per window too; target tags without a
    /// counterpart are left out. The model's vocabulary is read from its name.
    pub fn in_vocabulary(&self, to: mirkit_models::vocabulary::Vocabulary) -> Result<Self> {
        use mirkit_models::vocabulary::{Translation, Vocabulary};
        let from = Vocabulary::of_model(&self.model).ok_or_else(|| {
            Error::Invalid(format!(
                "{}: not trained on MTAT, MSD or Jamendo tags, so it has no vocabulary to \
                 translate from",
                self.model
            ))
        })?;
        let t = Translation::new(&self.tags, from, to)?;
        let w = self.tags.len();
        Ok(Self {
            model: self.model.clone(),
            tags: t.tags().to_vec(),
            scores: t.apply(&self.scores, w),
            segments: self
                .segments
                .iter()
                .map(|s| Segment {
                    start_secs: s.start_secs,
                    scores: t.apply(&s.scores, w),
                })
                .collect(),
            timings: self.timings,
        })
    }

    /// The `k` best tags, best first.
    pub fn top_k(&self, k: usize) -> Vec<(&str, f32)> {
        mirkit_models::scores::top_k(&self.tags, &self.scores, k)
    }

    /// Draws the taggram — tags × windows of per-window scores, rows ordered by mean score
    /// (best on top), viridis on 0..1 — as a PNG with axes and `title`.
    pub fn taggram_png(&self, path: impl AsRef<Path>, title: &str) -> Result<()> {
        self.taggram_png_marked(path, title, None)
    }

    /// [`Self::taggram_png`] with the time span `(start, end)` (seconds) framed in red —
    /// a thumbnail's segment ([`crate::thumbnail`]).
    pub fn taggram_png_marked(
        &self,
        path: impl AsRef<Path>,
        title: &str,
        span: Option<(f64, f64)>,
    ) -> Result<()> {
        use mirkit_io::plot::{spectrogram_png, Colormap, SpecPlot};
        let n_tags = self.tags.len();
        let n_win = self.segments.len();
        if n_win == 0 {
            return Err(Error::Invalid("a taggram needs at least one window".into()));
        }
        // rows ordered by mean score, lowest at the bottom
        let mut order: Vec<usize> = (0..n_tags).collect();
        order.sort_by(|&a, &b| self.scores[a].total_cmp(&self.scores[b]));
        let data = ndarray::Array2::from_shape_fn((n_tags, n_win), |(r, c)| {
            self.segments[c].scores[order[r]]
        });
        let opts = SpecPlot {
            title: format!("{title} ({})", self.model),
            seconds_per_frame: if n_win > 1 {
                self.segments[1].start_secs - self.segments[0].start_secs
            } else {
                3.0
            },
            row_labels: Some(order.iter().map(|&i| self.tags[i].clone()).collect()),
            colormap: Colormap::Viridis,
            range: Some((0.0, 1.0)),
            size: (700.max(n_win * 8), n_tags * 16),
            span,
            ..Default::default()
        };
        Ok(spectrogram_png(path.as_ref(), data.view(), &opts)?)
    }

    /// The JSON record `mirkit tag --format json` writes for this result: scores by tag
    /// name, the `k` best, and (with `segments`) the per-window scores.
    pub fn record(&self, file: &str, k: usize, segments: bool) -> TagRecord {
        let map = |s: &[f32]| -> BTreeMap<String, f64> {
            self.tags
                .iter()
                .cloned()
                .zip(s.iter().map(|&v| v as f64))
                .collect()
        };
        TagRecord {
            file: file.to_string(),
            model: self.model.clone(),
            scores: map(&self.scores),
            segments: segments.then(|| {
                self.segments
                    .iter()
                    .map(|s| SegmentRecord {
                        scores: map(&s.scores),
                        start_secs: s.start_secs,
                    })
                    .collect()
            }),
            top_k: self
                .top_k(k)
                .into_iter()
                .map(|(t, v)| (t.to_string(), v as f64))
                .collect(),
            windows: self.segments.len(),
        }
    }
}

/// One file's entry in the JSON array `mirkit tag --format json` writes (and `--resume`
/// reads back). Fields are declared in alphabetical order, the order they are written
/// in; scores are the `f32` values widened to `f64`, so they print with every digit of
/// the value that was computed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagRecord {
    /// The audio file as given.
    pub file: String,
    /// Model name.
    pub model: String,
    /// Scores averaged over the windows, by tag.
    pub scores: BTreeMap<String, f64>,
    /// Per-window scores, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<Vec<SegmentRecord>>,
    /// The best tags, best first.
    pub top_k: Vec<(String, f64)>,
    /// Number of windows.
    pub windows: usize,
}

/// Scores of one window in a [`TagRecord`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// Scores by tag.
    pub scores: BTreeMap<String, f64>,
    /// Start of the window, seconds.
    pub start_secs: f64,
}

/// A pretrained tagger.
///
/// Loaded once (weights compiled in), then reused for any number of files or
/// in-memory signals; `Sync`, so one tagger serves every thread.
///
/// ```
/// let tagger = mirkit::Tagger::new("musicnn-mtt")?; // or Tagger::default()
/// assert_eq!(tagger.tags().len(), 50);
/// let r = tagger.tag_file("data/clips/brahms_hungarian_dance_5.hq.ogg")?;
/// let top = r.top_k(3);
/// assert_eq!(top[0].0, "classical");
/// for (tag, score) in top {
///     println!("{tag:12} {score:.3}");
/// }
/// // per window: r.segments[i].start_secs and .scores
/// assert_eq!(r.segments.len(), 15);
/// # Ok::<(), mirkit::Error>(())
/// ```
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
        let model = registry::load_pretrained(name)?;
        Ok(Self {
            model,
            name: registry::canonical_name(name).to_string(),
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
        self.model.window_secs()
    }

    /// Streams a file through the model's windowing ([`mirkit_models::windows`]) and
    /// returns one `K` result per window.
    fn per_window<K: WindowOutput>(&self, path: &Path) -> Result<(Vec<K::Item>, Timings)> {
        let t0 = std::time::Instant::now();
        let named = |e: mirkit_models::ModelError| Error::ModelOnFile {
            path: path.display().to_string(),
            cause: e,
        };
        // The FFT resampler is the closest to the soxr HQ the models' references were fed
        // (83.5 dB SNR at 16 kHz; see tests/won2020.rs in mirkit-models).
        let opts = LoadOptions {
            quality: mirkit_io::ResampleQuality::Fast,
            ..LoadOptions::at(self.model.sample_rate())
        };
        let mut windows = self.model.stream::<K>();
        let mut out = Vec::new();
        let mut stream = AudioStream::open(path, &opts)?;
        let mut consume = |block: mirkit_io::Result<Vec<f32>>| -> Result<()> {
            windows.push(&block?).map_err(named)?;
            out.append(&mut windows.take_ready());
            Ok(())
        };
        let st = if rayon::current_num_threads() > 1 {
            // Decoding and resampling run on their own thread, a few blocks ahead, so
            // that they overlap the model's batches (which use the whole pool) instead of
            // leaving the other workers idle between batches; the blocks arrive in order,
            // so the results are the same bits as on one thread. A model error stops the
            // decoder at its next block (its channel is gone).
            std::thread::scope(|s| -> Result<mirkit_io::StreamTimings> {
                let (tx, rx) = std::sync::mpsc::sync_channel(4);
                let decoder = s.spawn(move || {
                    for block in stream.by_ref() {
                        if tx.send(block).is_err() {
                            break;
                        }
                    }
                    stream.timings()
                });
                let consumed = rx.into_iter().try_for_each(&mut consume);
                let st = decoder.join().expect("the decoding thread does not panic");
                consumed.map(|()| st)
            })?
        } else {
            for block in stream.by_ref() {
                consume(block)?;
            }
            stream.timings()
        };
        let (mut rest, wt) = windows.finish_with_timings().map_err(named)?;
        out.append(&mut rest);
        Ok((
            out,
            Timings {
                decode: st.decode,
                resample: st.resample,
                features: wt.front_end,
                model: wt.model,
                write: Default::default(),
                total: t0.elapsed(),
            },
        ))
    }

    /// Tags mono samples already in memory at `sample_rate` (resampled to the model's rate
    /// as files are, with the same resampler), by the model's windowing; the same scores as
    /// [`Self::tag_file`] on a file holding those samples.
    ///
    /// ```no_run
    /// let y = mirkit::io::load("song.mp3", &mirkit::io::LoadOptions::native())?; // mono
    /// let r = mirkit::Tagger::default()?.tag_samples(y.samples(), y.sample_rate())?;
    /// println!("{:?}", r.top_k(3));
    /// # Ok::<(), mirkit::Error>(())
    /// ```
    pub fn tag_samples(&self, samples: &[f32], sample_rate: u32) -> Result<TagResult> {
        let (per, timings) = self.per_window_samples::<Scores>(samples, sample_rate)?;
        Ok(self.result(per, timings))
    }

    /// The embedding of mono samples already in memory at `sample_rate`, in the
    /// representation `layers` asks for (resampled as [`Self::tag_samples`] does); the same
    /// vector as [`Self::embed_with`] on a file holding those samples.
    pub fn embed_samples(
        &self,
        samples: &[f32],
        sample_rate: u32,
        layers: Layers,
    ) -> Result<Vec<f32>> {
        Ok(match layers {
            Layers::Embedding => average(
                &self
                    .per_window_samples::<Embedding>(samples, sample_rate)?
                    .0,
            ),
            l => {
                l.pool_windows(
                    self.per_window_samples::<mirkit_models::windows::Layers>(
                        samples,
                        sample_rate,
                    )?
                    .0,
                )
                .0
            }
        })
    }

    /// [`Self::per_window`] for samples in memory.
    fn per_window_samples<K: WindowOutput>(
        &self,
        samples: &[f32],
        sample_rate: u32,
    ) -> Result<(Vec<K::Item>, Timings)> {
        let t0 = std::time::Instant::now();
        let y = mirkit_io::resample(
            samples,
            sample_rate,
            self.model.sample_rate(),
            mirkit_io::ResampleQuality::Fast,
        )?;
        let t1 = std::time::Instant::now();
        let mut w = self.model.stream::<K>();
        w.push(&y)?;
        let (per, wt) = w.finish_with_timings()?;
        let timings = Timings {
            resample: t1 - t0,
            features: wt.front_end,
            model: wt.model,
            total: t0.elapsed(),
            ..Timings::default()
        };
        Ok((per, timings))
    }

    fn result(&self, per: Vec<Vec<f32>>, timings: Timings) -> TagResult {
        let step = self.window_secs();
        TagResult {
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
            timings,
        }
    }

    /// Tags a file window by window, streaming it (see [`mirkit_models::windows`] for the
    /// protocols and how windows are scheduled on the cores).
    ///
    /// ```
    /// let tagger = mirkit::Tagger::new("won2020-musicnn-mtat")?;
    /// let r = tagger.tag_file("data/clips/brahms_hungarian_dance_5.hq.ogg")?;
    /// println!("{:?} ({:.2} s of model time)", r.top_k(5), r.timings.model.as_secs_f64());
    /// assert!(r.top_k(5).iter().any(|(t, _)| *t == "classical"));
    /// # Ok::<(), mirkit::Error>(())
    /// ```
    pub fn tag_file(&self, path: impl AsRef<Path>) -> Result<TagResult> {
        let path = path.as_ref();
        let (per, timings) = self.per_window::<Scores>(path)?;
        Ok(self.result(per, timings))
    }

    /// All pooled intermediate layers of a file concatenated (Choi et al. 2017), averaged
    /// over windows; returns the vector and the `(name, dims)` of its parts.
    pub fn embed_layers_file(
        &self,
        path: impl AsRef<Path>,
    ) -> Result<mirkit_models::BlockEmbedding> {
        let path = path.as_ref();
        Ok(average_layers(
            self.per_window::<mirkit_models::windows::Layers>(path)?.0,
        ))
    }

    /// The penultimate-layer embedding of each window of a file, in time order (window `i`
    /// starts at `i · window_secs()`).
    pub fn embed_windows_file(&self, path: impl AsRef<Path>) -> Result<Vec<Vec<f32>>> {
        Ok(self.per_window::<Embedding>(path.as_ref())?.0)
    }

    /// The penultimate-layer embedding of a file, averaged over windows (musicnn 0.1.0:
    /// its `penultimate` features, 200 dimensions).
    ///
    /// ```
    /// use mirkit::models::scores::cosine;
    /// let tagger = mirkit::Tagger::default()?;
    /// let a = tagger.embed_file("data/clips/brahms_hungarian_dance_5.hq.ogg")?;
    /// let b = tagger.embed_file("data/clips/sorohanro_-_solo-trumpet-06.hq.ogg")?;
    /// assert_eq!(a.len(), 200);
    /// assert!(cosine(&a, &a) > 0.9999 && cosine(&a, &b) < cosine(&a, &a));
    /// # Ok::<(), mirkit::Error>(())
    /// ```
    pub fn embed_file(&self, path: impl AsRef<Path>) -> Result<Vec<f32>> {
        let path = path.as_ref();
        Ok(average(&self.per_window::<Embedding>(path)?.0))
    }

    /// The embedding of a file in the representation `layers` asks for: the penultimate
    /// layer ([`Self::embed_file`]) or every layer concatenated ([`Self::embed_layers_file`]).
    pub fn embed_with(&self, path: impl AsRef<Path>, layers: Layers) -> Result<Vec<f32>> {
        Ok(self.embed_timed(path, layers)?.0)
    }

    /// [`Self::embed_with`], also returning where the time went.
    pub fn embed_timed(
        &self,
        path: impl AsRef<Path>,
        layers: Layers,
    ) -> Result<(Vec<f32>, Timings)> {
        let ((v, _), t) = self.embed_parts_timed(path.as_ref(), layers)?;
        Ok((v, t))
    }

    /// [`Self::embed_with`] with the `(name, dims)` of the vector's blocks, in order (one
    /// block, `embedding`, for the penultimate layer; one per layer otherwise, named
    /// `mean/…` and `max/…` for [`Layers::AllMeanMax`]): which columns are which layer.
    ///
    /// ```
    /// use mirkit::transfer::embed::Layers;
    /// let tagger = mirkit::Tagger::new("musicnn-mtt")?;
    /// let clip = "data/clips/sorohanro_-_solo-trumpet-06.hq.ogg";
    /// let (v, blocks) = tagger.embed_parts(clip, Layers::AllMeanMax)?;
    /// assert_eq!(v.len(), blocks.iter().map(|b| b.1).sum::<usize>());
    /// assert!(blocks[0].0.starts_with("mean/") && blocks.last().unwrap().0.starts_with("max/"));
    /// assert_eq!(v.len(), 2 * tagger.embed_with(clip, Layers::All)?.len());
    /// # Ok::<(), mirkit::Error>(())
    /// ```
    pub fn embed_parts(
        &self,
        path: impl AsRef<Path>,
        layers: Layers,
    ) -> Result<mirkit_models::BlockEmbedding> {
        Ok(self.embed_parts_timed(path.as_ref(), layers)?.0)
    }

    fn embed_parts_timed(
        &self,
        path: &Path,
        layers: Layers,
    ) -> Result<(mirkit_models::BlockEmbedding, Timings)> {
        Ok(match layers {
            Layers::Embedding => {
                let (per, t) = self.per_window::<Embedding>(path)?;
                let v = average(&per);
                let d = v.len();
                ((v, vec![("embedding".to_string(), d)]), t)
            }
            l => {
                let (per, t) = self.per_window::<mirkit_models::windows::Layers>(path)?;
                (l.pool_windows(per), t)
            }
        })
    }
}
