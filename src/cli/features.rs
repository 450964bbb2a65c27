//! `mirkit features`: a (log-)mel spectrogram, spectrogram or MFCC of a file or of every
//! audio file of a folder, as float32 `.npy` (and PNG).

use super::args::{self, MelNormArg, PadModeArg, PresetArg, ResampleArg, SampleRate, WindowArg};
use super::error::{status, CliError, CliResult};
use clap::Args;
use mirkit::dsp::{Compression, DbConfig, DbRef, FeatureConfig, MelScale, MfccSettings, Preset};
use mirkit::pipeline::{features_to_npy, ReadOptions, Timings};
use rayon::prelude::*;
use std::path::Path;
use std::path::PathBuf;

/// Options of `mirkit features`.
#[derive(Args, Clone)]
pub struct FeatArgs {
    /// Input file or folder.
    input: PathBuf,
    /// Output .npy file (or folder when IN is a folder).
    #[arg(short, long)]
    output: PathBuf,
    /// Starting point (the options below override it).
    #[arg(long, value_enum, default_value_t = PresetArg::Librosa)]
    preset: PresetArg,
    /// Sample rate in Hz, or "native".
    #[arg(long, value_parser = args::sample_rate)]
    sr: Option<SampleRate>,
    /// FFT size.
    #[arg(long)]
    n_fft: Option<usize>,
    /// Hop length in samples.
    #[arg(long)]
    hop_length: Option<usize>,
    /// Window length in samples (default n_fft).
    #[arg(long)]
    win_length: Option<usize>,
    /// Window.
    #[arg(long, value_enum)]
    window: Option<WindowArg>,
    /// Number of mel bands; 0 writes a linear-frequency spectrogram.
    #[arg(long)]
    n_mels: Option<usize>,
    /// Lowest mel edge in Hz.
    #[arg(long)]
    fmin: Option<f32>,
    /// Highest mel edge in Hz (default sr/2).
    #[arg(long)]
    fmax: Option<f32>,
    /// HTK mel formula instead of Slaney's.
    #[arg(long)]
    htk: bool,
    /// Filter normalisation.
    #[arg(long, value_enum)]
    norm: Option<MelNormArg>,
    /// Centre frames (pad n_fft/2 each side).
    #[arg(long, conflicts_with = "no_center")]
    center: bool,
    /// Do not centre frames.
    #[arg(long)]
    no_center: bool,
    /// Padding when centring.
    #[arg(long, value_enum)]
    pad_mode: Option<PadModeArg>,
    /// Exponent of the magnitude (2 power, 1 magnitude).
    #[arg(long)]
    power: Option<f32>,
    /// Convert to decibels (librosa.power_to_db, ref=1, amin=1e-10).
    #[arg(long)]
    db: bool,
    /// With --db: dynamic range below the peak, or "none" (default 80).
    #[arg(long, value_parser = args::top_db)]
    top_db: Option<args::TopDb>,
    /// Write N MFCCs (DCT-II of the log-mel) instead of the mel spectrogram.
    #[arg(long)]
    mfcc: Option<usize>,
    /// Cepstral lifter for --mfcc.
    #[arg(long, default_value_t = 0.0)]
    lifter: f32,
    /// Start reading at this many seconds.
    #[arg(long, default_value_t = 0.0)]
    offset: f64,
    /// Read at most this many seconds.
    #[arg(long)]
    duration: Option<f64>,
    /// Resampler.
    #[arg(long, value_enum, default_value_t = ResampleArg::High)]
    resample: ResampleArg,
    /// Also draw the result as a PNG with axes (for a folder: one PNG beside each .npy).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Parallel jobs for a folder (default: all cores).
    #[arg(short, long)]
    jobs: Option<usize>,
    /// Print where the time went (decode, resample, features, write) on standard error;
    /// for a folder, summed over the files.
    #[arg(long)]
    timings: bool,
}

/// The feature configuration the options describe; `native_sr` is the file's own rate
/// (`--sr native`).
fn build_config(a: &FeatArgs, native_sr: u32) -> Result<FeatureConfig, CliError> {
    let preset: Preset = a.preset.into();
    let mut c = FeatureConfig::preset(preset);
    match a.sr {
        Some(SampleRate::Native) => c.sample_rate = native_sr,
        Some(SampleRate::Hz(hz)) => c.sample_rate = hz,
        None => {}
    }
    if let Some(n) = a.n_fft {
        c.stft.n_fft = n;
        c.stft.win_length = n;
        if a.hop_length.is_none() && preset == Preset::Librosa {
            c.stft.hop_length = n / 4;
        }
    }
    if let Some(h) = a.hop_length {
        c.stft.hop_length = h;
    }
    if let Some(w) = a.win_length {
        c.stft.win_length = w;
    }
    if let Some(w) = a.window {
        c.stft.window = w.into();
    }
    if a.center {
        c.stft.center = true;
    }
    if a.no_center {
        c.stft.center = false;
    }
    if let Some(p) = a.pad_mode {
        c.stft.pad_mode = p.into();
    }
    if let Some(p) = a.power {
        c.power = p;
    }
    if a.n_mels == Some(0) {
        c.mel = None;
    } else {
        let mut m = c.mel.clone().unwrap_or_default();
        if let Some(n) = a.n_mels {
            m.n_mels = n;
        }
        if let Some(f) = a.fmin {
            m.fmin = f;
        }
        if a.fmax.is_some() {
            m.fmax = a.fmax;
        }
        if a.htk {
            m.scale = MelScale::Htk;
        }
        if let Some(n) = a.norm {
            m.norm = n.into();
        }
        c.mel = Some(m);
    }
    let top_db = a.top_db.map(|t| t.0).unwrap_or(Some(80.0));
    if a.db {
        c.compression = Compression::Db(DbConfig {
            reference: DbRef::Value(1.0),
            amin: 1e-10,
            top_db,
        });
    } else if a.top_db.is_some() {
        return Err(CliError::Usage("--top-db needs --db".into()));
    }
    if let Some(n) = a.mfcc {
        if c.compression == Compression::None {
            // librosa.feature.mfcc: power_to_db(melspectrogram) with top_db=80
            c.compression = Compression::Db(DbConfig {
                reference: DbRef::Value(1.0),
                amin: 1e-10,
                top_db,
            });
        }
        c.mfcc = Some(MfccSettings {
            n_mfcc: n,
            lifter: a.lifter,
        });
    }
    c.validate().map_err(|e| CliError::Usage(e.to_string()))?;
    Ok(c)
}

fn one_file(
    a: &FeatArgs,
    input: &Path,
    output: &Path,
    png: Option<&Path>,
) -> Result<(String, Timings), CliError> {
    let t0 = std::time::Instant::now();
    let native = mirkit::io::info(input)?.sample_rate;
    let cfg = build_config(a, native)?;
    if matches!(a.sr, Some(SampleRate::Native)) {
        args::detail(format!("{}: native rate {native} Hz", input.display()));
    }
    let read = ReadOptions {
        offset: a.offset,
        duration: a.duration,
        quality: a.resample.into(),
    };
    let s = features_to_npy(input, output, &cfg, &read)?;
    if let Some(p) = png {
        let name = input
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        mirkit::pipeline::features_png(output, p, &cfg, &name)?;
    }
    let mut timings = s.timings;
    timings.total = t0.elapsed();
    Ok((
        format!(
            "{} -> {} ({} x {})",
            input.display(),
            output.display(),
            s.rows,
            s.frames
        ),
        timings,
    ))
}

/// The resolved feature configuration in one line, for `-v`; `native`: each file keeps
/// its own rate (`--sr native`), not yet known.
fn describe(c: &FeatureConfig, native: bool) -> String {
    let rate = if native {
        "each file's own rate".to_string()
    } else {
        format!("{} Hz", c.sample_rate)
    };
    let what = match (&c.mfcc, &c.mel) {
        (Some(m), _) => format!("{} MFCC", m.n_mfcc),
        (None, Some(_)) => "mel spectrogram".to_string(),
        (None, None) => "spectrogram".to_string(),
    };
    let mel = c.mel.as_ref().map_or(String::new(), |m| {
        format!(
            ", {} mels {}–{} Hz ({:?}, {:?})",
            m.n_mels,
            m.fmin,
            match (m.fmax, native) {
                (Some(f), _) => f.to_string(),
                (None, true) => "sr/2".to_string(),
                (None, false) => (c.sample_rate as f32 / 2.0).to_string(),
            },
            m.scale,
            m.norm
        )
    });
    let s = &c.stft;
    format!(
        "features: {what} at {rate}; n_fft {}, hop {}, window {} ({:?}), center {} ({:?}), power {}{mel}; compression {:?}",
        s.n_fft,
        s.hop_length,
        s.win_length,
        s.window,
        s.center,
        s.pad_mode,
        c.power,
        c.compression
    )
}

/// Where each input of a folder run writes: its path under `out` with the extension
/// `.npy`; inputs that would share an output (`x.wav` and `x.flac`) keep their extension
/// instead (`x.wav.npy`, `x.flac.npy`), with a note on standard error, so no result
/// overwrites another.
fn mirrored_outputs(input: &Path, out: &Path, files: &[PathBuf]) -> Vec<PathBuf> {
    let plain: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            out.join(f.strip_prefix(input).unwrap_or(f))
                .with_extension("npy")
        })
        .collect();
    let mut count = std::collections::HashMap::new();
    for p in &plain {
        *count.entry(p.clone()).or_insert(0usize) += 1;
    }
    files
        .iter()
        .zip(plain)
        .map(|(f, p)| {
            if count[&p] == 1 {
                return p;
            }
            let mut name = f.file_name().unwrap_or_default().to_os_string();
            name.push(".npy");
            let q = p.with_file_name(name);
            eprintln!(
                "note: several inputs map to {}: {} is written as {}",
                p.display(),
                f.display(),
                q.display()
            );
            q
        })
        .collect()
}

/// Runs `mirkit features`.
pub fn run(a: FeatArgs) -> CliResult {
    // validate the options once, before touching any file, for a clear message (the
    // native rate is not known yet: any rate checks the rest)
    let probe = build_config(&a, 22050)?;
    // as librosa warns: bands that no FFT bin falls into stay zero
    if let Some(mel) = &probe.mel {
        if !matches!(a.sr, Some(SampleRate::Native)) {
            let fb = mirkit::dsp::MelFilterbank::new(&mirkit::dsp::MelConfig::new(
                probe.sample_rate,
                probe.stft.n_fft,
                mel.clone(),
            ))?;
            let empty = fb.empty_bands();
            if !empty.is_empty() {
                eprintln!(
                    "warning: {} of {} mel bands are empty at {} Hz with n_fft {} (their rows \
                     are all zero); use fewer --n-mels or a larger --n-fft",
                    empty.len(),
                    mel.n_mels,
                    probe.sample_rate,
                    probe.stft.n_fft
                );
            }
        }
    }
    args::detail(describe(&probe, matches!(a.sr, Some(SampleRate::Native))));
    let timings_wanted = a.timings || args::verbose();
    if !a.input.is_dir() {
        // `-`: standard input / standard output (the summary then goes to stderr)
        let input = args::Input::new(&a.input)?;
        let output = args::Output::new(&a.output, "npy");
        let (msg, t) = one_file(&a, input.path(), output.path(), a.png.as_deref())?;
        let msg = msg
            .replace(&input.path().display().to_string(), &input.name())
            .replace(&output.path().display().to_string(), &output.name());
        let data_on_stdout = output.is_stdout();
        output.finish()?;
        args::summary(&msg, data_on_stdout);
        if timings_wanted {
            eprintln!("timings: {t}");
        }
        return Ok(status(0));
    }
    if args::is_dash(&a.output) {
        return Err(CliError::Usage(
            "-o - (standard output) takes one file's features, not a folder's".into(),
        ));
    }
    let files = mirkit::io::audio_files(&a.input)?;
    args::sweep_stale(&a.output, true);
    if files.is_empty() {
        return Err(CliError::Failed(format!(
            "no audio files under {}",
            a.input.display()
        )));
    }
    if let Some(j) = a.jobs {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build_global();
    }
    mirkit::threads::inline_single_thread();
    let pb = args::progress(files.len());
    let wall = std::time::Instant::now();
    let sum = std::sync::Mutex::new(Timings::default());
    let outputs = mirrored_outputs(&a.input, &a.output, &files);
    let failures: Vec<String> = files
        .par_iter()
        .zip(&outputs)
        .filter_map(|(f, out)| {
            let res = out
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .map_err(|e| CliError::Failed(format!("{}: {e}", out.display())))
                .and_then(|_| {
                    let png = a.png.as_ref().map(|_| out.with_extension("png"));
                    one_file(&a, f, out, png.as_deref())
                });
            pb.inc(1);
            match res {
                Ok((msg, t)) => {
                    args::detail_above(&pb, format!("{msg} in {:.3} s", t.total.as_secs_f64()));
                    *sum.lock().expect("no panics while held") += t;
                    None
                }
                Err(e) => {
                    pb.println(format!("skipped: {e}"));
                    Some(e.to_string())
                }
            }
        })
        .collect();
    pb.finish_and_clear();
    args::summary(
        &format!(
            "{} of {} files written under {}",
            files.len() - failures.len(),
            files.len(),
            a.output.display()
        ),
        false,
    );
    if timings_wanted {
        eprintln!(
            "timings (summed over {} files): {}; wall clock {:.3} s",
            files.len() - failures.len(),
            sum.into_inner().expect("no panics while held"),
            wall.elapsed().as_secs_f64()
        );
    }
    if !failures.is_empty() {
        eprintln!("{} file(s) failed:", failures.len());
        for f in &failures {
            eprintln!("  {f}");
        }
    }
    Ok(status(failures.len()))
}
