//! Argument types shared by the subcommands: choices as clap `ValueEnum`s (so `--help`
//! lists them and a bad value is a usage error, exit 2) mapped onto the library's enums,
//! and value parsers for the options that take a number or a word.

use clap::ValueEnum;
use mirkit::dsp::{MelNorm, PadMode, Preset, WindowKind};
use mirkit::io::ResampleQuality;
use std::path::PathBuf;

/// `--preset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PresetArg {
    /// librosa 0.11 defaults (22.05 kHz, n_fft 2048, hop 512, 128 Slaney mels).
    Librosa,
    /// torchaudio defaults (16 kHz, n_fft 400, hop 200, 128 HTK mels).
    Torchaudio,
    /// Won et al. 2020's front end (16 kHz, n_fft 512, hop 256, 96 HTK mels, dB).
    Won2020,
    /// musicnn 0.1.0's front end (16 kHz, n_fft 512, hop 256, 96 Slaney mels, log10).
    Musicnn,
}

impl From<PresetArg> for Preset {
    fn from(p: PresetArg) -> Self {
        match p {
            PresetArg::Librosa => Preset::Librosa,
            PresetArg::Torchaudio => Preset::Torchaudio,
            PresetArg::Won2020 => Preset::Won2020,
            PresetArg::Musicnn => Preset::Musicnn,
        }
    }
}

/// `--window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WindowArg {
    /// Periodic Hann.
    #[value(alias = "hanning")]
    Hann,
    /// Hamming.
    Hamming,
    /// Blackman.
    Blackman,
    /// 4-term Blackman-Harris.
    #[value(alias = "blackman-harris")]
    Blackmanharris,
    /// All ones.
    #[value(alias = "rect", alias = "boxcar", alias = "ones")]
    Rectangular,
}

impl From<WindowArg> for WindowKind {
    fn from(w: WindowArg) -> Self {
        match w {
            WindowArg::Hann => WindowKind::Hann,
            WindowArg::Hamming => WindowKind::Hamming,
            WindowArg::Blackman => WindowKind::Blackman,
            WindowArg::Blackmanharris => WindowKind::BlackmanHarris,
            WindowArg::Rectangular => WindowKind::Rectangular,
        }
    }
}

/// `--pad-mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PadModeArg {
    /// Zeros.
    #[value(alias = "zeros")]
    Constant,
    /// Mirror without repeating the edge sample.
    Reflect,
    /// Repeat the edge sample.
    #[value(alias = "replicate")]
    Edge,
}

impl From<PadModeArg> for PadMode {
    fn from(p: PadModeArg) -> Self {
        match p {
            PadModeArg::Constant => PadMode::Constant,
            PadModeArg::Reflect => PadMode::Reflect,
            PadModeArg::Edge => PadMode::Edge,
        }
    }
}

/// `--norm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MelNormArg {
    /// Slaney's area normalisation.
    Slaney,
    /// No normalisation.
    None,
}

impl From<MelNormArg> for MelNorm {
    fn from(n: MelNormArg) -> Self {
        match n {
            MelNormArg::Slaney => MelNorm::Slaney,
            MelNormArg::None => MelNorm::None,
        }
    }
}

/// `--resample`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ResampleArg {
    /// Windowed sinc (within 61–88 dB of soxr_hq).
    #[value(alias = "hq", alias = "best")]
    High,
    /// FFT resampler.
    Fast,
}

impl From<ResampleArg> for ResampleQuality {
    fn from(r: ResampleArg) -> Self {
        match r {
            ResampleArg::High => ResampleQuality::High,
            ResampleArg::Fast => ResampleQuality::Fast,
        }
    }
}

/// A sample rate in Hz or `native` (the file's own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SampleRate {
    /// The file's own rate.
    Native,
    /// This rate.
    Hz(u32),
}

/// Parses `--sr`: `native` or a number of Hz within mirkit-io's accepted rates.
pub fn sample_rate(s: &str) -> Result<SampleRate, String> {
    if s == "native" {
        return Ok(SampleRate::Native);
    }
    match s.parse::<u32>() {
        Ok(v) if (mirkit::io::MIN_RATE..=mirkit::io::MAX_RATE).contains(&v) => {
            Ok(SampleRate::Hz(v))
        }
        Ok(v) => Err(format!(
            "{v} Hz is outside the rates mirkit reads and writes ({}–{} Hz)",
            mirkit::io::MIN_RATE,
            mirkit::io::MAX_RATE
        )),
        Err(_) => Err("a number of Hz or `native`".into()),
    }
}

/// `--top-db`: a dynamic range in dB, or none (a newtype: clap reads `Option<Option<_>>`
/// as a flag with an optional value).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopDb(pub Option<f32>);

/// Parses `--top-db`: a number of dB or `none`.
pub fn top_db(s: &str) -> Result<TopDb, String> {
    if s == "none" {
        return Ok(TopDb(None));
    }
    s.parse::<f32>()
        .map(|v| TopDb(Some(v)))
        .map_err(|_| "a number of dB or `none`".into())
}

/// Parses `--shard I/N` (0 ≤ I < N), or `auto`: the job array's own index and size
/// (`mirkit::pipeline::shard_from_env`).
pub fn shard(s: &str) -> Result<(usize, usize), String> {
    if s == "auto" {
        return mirkit::pipeline::shard_from_env(|k| std::env::var(k).ok())
            .map_err(|e| format!("--shard auto: {e}"));
    }
    match s
        .split_once('/')
        .map(|(i, n)| (i.parse::<usize>(), n.parse::<usize>()))
    {
        Some((Ok(i), Ok(n))) if n > 0 && i < n => Ok((i, n)),
        _ => Err("I/N with 0 <= I < N, e.g. 0/4, or auto".into()),
    }
}

/// Parses an augmentation value or range `LO:HI`.
pub fn range(s: &str) -> Result<mirkit::augment::Range, String> {
    let num = |v: &str| v.parse::<f64>().map_err(|e| format!("{v}: {e}"));
    let r = match s.split_once(':') {
        Some((a, b)) => mirkit::augment::Range::new(num(a)?, num(b)?),
        None => Ok(mirkit::augment::Range::fixed(num(s)?)),
    };
    r.map_err(|e| e.to_string())
}

/// `tag --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TagFormat {
    /// Aligned text, the top tags per file.
    Table,
    /// A JSON array, one object per file.
    Json,
    /// One row per file (and per window with --segments).
    Csv,
}

/// `embed --layers` and `finetune --layers`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LayersArg {
    /// The penultimate layer.
    Embedding,
    /// Every pooled layer concatenated (Choi et al. 2017), mean over the windows.
    All,
    /// Every pooled layer, maximum over the windows.
    AllMax,
    /// Every pooled layer, mean and maximum over the windows (twice `all`'s width).
    AllMeanMax,
}

impl From<LayersArg> for mirkit::transfer::embed::Layers {
    fn from(l: LayersArg) -> Self {
        match l {
            LayersArg::Embedding => Self::Embedding,
            LayersArg::All => Self::All,
            LayersArg::AllMax => Self::AllMax,
            LayersArg::AllMeanMax => Self::AllMeanMax,
        }
    }
}

/// `train|finetune --optimizer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptimizerArg {
    /// AdamW (decoupled weight decay).
    Adamw,
    /// SGD with Nesterov momentum 0.9.
    Sgd,
    /// Won et al. 2020's recipe: Adam, then SGD with reloads of the best model.
    Won2020,
}

/// `finetune --head`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum HeadArg {
    /// Logistic regression on frozen embeddings.
    Linear,
    /// One hidden layer (256, dropout 0.5) on frozen embeddings.
    Mlp,
    /// k nearest neighbours (cosine) on frozen embeddings.
    Knn,
    /// Fine-tune the network with a new output layer.
    Network,
}

/// `--task` of train/finetune/eval.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskArg {
    /// Classes from the label column (tags when `--tag-sep` is given).
    Classes,
    /// Continuous targets from the `--target` columns (heads on embeddings).
    Regression,
}

/// `finetune --loss` of a regression head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LossArg {
    /// Mean squared error.
    Mse,
    /// Huber loss with `--huber-delta` (in standard deviations of the target).
    Huber,
}

/// `eval --split`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitArg {
    /// Training split.
    Train,
    /// Validation split.
    Valid,
    /// Test split.
    Test,
}

/// Choices print as the word the command line takes (also in JSON reports).
macro_rules! display_as_value {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.to_possible_value().expect("no skipped variants").get_name())
            }
        }
    )*};
}
display_as_value!(OptimizerArg, HeadArg, SplitArg, LayersArg, TaskArg, LossArg);

/// `augment --noise-color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NoiseColorArg {
    /// Flat spectrum.
    White,
    /// 1/f spectrum.
    Pink,
}

impl From<NoiseColorArg> for mirkit::augment::NoiseColor {
    fn from(c: NoiseColorArg) -> Self {
        match c {
            NoiseColorArg::White => Self::White,
            NoiseColorArg::Pink => Self::Pink,
        }
    }
}

/// `augment --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WavFormatArg {
    /// 32-bit float.
    Float32,
    /// 16-bit integer.
    Pcm16,
}

impl From<WavFormatArg> for mirkit::io::WavFormat {
    fn from(f: WavFormatArg) -> Self {
        match f {
            WavFormatArg::Float32 => Self::Float32,
            WavFormatArg::Pcm16 => Self::Pcm16,
        }
    }
}

/// A progress bar over `n` files, hidden for a single file (and, as indicatif does,
/// when standard error is not a terminal).
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets `--quiet`: no progress bars and no summary lines; results, warnings and errors
/// are still printed.
pub fn set_quiet(q: bool) {
    QUIET.store(q, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `--quiet` was given.
pub fn quiet() -> bool {
    QUIET.load(std::sync::atomic::Ordering::Relaxed)
}

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Sets `-v/--verbose`: the resolved settings (threads, model, front end, feature
/// configuration), one line per file with its time, and the stage timings
/// (`--timings`), all on standard error.
pub fn set_verbose(v: bool) {
    VERBOSE.store(v, std::sync::atomic::Ordering::Relaxed);
}

/// Whether `-v/--verbose` was given.
pub fn verbose() -> bool {
    VERBOSE.load(std::sync::atomic::Ordering::Relaxed)
}

/// A `-v` line on standard error (nothing without `-v`).
pub fn detail(msg: impl std::fmt::Display) {
    if verbose() {
        eprintln!("{msg}");
    }
}

/// A `-v` line printed above a progress bar (nothing without `-v`).
pub fn detail_above(pb: &indicatif::ProgressBar, msg: impl std::fmt::Display) {
    if verbose() {
        if pb.is_hidden() {
            eprintln!("{msg}");
        } else {
            pb.println(msg.to_string());
        }
    }
}

/// How a pretrained model reads audio, for `-v`.
pub fn describe_model(t: &mirkit::Tagger) -> String {
    let m = t.model();
    format!(
        "model {}: {} tags, input {} Hz mono, windows of {:.2} s",
        t.name(),
        t.tags().len(),
        m.sample_rate(),
        t.window_secs()
    )
}

/// A summary line (`IN -> OUT`, `N files written`): on standard output, or standard
/// error when standard output carries the data (`-o -`); nothing with `--quiet`.
pub fn summary(msg: &str, data_on_stdout: bool) {
    if quiet() {
        return;
    }
    if data_on_stdout {
        eprintln!("{msg}");
    } else {
        println!("{msg}");
    }
}

pub fn progress(n: usize) -> indicatif::ProgressBar {
    let pb = indicatif::ProgressBar::new(n as u64);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("valid template"),
    );
    if n <= 1 || quiet() {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    pb
}

/// Seconds between the saves of a long folder run's output (`tag --resume`, `embed`
/// of a folder): `MIRKIT_FLUSH_SECS`, 10 by default.
pub fn flush_secs() -> f64 {
    std::env::var("MIRKIT_FLUSH_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0 && *s < 1e9)
        .unwrap_or(10.0)
}

/// Removes temporary files that killed or aborted runs left in an output folder (or
/// beside an output file), with a note unless `--quiet`.
pub fn sweep_stale(output: &std::path::Path, folder: bool) {
    let n = if folder {
        mirkit::core::npy::remove_stale_temps(output)
    } else {
        mirkit::core::npy::remove_stale_temps_of(output)
    };
    if n > 0 && !quiet() {
        eprintln!(
            "note: removed {n} temporary file(s) left by an interrupted run in {}",
            output.display()
        );
    }
}

/// Whether a path argument is `-` (standard input or output).
pub fn is_dash(p: &std::path::Path) -> bool {
    p.as_os_str() == "-"
}

/// An input argument: a path, or `-` for standard input, which is copied to a temporary
/// file first (the decoders need to seek) and removed when this is dropped or the
/// process is interrupted.
pub struct Input {
    path: PathBuf,
    temp: bool,
}

impl Input {
    /// Opens `p`, reading standard input to a temporary file when `p` is `-`.
    pub fn new(p: &std::path::Path) -> Result<Self, super::error::CliError> {
        if !is_dash(p) {
            return Ok(Self {
                path: p.to_path_buf(),
                temp: false,
            });
        }
        let path = mirkit::core::npy::temp_path(&std::env::temp_dir().join("mirkit-stdin"));
        let copy = (|| -> std::io::Result<u64> {
            let mut f = std::fs::File::create(&path)?;
            std::io::copy(&mut std::io::stdin().lock(), &mut f)
        })();
        match copy {
            Ok(_) => Ok(Self { path, temp: true }),
            Err(e) => {
                mirkit::core::npy::remove_temp(&path);
                Err(super::error::CliError::Failed(format!(
                    "cannot read standard input: {e}"
                )))
            }
        }
    }
    /// The file to read.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
    /// The name to show: the path, or `-`.
    pub fn name(&self) -> String {
        if self.temp {
            "-".into()
        } else {
            self.path.display().to_string()
        }
    }
}

impl Drop for Input {
    fn drop(&mut self) {
        if self.temp {
            mirkit::core::npy::remove_temp(&self.path);
        }
    }
}

/// An output argument: a path, or `-` for standard output — written to a temporary file
/// (atomically, as every output) and copied to standard output by [`Output::finish`].
pub struct Output {
    target: PathBuf,
    temp: Option<PathBuf>,
}

impl Output {
    /// `p`, or a temporary file with extension `ext` standing in for standard output.
    pub fn new(p: &std::path::Path, ext: &str) -> Self {
        let temp = is_dash(p).then(|| {
            mirkit::core::npy::temp_path(&std::env::temp_dir().join(format!("mirkit-stdout.{ext}")))
        });
        Self {
            target: p.to_path_buf(),
            temp,
        }
    }
    /// Where the command writes.
    pub fn path(&self) -> &std::path::Path {
        self.temp.as_deref().unwrap_or(&self.target)
    }
    /// Whether this is standard output (then the command's messages go to standard
    /// error).
    pub fn is_stdout(&self) -> bool {
        self.temp.is_some()
    }
    /// The name to show: the path, or `-`.
    pub fn name(&self) -> String {
        self.target.display().to_string()
    }
    /// Copies the written file to standard output (for `-`) and removes it.
    pub fn finish(self) -> Result<(), super::error::CliError> {
        let Some(tmp) = &self.temp else {
            return Ok(());
        };
        let r = (|| -> std::io::Result<()> {
            let mut f = std::fs::File::open(tmp)?;
            let mut out = std::io::stdout().lock();
            std::io::copy(&mut f, &mut out)?;
            std::io::Write::flush(&mut out)
        })();
        r.map_err(|e| super::error::CliError::Failed(format!("cannot write standard output: {e}")))
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        if let Some(t) = &self.temp {
            mirkit::core::npy::remove_temp(t);
        }
    }
}
