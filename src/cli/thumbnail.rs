//! `mirkit thumbnail`: the most representative segment of a track, as a WAV.

use super::args::WavFormatArg;
use super::error::{CliError, CliResult};
use clap::Args;
use mirkit::thumbnail::ThumbnailOptions;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `mirkit thumbnail`.
#[derive(Args, Clone)]
pub struct ThumbArgs {
    /// Audio file.
    input: PathBuf,
    /// The thumbnail, a WAV at the file's own rate and channels.
    #[arg(short, long)]
    output: PathBuf,
    /// Length of the thumbnail, seconds.
    #[arg(long, default_value_t = 30.0)]
    seconds: f64,
    /// Weight of repetition (how strongly the segment's content comes back elsewhere in the
    /// track) against similarity to the whole track; 0 ignores repetition.
    #[arg(long, default_value_t = 0.0)]
    repetition: f32,
    /// Registry model whose window embeddings are compared (see `mirkit models`).
    #[arg(long, default_value = mirkit::models::registry::DEFAULT_MODEL)]
    model: String,
    /// Draw the taggram with the thumbnail framed in red as PNG.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Sample format of the WAV.
    #[arg(long, value_enum, default_value_t = WavFormatArg::Float32)]
    format: WavFormatArg,
}

/// Runs `mirkit thumbnail`: prints `START END` in seconds on standard output.
pub fn run(a: ThumbArgs) -> CliResult {
    if !(a.seconds.is_finite() && a.seconds > 0.0) {
        return Err(CliError::Usage(format!(
            "--seconds {}: must be a positive number",
            a.seconds
        )));
    }
    if !(a.repetition.is_finite() && a.repetition >= 0.0) {
        return Err(CliError::Usage(format!(
            "--repetition {}: must be >= 0",
            a.repetition
        )));
    }
    let tagger = mirkit::Tagger::new(&a.model).map_err(|e| CliError::Usage(e.to_string()))?;
    super::args::detail(super::args::describe_model(&tagger));
    let opts = ThumbnailOptions {
        seconds: a.seconds,
        repetition: a.repetition,
    };
    let t = tagger.thumbnail_file(&a.input, &opts)?;
    // the segment at the file's own rate and channels
    let load = mirkit::io::LoadOptions {
        sr: None,
        mono: false,
        offset: t.start_secs,
        duration: Some(t.end_secs - t.start_secs),
        ..Default::default()
    };
    let audio = mirkit::io::load(&a.input, &load)?;
    mirkit::io::write_wav(&a.output, &audio, a.format.into())?;
    if let Some(png) = &a.png {
        let r = tagger.tag_file(&a.input)?;
        r.taggram_png_marked(
            png,
            &a.input.display().to_string(),
            Some((t.start_secs, t.end_secs)),
        )?;
    }
    println!("{:.3} {:.3}", t.start_secs, t.end_secs);
    if !super::args::quiet() {
        eprintln!(
            "thumbnail of {}: {:.1}-{:.1} s ({} windows of {:.2} s, score {:.4}) -> {}",
            a.input.display(),
            t.start_secs,
            t.end_secs,
            t.windows_per_segment,
            t.window_secs,
            t.score,
            a.output.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
