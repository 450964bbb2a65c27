//! A small labelled set generated on the spot: four synthetic "dances" that differ in
//! tempo, metre and instrumentation, written as WAV files with a CSV manifest in the
//! layout of `ballroom8` (`path,label,tempo_bpm,split`).
//!
//! It exists so that the examples and quick experiments run on a fresh clone without the
//! real data set (`../shared/data/ballroom8`, not in the repository). The classes are
//! easy on purpose — tempo ranges do not overlap and each has its own percussion — so a
//! working pipeline reaches high accuracy in seconds; figures on it say nothing about
//! real music.
//!
//! ```
//! use mirkit_train::data::{CsvOptions, Dataset};
//! use mirkit_train::toy::{write_toy_set, ToyOptions};
//! let dir = std::env::temp_dir().join(format!("mirkit-toy-doc-{}", std::process::id()));
//! let opts = ToyOptions { clips_per_class: 3, seconds: 1.0, ..ToyOptions::default() };
//! let manifest = write_toy_set(&dir, &opts)?;
//! let ds = Dataset::csv_manifest(&manifest, &CsvOptions::default())?;
//! assert_eq!(ds.classes, ["Jive", "Samba", "Tango", "Waltz"]);
//! assert_eq!(ds.split("test")?.len(), 4); // one test clip per class
//! # std::fs::remove_dir_all(&dir).ok();
//! # Ok::<(), mirkit_train::TrainError>(())
//! ```

use crate::{Result, TrainError};
use mirkit_core::rng::Rng;
use mirkit_core::AudioBuffer;
use std::path::{Path, PathBuf};

/// The classes, sorted as [`crate::data::Dataset`] sorts them.
pub const TOY_CLASSES: [&str; 4] = ["Jive", "Samba", "Tango", "Waltz"];

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct ToyOptions {
    /// Clips per class (at least 3: one each for train, valid and test); a sixth of them
    /// (at least one) go to `valid`, a sixth to `test`.
    pub clips_per_class: usize,
    /// Length of each clip in seconds (0.5–600).
    pub seconds: f32,
    /// Sample rate of the WAV files (8 kHz–96 kHz).
    pub sample_rate: u32,
    /// Seed: the same seed writes the same files, bit for bit.
    pub seed: u64,
}

impl Default for ToyOptions {
    /// 12 clips of 6 s per class at 22.05 kHz, seed 0 (48 files, ~13 MB).
    fn default() -> Self {
        Self {
            clips_per_class: 12,
            seconds: 6.0,
            sample_rate: 22_050,
            seed: 0,
        }
    }
}

/// A class's rhythm: tempo range (bpm), beats per bar, and what plays on each beat.
struct Style {
    bpm: (f64, f64),
    beats: usize,
}

fn style(class: usize) -> Style {
    match class {
        0 => Style {
            bpm: (164.0, 176.0),
            beats: 4,
        }, // Jive
        1 => Style {
            bpm: (98.0, 106.0),
            beats: 2,
        }, // Samba
        2 => Style {
            bpm: (124.0, 132.0),
            beats: 4,
        }, // Tango
        _ => Style {
            bpm: (84.0, 92.0),
            beats: 3,
        }, // Waltz
    }
}

/// Adds a decaying sine (pitch glide from `f0` to `f1`) at sample `at`.
fn tone(out: &mut [f32], sr: f64, at: usize, f0: f64, f1: f64, decay_s: f64, gain: f64) {
    let len = ((decay_s * 5.0) * sr) as usize;
    let mut phase = 0.0f64;
    for (i, o) in out.iter_mut().skip(at).take(len).enumerate() {
        let t = i as f64 / sr;
        let f = f1 + (f0 - f1) * (-t / (decay_s * 0.5)).exp();
        phase += 2.0 * std::f64::consts::PI * f / sr;
        *o += (gain * (-t / decay_s).exp() * phase.sin()) as f32;
    }
}

/// Adds a burst of noise at sample `at`; `bright` in (0, 1): 0 dull, 1 hiss (a one-pole
/// high-pass on white noise).
fn noise(out: &mut [f32], rng: &mut Rng, sr: f64, at: usize, decay_s: f64, gain: f64, bright: f64) {
    let len = ((decay_s * 5.0) * sr) as usize;
    let (mut prev_in, mut prev_out) = (0.0f64, 0.0f64);
    for (i, o) in out.iter_mut().skip(at).take(len).enumerate() {
        let w = rng.range(-1.0, 1.0);
        // y[n] = a (y[n-1] + x[n] - x[n-1]); a near 1 keeps more low frequencies
        let hp = bright * (prev_out + w - prev_in);
        let y = hp + (1.0 - bright) * w * 0.3;
        prev_in = w;
        prev_out = hp;
        *o += (gain * (-(i as f64) / sr / decay_s).exp() * y) as f32;
    }
}

/// One clip of `class`: its tempo (bpm) and samples.
fn clip(class: usize, opts: &ToyOptions, rng: &mut Rng) -> (f64, Vec<f32>) {
    let sr = f64::from(opts.sample_rate);
    let n = (f64::from(opts.seconds) * sr).round() as usize;
    let mut out = vec![0f32; n];
    let st = style(class);
    let bpm = rng.range(st.bpm.0, st.bpm.1);
    let beat = 60.0 / bpm * sr;
    // a pentatonic melody in a random key, one note per beat, the same in every class
    let root = 220.0 * 2f64.powf(rng.range(0.0, 12.0).floor() / 12.0);
    let scale = [0.0, 2.0, 4.0, 7.0, 9.0];
    let start = rng.range(0.0, beat);
    let mut b = 0usize;
    loop {
        let at = (start + b as f64 * beat) as usize;
        if at >= n {
            break;
        }
        let pos = b % st.beats;
        let step = scale[rng.below(5) as usize] + 12.0 * rng.below(2) as f64;
        let f = root * 2f64.powf(step / 12.0);
        tone(&mut out, sr, at, f, f, 0.25, 0.12);
        let half = (at as f64 + beat / 2.0) as usize;
        match class {
            0 => {
                // Jive: kick on 1 and 3, snare on 2 and 4, swung hi-hats (2/3 of a beat)
                if pos.is_multiple_of(2) {
                    tone(&mut out, sr, at, 150.0, 50.0, 0.08, 0.8);
                } else {
                    noise(&mut out, rng, sr, at, 0.06, 0.5, 0.6);
                    tone(&mut out, sr, at, 200.0, 180.0, 0.05, 0.3);
                }
                noise(&mut out, rng, sr, at, 0.015, 0.25, 0.95);
                let swung = (at as f64 + beat * 2.0 / 3.0) as usize;
                noise(&mut out, rng, sr, swung, 0.015, 0.2, 0.95);
            }
            1 => {
                // Samba: shaker on every sixteenth, surdo on beat 2, a tamborim off-beat
                for s in 0..4 {
                    let t = (at as f64 + s as f64 * beat / 4.0) as usize;
                    let accent = if s == 0 { 0.25 } else { 0.15 };
                    noise(&mut out, rng, sr, t, 0.02, accent, 0.98);
                }
                if pos == 1 {
                    tone(&mut out, sr, at, 90.0, 70.0, 0.25, 0.8);
                }
                let off = (at as f64 + beat * 3.0 / 4.0) as usize;
                tone(&mut out, sr, off, 900.0, 880.0, 0.03, 0.2);
            }
            2 => {
                // Tango: staccato bass on every beat (odd harmonics: square-like), an
                // accented push on the last eighth of the bar
                let f = root / 2.0;
                for h in [1.0, 3.0, 5.0] {
                    tone(&mut out, sr, at, f * h, f * h, 0.04, 0.5 / h);
                }
                if pos == st.beats - 1 {
                    noise(&mut out, rng, sr, half, 0.05, 0.35, 0.4);
                    for h in [1.0, 3.0, 5.0] {
                        tone(&mut out, sr, half, f * h, f * h, 0.04, 0.5 / h);
                    }
                }
            }
            _ => {
                // Waltz: a low bass note on 1, a soft three-note chord on 2 and 3
                if pos == 0 {
                    tone(&mut out, sr, at, root / 2.0, root / 2.0, 0.35, 0.6);
                } else {
                    for r in [1.0, 1.25, 1.5] {
                        tone(&mut out, sr, at, root * r, root * r, 0.15, 0.15);
                    }
                }
            }
        }
        b += 1;
    }
    // level and a little background noise
    let gain = rng.range(0.3, 0.6);
    let peak = out.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
    for x in &mut out {
        *x = (f64::from(*x / peak) * gain + 0.003 * rng.range(-1.0, 1.0)) as f32;
    }
    (bpm, out)
}

/// Writes the set under `dir` (`CLASS/class_NN.wav` and `metadata.csv`, replacing files
/// of an earlier call) and returns the manifest's path, ready for
/// [`crate::data::Dataset::csv_manifest`]. The split is fixed per class: a sixth (at
/// least one clip) valid, a sixth test, the rest train.
///
/// ```
/// use mirkit_train::toy::{write_toy_set, ToyOptions};
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-{}-{}", std::process::id(), line!()));
/// let opts = ToyOptions { clips_per_class: 3, seconds: 4.0, sample_rate: 16000, seed: 0 };
/// let manifest = write_toy_set(&dir, &opts)?; // path,label,tempo_bpm,split
/// assert!(manifest.ends_with("metadata.csv"));
/// assert!(dir.join("Waltz/waltz_00.wav").exists());
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), mirkit_train::TrainError>(())
/// ```
pub fn write_toy_set(dir: impl AsRef<Path>, opts: &ToyOptions) -> Result<PathBuf> {
    let dir = dir.as_ref();
    let invalid = |name: &str, value: String, why: &str| TrainError::Invalid {
        name: name.into(),
        value,
        why: why.into(),
    };
    if opts.clips_per_class < 3 {
        return Err(invalid(
            "clips_per_class",
            opts.clips_per_class.to_string(),
            "at least 3 (one each for train, valid and test)",
        ));
    }
    if !(0.5..=600.0).contains(&opts.seconds) {
        return Err(invalid(
            "seconds",
            opts.seconds.to_string(),
            "between 0.5 and 600",
        ));
    }
    if !(8_000..=96_000).contains(&opts.sample_rate) {
        return Err(invalid(
            "sample_rate",
            opts.sample_rate.to_string(),
            "between 8000 and 96000 Hz",
        ));
    }
    let io = crate::error::io_err;
    let n = opts.clips_per_class;
    let held = (n / 6).max(1);
    let mut rows = String::from("path,label,tempo_bpm,split\n");
    for (c, name) in TOY_CLASSES.iter().enumerate() {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).map_err(|e| io(&sub, e))?;
        for i in 0..n {
            // each clip from (seed, class, index) alone: any subset regenerates the same
            let mut rng = Rng::for_item(opts.seed, (c * 1_000_003 + i) as u64);
            let (bpm, samples) = clip(c, opts, &mut rng);
            let file = format!("{}_{i:02}.wav", name.to_lowercase());
            let audio = AudioBuffer::from_mono(samples, opts.sample_rate)?;
            mirkit_io::write_wav(sub.join(&file), &audio, mirkit_io::WavFormat::Pcm16)?;
            let split = if i < held {
                "valid"
            } else if i < 2 * held {
                "test"
            } else {
                "train"
            };
            rows.push_str(&format!("{name}/{file},{name},{bpm:.2},{split}\n"));
        }
    }
    let manifest = dir.join("metadata.csv");
    mirkit_core::npy::write_atomic(&manifest, |w| std::io::Write::write_all(w, rows.as_bytes()))?;
    Ok(manifest)
}

/// The labelled set the examples use: `$BALLROOM8` if set, else
/// `../shared/data/ballroom8` if it exists (its `metadata.csv`); otherwise a note on
/// standard error and [`write_toy_set`] into `fallback` with the default options.
pub fn ballroom8_or_toy(fallback: impl AsRef<Path>) -> Result<PathBuf> {
    let root = std::env::var("BALLROOM8").unwrap_or_else(|_| "../shared/data/ballroom8".into());
    let manifest = Path::new(&root).join("metadata.csv");
    if manifest.is_file() {
        return Ok(manifest);
    }
    let fallback = fallback.as_ref();
    eprintln!(
        "note: {} not found (set $BALLROOM8 to the ballroom8 folder); using a small \
         synthetic set of four dances generated in {} instead — figures on it say nothing \
         about real music",
        manifest.display(),
        fallback.display()
    );
    write_toy_set(fallback, &ToyOptions::default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{CsvOptions, Dataset};

    #[test]
    fn toy_set_is_seeded_split_and_loadable() {
        let d = mirkit_core::testing::TmpDir::new("mirkit-toy-");
        let opts = ToyOptions {
            clips_per_class: 6,
            seconds: 2.0,
            sample_rate: 16_000,
            seed: 7,
        };
        let m = write_toy_set(d.join("a"), &opts).unwrap();
        let ds = Dataset::csv_manifest(&m, &CsvOptions::default()).unwrap();
        assert_eq!(ds.classes, TOY_CLASSES);
        assert_eq!(ds.split("train").unwrap().len(), 16);
        assert_eq!(ds.split("valid").unwrap().len(), 4);
        assert_eq!(ds.split("test").unwrap().len(), 4);
        // same seed, same bytes; another seed, other audio
        write_toy_set(d.join("b"), &opts).unwrap();
        write_toy_set(
            d.join("c"),
            &ToyOptions {
                seed: 8,
                ..opts.clone()
            },
        )
        .unwrap();
        let read = |s: &str| std::fs::read(d.join(s).join("Waltz/waltz_03.wav")).unwrap();
        assert_eq!(read("a"), read("b"));
        assert_ne!(read("a"), read("c"));
        // the tempo column lies in each class's range, and the audio is 2 s, not silent
        let text = std::fs::read_to_string(&m).unwrap();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split(',').collect();
            let c = TOY_CLASSES.iter().position(|n| *n == f[1]).unwrap();
            let bpm: f64 = f[2].parse().unwrap();
            let (lo, hi) = style(c).bpm;
            assert!((lo..=hi).contains(&bpm), "{line}");
            let native = mirkit_io::LoadOptions {
                sr: None,
                ..Default::default()
            };
            let y = mirkit_io::load(d.join("a").join(f[0]), &native).unwrap();
            assert_eq!(y.samples().len(), 32_000);
            let peak = y.samples().iter().fold(0f32, |m, x| m.max(x.abs()));
            assert!(peak > 0.25, "{line}: peak {peak}");
        }
    }

    #[test]
    fn toy_options_are_checked() {
        let d = mirkit_core::testing::TmpDir::new("mirkit-toy-bad-");
        for (o, name) in [
            (
                ToyOptions {
                    clips_per_class: 2,
                    ..ToyOptions::default()
                },
                "clips_per_class",
            ),
            (
                ToyOptions {
                    seconds: f32::NAN,
                    ..ToyOptions::default()
                },
                "seconds",
            ),
            (
                ToyOptions {
                    sample_rate: 0,
                    ..ToyOptions::default()
                },
                "sample_rate",
            ),
        ] {
            let e = write_toy_set(&*d, &o).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
        }
        assert!(
            std::fs::read_dir(&*d).unwrap().next().is_none(),
            "nothing written"
        );
    }
}
