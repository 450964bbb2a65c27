//! Music thumbnails: the most representative segment of a track, from the track's own
//! window embeddings (the review's "music thumbnailing" application; Nam et al. 2019).
//!
//! A segment of `seconds` covers `k` consecutive model windows. Each window's embedding
//! is L2-normalised and gets a *typicality*: a kernel density over the track,
//! `(1/n) Σ_j exp(γ (cos(w_i, w_j) − 1))` with `γ` = [`GAMMA`], high for a window whose
//! content fills much of the track. A candidate segment scores the mean typicality of its
//! windows plus, weighted by `repetition`, how strongly its windows recur elsewhere in the
//! track: for each window, the highest cosine to a window at least `k` windows away (the
//! off-diagonal maximum of the self-similarity matrix, the cue of chorus detection),
//! averaged over the segment. The best-scoring start wins; ties go to the earliest.
//!
//! Why a density and not the cosine to the track's mean embedding: on a track made of
//! speech, a long orchestral part and whale song, the mean lies between the parts and the
//! segment closest to it was the one straddling speech and orchestra (start 12.0 s, the
//! orchestra starting at 13.9 s); the density picks a segment inside the orchestral part
//! (tests/cli.rs `thumbnail_*`).
//!
//! ```no_run
//! let tagger = mirkit::Tagger::default()?;
//! let t = tagger.thumbnail_file("song.mp3", &mirkit::thumbnail::ThumbnailOptions::default())?;
//! println!("thumbnail {:.1}–{:.1} s", t.start_secs, t.end_secs);
//! # Ok::<(), mirkit::Error>(())
//! ```

use crate::{Error, Result, Tagger};
use std::path::Path;

/// How a thumbnail is chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct ThumbnailOptions {
    /// Length of the segment, seconds (default 30; the whole track if it is shorter).
    pub seconds: f64,
    /// Weight of repetition in the score (0: similarity to the whole track only).
    pub repetition: f32,
}

impl Default for ThumbnailOptions {
    fn default() -> Self {
        Self {
            seconds: 30.0,
            repetition: 0.0,
        }
    }
}

/// The chosen segment and the scores behind the choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Thumbnail {
    /// Start of the segment, seconds.
    pub start_secs: f64,
    /// End of the segment, seconds (at most the track's end).
    pub end_secs: f64,
    /// Score of the chosen start.
    pub score: f32,
    /// Score of every candidate start `i` (at `i · window_secs`).
    pub scores: Vec<f32>,
    /// Seconds between window starts.
    pub window_secs: f64,
    /// Windows per segment.
    pub windows_per_segment: usize,
}

fn normalised(v: &[f32]) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter().map(|x| x / n).collect()
    } else {
        v.to_vec()
    }
}

/// Sharpness of the typicality kernel: a window at cosine 0.9 counts `e^-1` ≈ 0.37 of an
/// identical one, at 0.7 about 0.05.
pub const GAMMA: f32 = 10.0;

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Chooses a thumbnail from per-window embeddings `windows` (time order, one every
/// `window_secs`) of a track lasting `duration_secs`.
pub fn choose(
    windows: &[Vec<f32>],
    window_secs: f64,
    duration_secs: f64,
    opts: &ThumbnailOptions,
) -> Result<Thumbnail> {
    if !(opts.seconds.is_finite() && opts.seconds > 0.0) {
        return Err(Error::Invalid(format!(
            "thumbnail length {} s: must be a positive number of seconds",
            opts.seconds
        )));
    }
    if !(opts.repetition.is_finite() && opts.repetition >= 0.0) {
        return Err(Error::Invalid(format!(
            "repetition weight {}: must be >= 0",
            opts.repetition
        )));
    }
    let n = windows.len();
    if n == 0 || !(window_secs.is_finite() && window_secs > 0.0) {
        return Err(Error::Invalid(
            "a thumbnail needs at least one window".into(),
        ));
    }
    let dim = windows[0].len();
    if windows.iter().any(|w| w.len() != dim) {
        return Err(Error::Invalid(
            "window embeddings of different sizes".into(),
        ));
    }
    let u: Vec<Vec<f32>> = windows.iter().map(|w| normalised(w)).collect();
    let sim: Vec<Vec<f32>> = u
        .iter()
        .map(|a| u.iter().map(|b| dot(a, b)).collect())
        .collect();
    let typical: Vec<f32> = sim
        .iter()
        .map(|row| row.iter().map(|c| (GAMMA * (c - 1.0)).exp()).sum::<f32>() / n as f32)
        .collect();
    let k = ((opts.seconds / window_secs).round() as usize).clamp(1, n);
    // each window's strongest recurrence at least k windows away
    let recur: Vec<f32> = (0..n)
        .map(|i| {
            (0..n)
                .filter(|&j| i.abs_diff(j) >= k)
                .map(|j| sim[i][j])
                .fold(0.0f32, f32::max)
        })
        .collect();
    let scores: Vec<f32> = (0..=n - k)
        .map(|i| {
            let typ = typical[i..i + k].iter().sum::<f32>() / k as f32;
            let rep = recur[i..i + k].iter().sum::<f32>() / k as f32;
            typ + opts.repetition * rep
        })
        .collect();
    let (best, &score) = scores
        .iter()
        .enumerate()
        .fold((0, &f32::NEG_INFINITY), |acc, (i, s)| {
            if *s > *acc.1 {
                (i, s)
            } else {
                acc
            }
        });
    let start = best as f64 * window_secs;
    let end = (start + opts.seconds).min(duration_secs.max(start));
    Ok(Thumbnail {
        start_secs: start,
        end_secs: end,
        score,
        scores,
        window_secs,
        windows_per_segment: k,
    })
}

impl Tagger {
    /// The thumbnail of a file from this model's per-window embeddings ([`choose`]).
    ///
    /// ```
    /// use mirkit::thumbnail::ThumbnailOptions;
    /// let tagger = mirkit::Tagger::default()?;
    /// let opts = ThumbnailOptions { seconds: 10.0, ..Default::default() };
    /// let t = tagger.thumbnail_file("data/clips/brahms_hungarian_dance_5.hq.ogg", &opts)?;
    /// assert!((t.end_secs - t.start_secs - 10.0).abs() < 1e-9);
    /// println!("the most typical 10 s start at {:.1} s", t.start_secs);
    /// # Ok::<(), mirkit::Error>(())
    /// ```
    pub fn thumbnail_file(
        &self,
        path: impl AsRef<Path>,
        opts: &ThumbnailOptions,
    ) -> Result<Thumbnail> {
        let path = path.as_ref();
        let windows = self.embed_windows_file(path)?;
        let info = mirkit_io::info(path)?;
        let step = self.window_secs();
        let duration = info.duration_secs.unwrap_or(windows.len() as f64 * step);
        choose(&windows, step, duration, opts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(x: &[f32]) -> Vec<f32> {
        x.to_vec()
    }

    #[test]
    fn picks_the_part_most_like_the_whole() {
        // 2 windows of A, 6 of B, 2 of C: a 2-window segment inside B
        let a = v(&[1.0, 0.0, 0.0]);
        let b = v(&[0.0, 1.0, 0.1]);
        let c = v(&[0.0, 0.0, 1.0]);
        let w = [
            a.clone(),
            a,
            b.clone(),
            b.clone(),
            b.clone(),
            b.clone(),
            b.clone(),
            b,
            c.clone(),
            c,
        ];
        let t = choose(
            &w,
            3.0,
            30.0,
            &ThumbnailOptions {
                seconds: 6.0,
                repetition: 0.0,
            },
        )
        .unwrap();
        assert_eq!(t.windows_per_segment, 2);
        assert!((6.0..=18.0).contains(&t.start_secs), "{t:?}");
        assert_eq!(t.end_secs, t.start_secs + 6.0);
        assert_eq!(t.scores.len(), 9);
    }

    #[test]
    fn repetition_prefers_what_comes_back() {
        // A A B B B B B A A, 5-window segments: the B block fills most of the track, but A
        // comes back; with repetition weighted, a segment holding both A windows wins
        let (a, b) = (v(&[1.0, 0.0]), v(&[0.0, 1.0]));
        let mut w = vec![a.clone(), a.clone()];
        w.extend(std::iter::repeat_n(b, 5));
        w.extend([a.clone(), a]);
        let o = |r: f32| ThumbnailOptions {
            seconds: 5.0,
            repetition: r,
        };
        let plain = choose(&w, 1.0, 9.0, &o(0.0)).unwrap();
        assert_eq!(plain.start_secs, 2.0, "{plain:?}");
        let rep = choose(&w, 1.0, 9.0, &o(2.0)).unwrap();
        assert!([0.0, 4.0].contains(&rep.start_secs), "{rep:?}");
    }

    #[test]
    fn bad_requests_are_errors() {
        let w = [v(&[1.0, 0.0])];
        let o = |s: f64, r: f32| ThumbnailOptions {
            seconds: s,
            repetition: r,
        };
        assert!(choose(&[], 3.0, 0.0, &o(30.0, 0.0)).is_err());
        assert!(choose(&w, 3.0, 3.0, &o(0.0, 0.0)).is_err());
        assert!(choose(&w, 3.0, 3.0, &o(f64::NAN, 0.0)).is_err());
        assert!(choose(&w, 3.0, 3.0, &o(30.0, -1.0)).is_err());
        assert!(choose(&[v(&[1.0]), v(&[1.0, 2.0])], 3.0, 6.0, &o(3.0, 0.0)).is_err());
        // a track shorter than the thumbnail: the whole track
        let t = choose(&w, 3.0, 2.5, &o(30.0, 0.0)).unwrap();
        assert_eq!((t.start_secs, t.end_secs), (0.0, 2.5));
    }
}
