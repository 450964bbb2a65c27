//! Seeded composition: parameter ranges, chains, one-of, random-apply, records of what was
//! applied (JSON), exact replay, label updates and parallel batches.

use crate::error::{finite, invalid, AugmentError, Result};
use crate::filter::{biquad, compress, Compressor, FilterKind};
use crate::simple::{self, NoiseColor};
use crate::stretch::{pitch_shift, time_stretch, PhaseMode};
use mirkit_core::rng::Rng;
use std::sync::Arc;

/// A parameter drawn uniformly from `[lo, hi]` (a fixed value when equal).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    /// minimum
    pub lo: f64,
    /// maximum
    pub hi: f64,
}

impl Range {
    /// `[lo, hi]`; errors if not finite or `lo > hi`.
    pub fn new(lo: f64, hi: f64) -> Result<Self> {
        let r = Self { lo, hi };
        r.check("range")?;
        Ok(r)
    }
    /// A fixed value.
    pub fn fixed(v: f64) -> Self {
        Self { lo: v, hi: v }
    }
    fn check(&self, name: &'static str) -> Result<()> {
        if !self.lo.is_finite() || !self.hi.is_finite() {
            return Err(AugmentError::InvalidRange {
                name,
                lo: self.lo,
                hi: self.hi,
                why: "bounds must be finite".into(),
            });
        }
        if self.lo > self.hi {
            return Err(AugmentError::InvalidRange {
                name,
                lo: self.lo,
                hi: self.hi,
                why: "min exceeds max".into(),
            });
        }
        Ok(())
    }
    fn draw(&self, name: &'static str, rng: &mut Rng) -> Result<f64> {
        self.check(name)?;
        Ok(rng.range(self.lo, self.hi))
    }
}

/// What one transform did: its name and drawn parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// transform name (`pitch_shift`, `time_stretch`, `gain`, ...)
    pub name: String,
    /// drawn parameters, sorted by name
    pub params: Vec<(String, f64)>,
}

impl Applied {
    fn new(name: &str, params: &[(&str, f64)]) -> Self {
        let mut params: Vec<(String, f64)> =
            params.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        Self {
            name: name.into(),
            params,
        }
    }
    /// A parameter by name.
    pub fn get(&self, key: &str) -> Option<f64> {
        self.params.iter().find(|(k, _)| k == key).map(|p| p.1)
    }
    fn need(&self, key: &str) -> Result<f64> {
        self.get(key)
            .ok_or_else(|| AugmentError::Replay(format!("{} lacks parameter {key}", self.name)))
    }
    /// As JSON: `{"transform": name, "params": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(RecordJson::from(self)).expect("plain values")
    }
}

/// The JSON form of an [`Applied`] record (fields in the order they are written; the
/// parameters sorted by name).
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson {
    params: std::collections::BTreeMap<String, f64>,
    transform: String,
}

impl From<&Applied> for RecordJson {
    fn from(a: &Applied) -> Self {
        Self {
            params: a.params.iter().cloned().collect(),
            transform: a.name.clone(),
        }
    }
}

/// Records as a JSON array.
pub fn records_to_json(records: &[Applied]) -> String {
    serde_json::to_string_pretty(&records.iter().map(RecordJson::from).collect::<Vec<_>>())
        .expect("plain values")
}

/// Parses [`records_to_json`] output (parameters come back sorted by name).
pub fn records_from_json(s: &str) -> Result<Vec<Applied>> {
    let v: Vec<RecordJson> = serde_json::from_str(s)
        .map_err(|e| AugmentError::Replay(format!("not a list of augmentation records: {e}")))?;
    Ok(v.into_iter()
        .map(|r| Applied {
            name: r.transform,
            params: r.params.into_iter().collect(),
        })
        .collect())
}

/// Total pitch shift in semitones recorded (to move a key label).
pub fn semitones_shifted(records: &[Applied]) -> f64 {
    records
        .iter()
        .filter(|r| r.name == "pitch_shift")
        .map(|r| r.get("n_steps").unwrap_or(0.0) * 12.0 / r.get("bins_per_octave").unwrap_or(12.0))
        .sum()
}

/// Factor by which the tempo changed (product of stretch rates), to update a tempo label.
pub fn tempo_factor(records: &[Applied]) -> f64 {
    records
        .iter()
        .filter(|r| r.name == "time_stretch")
        .map(|r| r.get("rate").unwrap_or(1.0))
        .product()
}

/// Moves a pitch-class key label (0 = C … 11 = B) by the recorded shift, rounded.
pub fn shift_key(pitch_class: u8, records: &[Applied]) -> u8 {
    ((pitch_class as i64 + semitones_shifted(records).round() as i64).rem_euclid(12)) as u8
}

/// An augmentation: a transform with parameter ranges, or a combinator.
///
/// ```
/// use mirkit_augment::{Augment, NoiseColor, PhaseMode, Range, Rng};
/// // a training-time chain: stretch ±10 % half the time, then pink noise at 20–40 dB SNR
/// let aug = Augment::Chain(vec![
///     Augment::RandomApply {
///         p: 0.5,
///         inner: Box::new(Augment::TimeStretch { rate: Range::new(0.9, 1.1)?, mode: PhaseMode::Librosa }),
///     },
///     Augment::Noise { snr_db: Range::new(20.0, 40.0)?, color: NoiseColor::Pink },
/// ]);
/// let clean: Vec<f32> = (0..16000).map(|i| (i as f32 * 0.05).sin()).collect();
/// let mut y = clean.clone();
/// let mut record = Vec::new();
/// aug.apply(&mut y, 16000, &mut Rng::new(3), &mut record)?;
/// // what was drawn, as JSON; replaying it gives the same samples
/// println!("{}", mirkit_augment::records_to_json(&record));
/// assert_eq!(mirkit_augment::replay(&record, &clean, 16000)?, y);
/// # Ok::<(), mirkit_augment::AugmentError>(())
/// ```
#[derive(Debug, Clone)]
pub enum Augment {
    /// Phase-vocoder time stretch by a rate.
    TimeStretch {
        /// rate range (librosa: > 1 faster)
        rate: Range,
        /// vocoder phase handling
        mode: PhaseMode,
    },
    /// Pitch shift by (fractional) steps.
    PitchShift {
        /// steps range
        steps: Range,
        /// steps per octave (12: semitones)
        bins_per_octave: u32,
        /// vocoder phase handling
        mode: PhaseMode,
    },
    /// Gain in dB.
    Gain {
        /// dB range
        db: Range,
    },
    /// Additive noise at an SNR.
    Noise {
        /// SNR range, dB
        snr_db: Range,
        /// colour
        color: NoiseColor,
    },
    /// Background mixed at an SNR from a random offset.
    Background {
        /// background samples (same rate as the input)
        audio: Arc<Vec<f32>>,
        /// SNR range, dB
        snr_db: Range,
    },
    /// Polarity inversion.
    Polarity,
    /// Random crop or zero-pad to a length.
    CropPad {
        /// output length, samples
        length: usize,
    },
    /// Time shift by a number of seconds (negative: earlier).
    Shift {
        /// seconds range
        seconds: Range,
        /// roll around instead of filling with zeros
        rollover: bool,
    },
    /// Biquad filter.
    Filter {
        /// response
        kind: FilterKind,
        /// centre/corner frequency range, Hz
        freq: Range,
        /// Q range
        q: Range,
        /// shelf/peak gain range, dB
        gain_db: Range,
    },
    /// Dynamic-range compressor.
    Compress {
        /// threshold range, dBFS
        threshold_db: Range,
        /// ratio range
        ratio: Range,
    },
    /// Hard clipping at an absolute level.
    Clip {
        /// threshold range
        threshold: Range,
    },
    /// All in order.
    Chain(Vec<Augment>),
    /// One of them, chosen uniformly.
    OneOf(Vec<Augment>),
    /// The inner augmentation with probability `p`.
    RandomApply {
        /// probability
        p: f64,
        /// what to apply
        inner: Box<Augment>,
    },
}

impl Augment {
    /// The literature's music tagging/genre ranges: pitch ±2 semitones, stretch
    /// 0.81–1.23 (e.g. McFee et al. 2015's MUDA deformations; Won et al. 2020), each
    /// applied with probability `p`.
    pub fn music_default(p: f64) -> Self {
        Augment::Chain(vec![
            Augment::RandomApply {
                p,
                inner: Box::new(Augment::PitchShift {
                    steps: Range::fixed(0.0).with(-2.0, 2.0),
                    bins_per_octave: 12,
                    mode: PhaseMode::Librosa,
                }),
            },
            Augment::RandomApply {
                p,
                inner: Box::new(Augment::TimeStretch {
                    rate: Range::fixed(1.0).with(0.81, 1.23),
                    mode: PhaseMode::Librosa,
                }),
            },
        ])
    }

    /// Applies the augmentation to `y` (mono, `sr` Hz), drawing from `rng` and appending
    /// what was applied to `log`. On error `y` is left unchanged.
    pub fn apply(
        &self,
        y: &mut Vec<f32>,
        sr: u32,
        rng: &mut Rng,
        log: &mut Vec<Applied>,
    ) -> Result<()> {
        crate::error::check_signal(y)?;
        let mut work = y.clone();
        let mut local = Vec::new();
        self.apply_inner(&mut work, sr, rng, &mut local)?;
        *y = work;
        log.extend(local);
        Ok(())
    }

    fn apply_inner(
        &self,
        y: &mut Vec<f32>,
        sr: u32,
        rng: &mut Rng,
        log: &mut Vec<Applied>,
    ) -> Result<()> {
        let rec = match self {
            Augment::TimeStretch { rate, mode } => {
                let r = rate.draw("rate", rng)?;
                Applied::new(
                    "time_stretch",
                    &[
                        ("rate", r),
                        (
                            "phase_lock",
                            (*mode == PhaseMode::IdentityLocking) as u8 as f64,
                        ),
                    ],
                )
            }
            Augment::PitchShift {
                steps,
                bins_per_octave,
                mode,
            } => {
                let s = steps.draw("n_steps", rng)?;
                Applied::new(
                    "pitch_shift",
                    &[
                        ("n_steps", s),
                        ("bins_per_octave", *bins_per_octave as f64),
                        (
                            "phase_lock",
                            (*mode == PhaseMode::IdentityLocking) as u8 as f64,
                        ),
                    ],
                )
            }
            Augment::Gain { db } => Applied::new("gain", &[("db", db.draw("gain_db", rng)?)]),
            Augment::Noise { snr_db, color } => Applied::new(
                "noise",
                &[
                    ("snr_db", snr_db.draw("snr_db", rng)?),
                    ("pink", (*color == NoiseColor::Pink) as u8 as f64),
                    ("seed", (rng.next_u64() >> 11) as f64),
                ],
            ),
            Augment::Background { audio, snr_db } => {
                let s = snr_db.draw("snr_db", rng)?;
                let off = rng.below(audio.len().max(1) as u64) as f64;
                let rec = Applied::new("background", &[("snr_db", s), ("offset", off)]);
                simple::mix_background(y, audio, off as usize, s)?;
                log.push(rec);
                return Ok(());
            }
            Augment::Polarity => Applied::new("polarity", &[]),
            Augment::CropPad { length } => {
                let slack = y.len().abs_diff(*length) as u64;
                Applied::new(
                    "crop_pad",
                    &[
                        ("length", *length as f64),
                        ("offset", rng.below(slack + 1) as f64),
                    ],
                )
            }
            Augment::Shift { seconds, rollover } => {
                let s = seconds.draw("shift", rng)?;
                Applied::new(
                    "shift",
                    &[
                        ("samples", (s * sr as f64).round()),
                        ("rollover", *rollover as u8 as f64),
                    ],
                )
            }
            Augment::Filter {
                kind,
                freq,
                q,
                gain_db,
            } => Applied::new(
                "filter",
                &[
                    ("kind", kind_code(*kind)),
                    ("freq", freq.draw("freq", rng)?),
                    ("q", q.draw("q", rng)?),
                    ("gain_db", gain_db.draw("gain_db", rng)?),
                ],
            ),
            Augment::Compress {
                threshold_db,
                ratio,
            } => Applied::new(
                "compress",
                &[
                    ("threshold_db", threshold_db.draw("threshold_db", rng)?),
                    ("ratio", ratio.draw("ratio", rng)?),
                ],
            ),
            Augment::Clip { threshold } => {
                Applied::new("clip", &[("threshold", threshold.draw("threshold", rng)?)])
            }
            Augment::Chain(v) => {
                for a in v {
                    a.apply_inner(y, sr, rng, log)?;
                }
                return Ok(());
            }
            Augment::OneOf(v) => {
                if v.is_empty() {
                    return Err(invalid("one_of", "[]", "needs at least one augmentation"));
                }
                let i = rng.below(v.len() as u64) as usize;
                return v[i].apply_inner(y, sr, rng, log);
            }
            Augment::RandomApply { p, inner } => {
                if !(p.is_finite() && (0.0..=1.0).contains(p)) {
                    return Err(invalid("p", p, "must be a probability in [0, 1]"));
                }
                if rng.uniform() < *p {
                    inner.apply_inner(y, sr, rng, log)?;
                }
                return Ok(());
            }
        };
        run(&rec, y, sr)?;
        log.push(rec);
        Ok(())
    }
}

impl Range {
    /// This range replaced by `[lo, hi]` (builder convenience; validated when drawn).
    pub fn with(self, lo: f64, hi: f64) -> Self {
        Self { lo, hi }
    }
}

fn kind_code(k: FilterKind) -> f64 {
    match k {
        FilterKind::LowPass => 0.0,
        FilterKind::HighPass => 1.0,
        FilterKind::BandPass => 2.0,
        FilterKind::LowShelf => 3.0,
        FilterKind::HighShelf => 4.0,
        FilterKind::Peaking => 5.0,
    }
}

fn kind_from_code(c: f64) -> Result<FilterKind> {
    Ok(match c as i64 {
        0 => FilterKind::LowPass,
        1 => FilterKind::HighPass,
        2 => FilterKind::BandPass,
        3 => FilterKind::LowShelf,
        4 => FilterKind::HighShelf,
        5 => FilterKind::Peaking,
        _ => return Err(AugmentError::Replay(format!("unknown filter kind {c}"))),
    })
}

fn mode(r: &Applied) -> PhaseMode {
    if r.get("phase_lock").unwrap_or(0.0) != 0.0 {
        PhaseMode::IdentityLocking
    } else {
        PhaseMode::Librosa
    }
}

/// Applies one record with its fixed parameters.
fn run(r: &Applied, y: &mut Vec<f32>, sr: u32) -> Result<()> {
    match r.name.as_str() {
        "time_stretch" => *y = time_stretch(y, r.need("rate")?, mode(r))?,
        "pitch_shift" => {
            let bpo = r.need("bins_per_octave")?;
            if !(bpo >= 1.0 && bpo.fract() == 0.0) {
                return Err(invalid(
                    "bins_per_octave",
                    bpo,
                    "must be a positive integer",
                ));
            }
            *y = pitch_shift(y, r.need("n_steps")?, bpo as u32, mode(r))?
        }
        "gain" => simple::gain(y, r.need("db")?)?,
        "noise" => {
            let color = if r.need("pink")? != 0.0 {
                NoiseColor::Pink
            } else {
                NoiseColor::White
            };
            simple::add_noise(y, r.need("snr_db")?, color, r.need("seed")? as u64)?
        }
        "polarity" => simple::invert_polarity(y),
        "crop_pad" => {
            *y = simple::crop_or_pad(y, r.need("length")? as usize, r.need("offset")? as usize)?
        }
        "shift" => simple::time_shift(
            y,
            finite("samples", r.need("samples")?)? as i64,
            r.need("rollover")? != 0.0,
        ),
        "filter" => biquad(
            y,
            sr,
            kind_from_code(r.need("kind")?)?,
            r.need("freq")?,
            r.need("q")?,
            r.need("gain_db")?,
        )?,
        "compress" => compress(
            y,
            sr,
            &Compressor {
                threshold_db: r.need("threshold_db")?,
                ratio: r.need("ratio")?,
                ..Default::default()
            },
        )?,
        "clip" => simple::clip(y, r.need("threshold")?)?,
        "background" => {
            return Err(AugmentError::Replay(
                "background needs its audio: use Augment::Background".into(),
            ))
        }
        other => return Err(AugmentError::Replay(format!("unknown transform {other:?}"))),
    }
    Ok(())
}

/// Re-applies recorded transforms in order (bit-identical to the original run, except
/// `background`, which needs its audio).
pub fn replay(records: &[Applied], y: &[f32], sr: u32) -> Result<Vec<f32>> {
    crate::error::check_signal(y)?;
    let mut v = y.to_vec();
    for r in records {
        run(r, &mut v, sr)?;
    }
    Ok(v)
}

/// Augments many signals in parallel; item `i` uses `Rng::for_item(seed, i)`, so results
/// do not depend on the number of threads or their scheduling.
pub fn apply_batch(
    aug: &Augment,
    items: &[Vec<f32>],
    sr: u32,
    seed: u64,
) -> Vec<Result<(Vec<f32>, Vec<Applied>)>> {
    use rayon::prelude::*;
    items
        .par_iter()
        .enumerate()
        .map(|(i, y)| {
            let mut rng = Rng::for_item(seed, i as u64);
            let mut v = y.clone();
            let mut log = Vec::new();
            aug.apply(&mut v, sr, &mut rng, &mut log)?;
            Ok((v, log))
        })
        .collect()
}
