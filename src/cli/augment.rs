//! `mirkit augment`: pitch shift, time stretch, gain and noise on one file, seeded, with a
//! JSON record of what was drawn.

use super::args::{self, NoiseColorArg, SampleRate, WavFormatArg};
use super::error::{status, CliError, CliResult};
use clap::Args;
use mirkit::augment::{Augment, PhaseMode, Range, Rng};
use std::path::PathBuf;

/// Options of `mirkit augment`.
#[derive(Args, Clone)]
pub struct AugArgs {
    /// Input audio file.
    input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    output: PathBuf,
    /// Pitch shift in steps (semitones by default), e.g. 2, -1.5 or -2:2.
    #[arg(long, allow_hyphen_values = true, value_parser = args::range)]
    pitch_shift: Option<Range>,
    /// Steps per octave for --pitch-shift (24: quarter tones).
    #[arg(long, default_value_t = 12)]
    bins_per_octave: u32,
    /// Time-stretch rate (> 1 faster), e.g. 1.25 or 0.81:1.23.
    #[arg(long, value_parser = args::range)]
    time_stretch: Option<Range>,
    /// Gain in dB, e.g. -6 or -6:0.
    #[arg(long, allow_hyphen_values = true, value_parser = args::range)]
    gain: Option<Range>,
    /// Add noise at this SNR in dB, e.g. 20 or 10:30.
    #[arg(long, allow_hyphen_values = true, value_parser = args::range)]
    noise_snr: Option<Range>,
    /// Noise colour.
    #[arg(long, value_enum, default_value_t = NoiseColorArg::White)]
    noise_color: NoiseColorArg,
    /// Identity phase locking in the vocoder (less phasiness than librosa's).
    #[arg(long)]
    phase_lock: bool,
    /// Random seed (ranges and noise).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write what was applied (transforms and drawn parameters) as JSON.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Sample rate to work at, or "native".
    #[arg(long, value_parser = args::sample_rate, default_value = "native")]
    sr: SampleRate,
    /// Output sample format.
    #[arg(long, value_enum, default_value_t = WavFormatArg::Float32)]
    format: WavFormatArg,
}

/// Runs `mirkit augment`.
pub fn run(a: AugArgs) -> CliResult {
    let mode = if a.phase_lock {
        PhaseMode::IdentityLocking
    } else {
        PhaseMode::Librosa
    };
    // the library's limits, checked before any file is read: a usage error (exit 2)
    let bounded = |flag: &str, r: Option<Range>, lo: f64, hi: f64| match r {
        Some(r) if r.lo < lo || r.hi > hi => Err(CliError::Usage(format!(
            "{flag} {}:{}: must be within [{lo}, {hi}] dB",
            r.lo, r.hi
        ))),
        _ => Ok(()),
    };
    use mirkit::augment::{MAX_GAIN_DB, SNR_DB_RANGE};
    bounded("--gain", a.gain, -MAX_GAIN_DB, MAX_GAIN_DB)?;
    bounded("--noise-snr", a.noise_snr, SNR_DB_RANGE.0, SNR_DB_RANGE.1)?;
    let mut chain = Vec::new();
    if let Some(steps) = a.pitch_shift {
        chain.push(Augment::PitchShift {
            steps,
            bins_per_octave: a.bins_per_octave,
            mode,
        });
    }
    if let Some(rate) = a.time_stretch {
        chain.push(Augment::TimeStretch { rate, mode });
    }
    if let Some(db) = a.gain {
        chain.push(Augment::Gain { db });
    }
    if let Some(snr_db) = a.noise_snr {
        chain.push(Augment::Noise {
            snr_db,
            color: a.noise_color.into(),
        });
    }
    let sr = match a.sr {
        SampleRate::Native => None,
        SampleRate::Hz(hz) => Some(hz),
    };
    // `-`: standard input / standard output (the summary then goes to stderr)
    let input = args::Input::new(&a.input)?;
    let output = args::Output::new(&a.output, "wav");
    let y = mirkit::io::load(
        input.path(),
        &mirkit::io::LoadOptions {
            sr,
            ..Default::default()
        },
    )?;
    let rate = y.sample_rate();
    let mut v = y.into_mono_vec();
    let mut log = Vec::new();
    Augment::Chain(chain)
        .apply(&mut v, rate, &mut Rng::new(a.seed), &mut log)
        .map_err(|e| super::error::CliError::Failed(format!("{}: {e}", input.name())))?;
    let out = mirkit::core::AudioBuffer::from_mono(v, rate)?;
    if let Some(r) = &a.record {
        let json = mirkit::augment::records_to_json(&log);
        mirkit::core::npy::write_atomic(r, |w| std::io::Write::write_all(w, json.as_bytes()))?;
    }
    mirkit::io::write_wav(output.path(), &out, a.format.into())?;
    let what: Vec<String> = log
        .iter()
        .map(|r| {
            format!(
                "{}({})",
                r.name,
                r.params
                    .iter()
                    .map(|(k, v)| format!("{k}={v:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    let msg = format!(
        "{} -> {} [{}]",
        input.name(),
        output.name(),
        what.join("; ")
    );
    let data_on_stdout = output.is_stdout();
    output.finish()?;
    args::summary(&msg, data_on_stdout);
    Ok(status(0))
}
