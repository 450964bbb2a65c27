//! `mirkit info` and `mirkit models`.

use super::error::{status, CliResult};
use clap::Args;
use std::path::PathBuf;

/// Options of `mirkit info`.
#[derive(Args, Clone)]
pub struct InfoArgs {
    /// Audio files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Output format: aligned text, or one JSON object per line.
    #[arg(long, value_enum, default_value_t = InfoFormat::Table)]
    format: InfoFormat,
    /// The same as `--format json` (kept for older scripts).
    #[arg(long, conflicts_with = "format")]
    json: bool,
}

/// `info --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum InfoFormat {
    /// Aligned text, a block per file.
    Table,
    /// JSON lines, one object per file.
    Json,
}

/// What `mirkit info --json` prints per file.
#[derive(serde::Serialize)]
struct InfoRecord<'a> {
    bits_per_sample: Option<u32>,
    channels: usize,
    codec: &'a str,
    duration_secs: Option<f64>,
    file_bytes: u64,
    frames: Option<u64>,
    path: String,
    sample_rate: u32,
}

/// Runs `mirkit info`.
pub fn run(a: InfoArgs) -> CliResult {
    let mut failed = 0;
    for f in a.files {
        match mirkit::io::info(&f) {
            Ok(i) => {
                if a.json || a.format == InfoFormat::Json {
                    let r = InfoRecord {
                        bits_per_sample: i.bits_per_sample,
                        channels: i.channels,
                        codec: &i.codec,
                        duration_secs: i.duration_secs,
                        file_bytes: i.file_bytes,
                        frames: i.n_frames,
                        path: f.display().to_string(),
                        sample_rate: i.sample_rate,
                    };
                    println!("{}", serde_json::to_string(&r).expect("plain values"));
                } else {
                    println!("{}", f.display());
                    println!("  codec        {}", i.codec);
                    println!("  sample rate  {} Hz", i.sample_rate);
                    println!("  channels     {}", i.channels);
                    match (i.duration_secs, i.n_frames) {
                        (Some(d), Some(n)) => println!("  duration     {:.3} s ({} frames)", d, n),
                        _ => println!("  duration     unknown (not in the header)"),
                    }
                    if let Some(b) = i.bits_per_sample {
                        println!("  bits         {b}");
                    }
                    println!("  size         {} bytes", i.file_bytes);
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
            }
        }
    }
    Ok(status(failed))
}

/// Runs `mirkit models`.
pub fn models() -> CliResult {
    for e in mirkit::models::registry::MODELS {
        let m = mirkit::models::registry::load_pretrained(e.name);
        let tags = m.as_ref().map(|m| m.tags().len()).unwrap_or(0);
        println!(
            "{:<24} {:>5.1} MB  {} tags  {}",
            e.name,
            e.bytes.map(|b| b.len()).unwrap_or(0) as f64 / 1e6,
            tags,
            e.description
        );
    }
    Ok(status(0))
}
