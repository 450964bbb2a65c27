//! The `mirkit` command line: `mirkit features`, `mirkit info`.

mod learn;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mirkit::dsp::{
    Compression, DbConfig, DbRef, FeatureConfig, MelArithmetic, MelNorm, MelScale, MelSettings,
    MfccSettings, PadMode, Preset, WindowKind,
};
use mirkit::io::plot::{spectrogram_png, SpecPlot};
use mirkit::io::{info, is_audio_path, ResampleQuality};
use mirkit::pipeline::{features_to_npy, ReadOptions};
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "mirkit",
    version,
    about = "Music information retrieval: decode, features, tags."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compute a (log-)mel spectrogram, spectrogram or MFCC and write float32 .npy
    /// of shape (rows, frames). IN may be a folder: every audio file below it is processed
    /// in parallel and the tree is mirrored under OUT.
    Features(FeatArgs),
    /// Augment one file: pitch shift, time stretch, gain, noise (seeded), write a WAV and
    /// optionally a JSON record of what was applied. Values may be ranges `LO:HI`, drawn
    /// with --seed.
    Augment(AugArgs),
    /// Tag a song or every audio file in a folder with a pretrained model (compiled in).
    Tag(TagArgs),
    /// List the pretrained models.
    Models,
    /// Embed a file (.npy vector) or every audio file of a folder (an index folder with
    /// embeddings.npy, index.csv and meta.json) with a pretrained model's penultimate layer.
    Embed {
        /// Audio file or folder.
        input: PathBuf,
        /// Output .npy (file) or index folder (folder).
        #[arg(short, long)]
        output: PathBuf,
        /// Registry model.
        #[arg(long, default_value = mirkit::models::registry::DEFAULT_MODEL)]
        model: String,
        /// `all`: concatenate every pooled intermediate layer (Choi et al. 2017) instead of
        /// the penultimate layer alone.
        #[arg(long)]
        layers: Option<String>,
    },
    /// Rank the tracks of an index (from `mirkit embed FOLDER`) by cosine similarity to a
    /// query file.
    Similar {
        /// Query audio file.
        query: PathBuf,
        /// Index folder.
        #[arg(long)]
        index: PathBuf,
        /// Results to show.
        #[arg(short, default_value_t = 10)]
        k: usize,
    },
    /// Train a model from scratch on a labelled collection (folder per class or CSV).
    Train(learn::TrainArgs),
    /// Reuse a pretrained tagger: a head on frozen embeddings (linear, MLP, k-NN) or
    /// fine-tuning of the network with a new output layer.
    Finetune(learn::FinetuneArgs),
    /// Evaluate a trained model, head or fine-tuned tagger on a split.
    Eval(learn::EvalArgs),
    /// Print what a file contains (codec, rate, channels, duration) without decoding it.
    Info {
        /// Audio files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print JSON lines.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args, Clone)]
struct FeatArgs {
    /// Input file or folder.
    input: PathBuf,
    /// Output .npy file (or folder when IN is a folder).
    #[arg(short, long)]
    output: PathBuf,
    /// Starting point: librosa, torchaudio, won2020 or musicnn (options below override it).
    #[arg(long, default_value = "librosa")]
    preset: String,
    /// Sample rate in Hz, or "native".
    #[arg(long)]
    sr: Option<String>,
    /// FFT size.
    #[arg(long)]
    n_fft: Option<usize>,
    /// Hop length in samples.
    #[arg(long)]
    hop_length: Option<usize>,
    /// Window length in samples (default n_fft).
    #[arg(long)]
    win_length: Option<usize>,
    /// Window: hann, hamming, blackman, blackmanharris, rectangular.
    #[arg(long)]
    window: Option<String>,
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
    /// Filter normalisation: slaney or none.
    #[arg(long)]
    norm: Option<String>,
    /// Centre frames (pad n_fft/2 each side).
    #[arg(long, overrides_with = "no_center")]
    center: bool,
    /// Do not centre frames.
    #[arg(long)]
    no_center: bool,
    /// Padding when centring: constant, reflect or edge.
    #[arg(long)]
    pad_mode: Option<String>,
    /// Exponent of the magnitude (2 power, 1 magnitude).
    #[arg(long)]
    power: Option<f32>,
    /// Convert to decibels (librosa.power_to_db, ref=1, amin=1e-10).
    #[arg(long)]
    db: bool,
    /// With --db: dynamic range below the peak, or "none" (default 80).
    #[arg(long)]
    top_db: Option<String>,
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
    /// Resampler: high or fast.
    #[arg(long, default_value = "high")]
    resample: String,
    /// Also draw the result as a PNG with axes (for a folder: one PNG beside each .npy).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Parallel jobs for a folder (default: all cores).
    #[arg(short, long)]
    jobs: Option<usize>,
}

#[derive(Args, Clone)]
struct AugArgs {
    /// Input audio file.
    input: PathBuf,
    /// Output WAV file.
    #[arg(short, long)]
    output: PathBuf,
    /// Pitch shift in steps (semitones by default), e.g. 2, -1.5 or -2:2.
    #[arg(long, allow_hyphen_values = true)]
    pitch_shift: Option<String>,
    /// Steps per octave for --pitch-shift (24: quarter tones).
    #[arg(long, default_value_t = 12)]
    bins_per_octave: u32,
    /// Time-stretch rate (> 1 faster), e.g. 1.25 or 0.81:1.23.
    #[arg(long)]
    time_stretch: Option<String>,
    /// Gain in dB, e.g. -6 or -6:0.
    #[arg(long, allow_hyphen_values = true)]
    gain: Option<String>,
    /// Add noise at this SNR in dB, e.g. 20 or 10:30.
    #[arg(long, allow_hyphen_values = true)]
    noise_snr: Option<String>,
    /// Noise colour: white or pink.
    #[arg(long, default_value = "white")]
    noise_color: String,
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
    #[arg(long, default_value = "native")]
    sr: String,
    /// Output sample format: float32 or pcm16.
    #[arg(long, default_value = "float32")]
    format: String,
}

#[derive(Args, Clone)]
struct TagArgs {
    /// Audio file or folder.
    input: PathBuf,
    /// Registry model (see `mirkit models`).
    #[arg(long, default_value = mirkit::models::registry::DEFAULT_MODEL)]
    model: String,
    /// Tags to show per file.
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Output format: table, json or csv.
    #[arg(long, default_value = "table")]
    format: String,
    /// Write the results to this file (atomically) instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Include per-window scores with their start times (json) / rows (csv).
    #[arg(long)]
    segments: bool,
    /// With -o and --format json: keep the files already in OUT and tag only the others.
    #[arg(long)]
    resume: bool,
    /// Process only shard I of N (0-based) of the sorted file list, e.g. 0/4.
    #[arg(long)]
    shard: Option<String>,
    /// Draw a taggram (tags × time, per-window scores) as PNG; for a folder, FILE.png
    /// beside each input's name under this folder.
    #[arg(long)]
    png: Option<PathBuf>,
}

fn tag_cmd(a: TagArgs) -> ExitCode {
    let tagger = match mirkit::Tagger::new(&a.model) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !["table", "json", "csv"].contains(&a.format.as_str()) {
        eprintln!("error: --format {}: table, json or csv", a.format);
        return ExitCode::from(2);
    }
    let shard = match a.shard.as_deref().map(|s| {
        s.split_once('/')
            .map(|(i, n)| (i.parse::<usize>(), n.parse::<usize>()))
    }) {
        None => None,
        Some(Some((Ok(i), Ok(n)))) if n > 0 && i < n => Some((i, n)),
        _ => {
            eprintln!("error: --shard must be I/N with 0 <= I < N");
            return ExitCode::from(2);
        }
    };
    if a.resume && (a.output.is_none() || a.format != "json") {
        eprintln!("error: --resume needs -o OUT and --format json");
        return ExitCode::from(2);
    }
    let mut files = Vec::new();
    if a.input.is_dir() {
        if let Err(e) = walk(&a.input, &mut files) {
            eprintln!("error: {}: {e}", a.input.display());
            return ExitCode::FAILURE;
        }
    } else {
        files.push(a.input.clone());
    }
    if let Some((i, n)) = shard {
        files = files
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i)
            .map(|(_, f)| f)
            .collect();
    }
    // --resume: what the output already holds
    let mut previous: Vec<serde_json::Value> = Vec::new();
    if a.resume {
        if let Some(p) = &a.output {
            if p.exists() {
                match std::fs::read(p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok())
                {
                    Some(v) => previous = v,
                    None => {
                        eprintln!(
                            "error: {}: exists but is not a mirkit tag JSON array",
                            p.display()
                        );
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
        let done: std::collections::HashSet<String> = previous
            .iter()
            .filter_map(|v| v["file"].as_str().map(String::from))
            .collect();
        files.retain(|f| !done.contains(&f.display().to_string()));
    }
    let pb = ProgressBar::new(files.len() as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("template"),
    );
    if files.len() <= 1 {
        pb.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let results: Vec<(PathBuf, Result<mirkit::TagResult, String>)> = files
        .iter()
        .map(|f| {
            let r = tagger.tag_file(f).map_err(|e| e.to_string());
            pb.inc(1);
            (f.clone(), r)
        })
        .collect();
    pb.finish_and_clear();
    let tags = tagger.model().tags();
    if let Some(png) = &a.png {
        for (f, r) in &results {
            let Ok(t) = r else { continue };
            let target = if files.len() == 1 && !png.is_dir() {
                png.clone()
            } else {
                let _ = std::fs::create_dir_all(png);
                png.join(format!(
                    "{}.png",
                    f.file_name()
                        .map(|s| s.to_string_lossy().to_string())
                        .unwrap_or_default()
                ))
            };
            if let Err(e) = draw_taggram(&target, t, &f.display().to_string()) {
                eprintln!("error: {e}");
            }
        }
    }
    let mut out = String::new();
    match a.format.as_str() {
        "table" => {
            for (f, r) in &results {
                if let Ok(t) = r {
                    let n = t.segments.len();
                    out.push_str(&format!(
                        "{} ({} window{}, {})\n",
                        f.display(),
                        n,
                        if n == 1 { "" } else { "s" },
                        a.model
                    ));
                    for (tag, v) in t.top_k(a.top_k) {
                        out.push_str(&format!("  {tag:<20} {v:.4}\n"));
                    }
                }
            }
        }
        "json" => {
            let mut items = previous;
            for (f, r) in &results {
                let Ok(t) = r else { continue };
                let map = |s: &[f32]| -> serde_json::Map<String, serde_json::Value> {
                    tags.iter()
                        .cloned()
                        .zip(s.iter().map(|v| serde_json::json!(v)))
                        .collect()
                };
                let top: Vec<serde_json::Value> = t
                    .top_k(a.top_k)
                    .into_iter()
                    .map(|(n, v)| serde_json::json!([n, v]))
                    .collect();
                let mut v = serde_json::json!({"file": f.display().to_string(), "model": a.model, "windows": t.segments.len(), "scores": map(&t.scores), "top_k": top});
                if a.segments {
                    v["segments"] = t.segments.iter().map(|s| serde_json::json!({"start_secs": s.start_secs, "scores": map(&s.scores)})).collect();
                }
                items.push(v);
            }
            out = serde_json::to_string_pretty(&items).expect("plain values");
            out.push('\n');
        }
        _ => {
            out.push_str(&format!("file,start_secs,{}\n", tags.join(",")));
            for (f, r) in &results {
                if let Ok(t) = r {
                    let row = |start: &str, s: &[f32]| {
                        format!(
                            "\"{}\",{start},{}\n",
                            f.display(),
                            s.iter()
                                .map(|v| format!("{v:.6}"))
                                .collect::<Vec<_>>()
                                .join(",")
                        )
                    };
                    out.push_str(&row("all", &t.scores));
                    if a.segments {
                        for s in &t.segments {
                            out.push_str(&row(&format!("{:.3}", s.start_secs), &s.scores));
                        }
                    }
                }
            }
        }
    }
    match &a.output {
        Some(p) => {
            if let Err(e) =
                mirkit::core::npy::write_atomic(p, |w| std::io::Write::write_all(w, out.as_bytes()))
            {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
        None => print!("{out}"),
    }
    let failed: Vec<_> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    eprintln!(
        "{} file(s) tagged, {} failed",
        results.len() - failed.len(),
        failed.len()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        for e in failed {
            eprintln!("  {e}");
        }
        ExitCode::FAILURE
    }
}

/// Tags × windows image of per-window scores (rows: tags, best-scoring tag on top).
fn draw_taggram(path: &Path, t: &mirkit::TagResult, title: &str) -> Result<(), String> {
    let n_tags = t.tags.len();
    let n_win = t.segments.len();
    // rows ordered by mean score, lowest at the bottom
    let mut order: Vec<usize> = (0..n_tags).collect();
    order.sort_by(|&a, &b| t.scores[a].total_cmp(&t.scores[b]));
    let data =
        ndarray::Array2::from_shape_fn((n_tags, n_win), |(r, c)| t.segments[c].scores[order[r]]);
    let win_secs = if n_win > 1 {
        t.segments[1].start_secs - t.segments[0].start_secs
    } else {
        t.segments[0].start_secs.max(1.0)
    };
    let opts = SpecPlot {
        title: format!("{title} ({})", t.model),
        seconds_per_frame: if n_win > 1 { win_secs } else { 3.0 },
        row_labels: Some(order.iter().map(|&i| t.tags[i].clone()).collect()),
        colormap: mirkit::io::plot::Colormap::Viridis,
        range: Some((0.0, 1.0)),
        size: (700.max(n_win * 8), n_tags * 16),
        ..Default::default()
    };
    spectrogram_png(path, data.view(), &opts).map_err(|e| e.to_string())
}

fn embed_file(tagger: &mirkit::Tagger, f: &Path) -> Result<Vec<f32>, String> {
    tagger.embed_file(f).map_err(|e| e.to_string())
}

fn embed_any(tagger: &mirkit::Tagger, f: &Path, all: bool) -> Result<Vec<f32>, String> {
    if all {
        tagger
            .embed_layers_file(f)
            .map(|x| x.0)
            .map_err(|e| e.to_string())
    } else {
        embed_file(tagger, f)
    }
}

fn embed_cmd(input: PathBuf, output: PathBuf, model_name: String, all_layers: bool) -> ExitCode {
    let model = match mirkit::Tagger::new(&model_name) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if !input.is_dir() {
        return match embed_any(&model, &input, all_layers).and_then(|e| {
            mirkit::core::npy::write_f32(&output, &[e.len()], &e).map_err(|e| e.to_string())
        }) {
            Ok(()) => {
                println!("{} -> {}", input.display(), output.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut files = Vec::new();
    if let Err(e) = walk(&input, &mut files) {
        eprintln!("error: {}: {e}", input.display());
        return ExitCode::FAILURE;
    }
    let pb = ProgressBar::new(files.len() as u64);
    let mut rows: Vec<(PathBuf, Vec<f32>)> = Vec::new();
    let mut failed = Vec::new();
    for f in &files {
        match embed_any(&model, f, all_layers) {
            Ok(e) => rows.push((f.clone(), e)),
            Err(e) => failed.push(e),
        }
        pb.inc(1);
    }
    pb.finish_and_clear();
    if rows.is_empty() {
        eprintln!("error: no file could be embedded");
        for e in &failed {
            eprintln!("  {e}");
        }
        return ExitCode::FAILURE;
    }
    let dim = rows[0].1.len();
    let flat: Vec<f32> = rows.iter().flat_map(|r| r.1.iter().copied()).collect();
    let res = std::fs::create_dir_all(&output)
        .map_err(|e| e.to_string())
        .and_then(|_| mirkit::core::npy::write_f32(output.join("embeddings.npy"), &[rows.len(), dim], &flat).map_err(|e| e.to_string()))
        .and_then(|_| {
            let mut csv = String::from("row,file\n");
            for (i, (f, _)) in rows.iter().enumerate() {
                csv.push_str(&format!("{i},\"{}\"\n", f.display()));
            }
            mirkit::core::npy::write_atomic(&output.join("index.csv"), |w| std::io::Write::write_all(w, csv.as_bytes())).map_err(|e| e.to_string())
        })
        .and_then(|_| {
            let meta = serde_json::json!({"model": model_name, "dim": dim, "count": rows.len(), "layers": if all_layers { "all" } else { "embedding" }}).to_string();
            mirkit::core::npy::write_atomic(&output.join("meta.json"), |w| std::io::Write::write_all(w, meta.as_bytes())).map_err(|e| e.to_string())
        });
    if let Err(e) = res {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    println!(
        "{} embeddings of {dim} dims ({}) in {}",
        rows.len(),
        model_name,
        output.display()
    );
    if failed.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} file(s) failed:", failed.len());
        for e in &failed {
            eprintln!("  {e}");
        }
        ExitCode::FAILURE
    }
}

fn similar_cmd(query: PathBuf, index: PathBuf, k: usize) -> ExitCode {
    let run = || -> Result<String, String> {
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(index.join("meta.json"))
                .map_err(|e| format!("{}: {e}", index.join("meta.json").display()))?,
        )
        .map_err(|e| format!("meta.json: {e}"))?;
        let model_name = meta["model"].as_str().ok_or("meta.json has no model")?;
        let model = mirkit::Tagger::new(model_name).map_err(|e| e.to_string())?;
        let emb = mirkit::core::npy::read(index.join("embeddings.npy"))
            .map_err(|e| e.to_string())?
            .to_f32_2d()
            .map_err(|e| e.to_string())?;
        let csv = std::fs::read_to_string(index.join("index.csv"))
            .map_err(|e| format!("index.csv: {e}"))?;
        let names: Vec<String> = csv
            .lines()
            .skip(1)
            .map(|l| {
                l.split_once(',')
                    .map(|x| x.1.trim_matches('"').to_string())
                    .unwrap_or_default()
            })
            .collect();
        if names.len() != emb.nrows() {
            return Err(format!(
                "index.csv has {} rows, embeddings.npy {}",
                names.len(),
                emb.nrows()
            ));
        }
        let q = embed_any(&model, &query, meta["layers"].as_str() == Some("all"))?;
        if q.len() != emb.ncols() {
            return Err(format!(
                "query embedding has {} dims, the index {}",
                q.len(),
                emb.ncols()
            ));
        }
        let mut scored: Vec<(f32, &str)> = emb
            .outer_iter()
            .zip(&names)
            .map(|(r, n)| {
                (
                    mirkit::models::won2020::cosine(&q, r.as_slice().expect("row")),
                    n.as_str(),
                )
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        Ok(scored
            .iter()
            .take(k)
            .enumerate()
            .map(|(i, (s, n))| format!("{:>3}. {s:.4}  {n}", i + 1))
            .collect::<Vec<_>>()
            .join("\n"))
    };
    match run() {
        Ok(s) => {
            println!("{s}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_range(s: &str, what: &str) -> Result<mirkit::augment::Range, String> {
    let r = match s.split_once(':') {
        Some((a, b)) => mirkit::augment::Range {
            lo: parse(a, what)?,
            hi: parse(b, what)?,
        },
        None => mirkit::augment::Range::fixed(parse(s, what)?),
    };
    mirkit::augment::Range::new(r.lo, r.hi).map_err(|e| format!("--{what}: {e}"))
}

fn augment_cmd(a: AugArgs) -> ExitCode {
    use mirkit::augment::{Augment, NoiseColor, PhaseMode, Rng};
    let run = || -> Result<String, String> {
        let mode = if a.phase_lock {
            PhaseMode::IdentityLocking
        } else {
            PhaseMode::Librosa
        };
        let mut chain = Vec::new();
        if let Some(p) = &a.pitch_shift {
            chain.push(Augment::PitchShift {
                steps: parse_range(p, "pitch-shift")?,
                bins_per_octave: a.bins_per_octave,
                mode,
            });
        }
        if let Some(t) = &a.time_stretch {
            chain.push(Augment::TimeStretch {
                rate: parse_range(t, "time-stretch")?,
                mode,
            });
        }
        if let Some(g) = &a.gain {
            chain.push(Augment::Gain {
                db: parse_range(g, "gain")?,
            });
        }
        if let Some(n) = &a.noise_snr {
            chain.push(Augment::Noise {
                snr_db: parse_range(n, "noise-snr")?,
                color: parse::<NoiseColor>(&a.noise_color, "noise-color")?,
            });
        }
        let format = match a.format.as_str() {
            "float32" => mirkit::io::WavFormat::Float32,
            "pcm16" => mirkit::io::WavFormat::Pcm16,
            f => return Err(format!("--format {f}: float32 or pcm16")),
        };
        let sr = match a.sr.as_str() {
            "native" => None,
            s => Some(parse::<u32>(s, "sr")?),
        };
        let y = mirkit::io::load(
            &a.input,
            &mirkit::io::LoadOptions {
                sr,
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let rate = y.sample_rate();
        let mut v = y.into_mono_vec();
        let mut log = Vec::new();
        Augment::Chain(chain)
            .apply(&mut v, rate, &mut Rng::new(a.seed), &mut log)
            .map_err(|e| format!("{}: {e}", a.input.display()))?;
        let out = mirkit::core::AudioBuffer::from_mono(v, rate).map_err(|e| e.to_string())?;
        if let Some(r) = &a.record {
            let json = mirkit::augment::records_to_json(&log);
            mirkit::core::npy::write_atomic(r, |w| std::io::Write::write_all(w, json.as_bytes()))
                .map_err(|e| e.to_string())?;
        }
        mirkit::io::write_wav(&a.output, &out, format).map_err(|e| e.to_string())?;
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
        Ok(format!(
            "{} -> {} [{}]",
            a.input.display(),
            a.output.display(),
            what.join("; ")
        ))
    };
    match run() {
        Ok(m) => {
            println!("{m}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse<T: std::str::FromStr>(s: &str, what: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| format!("--{what} {s}: {e}"))
}

fn build_config(a: &FeatArgs, native_sr: Option<u32>) -> Result<FeatureConfig, String> {
    let preset: Preset = parse(&a.preset, "preset")?;
    let mut c = FeatureConfig::preset(preset);
    match a.sr.as_deref() {
        Some("native") => {
            c.sample_rate = native_sr.ok_or("--sr native needs a readable input file")?
        }
        Some(s) => c.sample_rate = parse(s, "sr")?,
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
    if let Some(w) = &a.window {
        c.stft.window = parse::<WindowKind>(w, "window")?;
    }
    if a.center {
        c.stft.center = true;
    }
    if a.no_center {
        c.stft.center = false;
    }
    if let Some(p) = &a.pad_mode {
        c.stft.pad_mode = parse::<PadMode>(p, "pad-mode")?;
    }
    if let Some(p) = a.power {
        c.power = p;
    }
    if a.n_mels == Some(0) {
        c.mel = None;
    } else {
        let mut m = c.mel.clone().unwrap_or(MelSettings {
            n_mels: 128,
            fmin: 0.0,
            fmax: None,
            scale: MelScale::Slaney,
            norm: MelNorm::Slaney,
            arithmetic: MelArithmetic::Librosa,
        });
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
        if let Some(n) = &a.norm {
            m.norm = match n.as_str() {
                "slaney" => MelNorm::Slaney,
                "none" => MelNorm::None,
                _ => return Err(format!("--norm {n}: slaney or none")),
            };
        }
        c.mel = Some(m);
    }
    let top_db = match a.top_db.as_deref() {
        None => Some(80.0),
        Some("none") => None,
        Some(s) => Some(parse::<f32>(s, "top-db")?),
    };
    if a.db {
        c.compression = Compression::Db(DbConfig {
            reference: DbRef::Value(1.0),
            amin: 1e-10,
            top_db,
        });
    } else if a.top_db.is_some() {
        return Err("--top-db needs --db".into());
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
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

fn draw_png(
    npy_path: &Path,
    png_path: &Path,
    cfg: &FeatureConfig,
    title: &str,
) -> Result<(), String> {
    let a = mirkit::core::npy::read(npy_path)
        .map_err(|e| e.to_string())?
        .to_f32_2d()
        .map_err(|e| e.to_string())?;
    let rows = a.nrows();
    let (y_label, row_values) = match (&cfg.mfcc, &cfg.mel) {
        (Some(_), _) => ("MFCC".to_string(), None),
        (None, Some(m)) => {
            let fmax = m.fmax.unwrap_or(cfg.sample_rate as f32 / 2.0);
            let f = mirkit::dsp::mel_frequencies(rows + 2, m.fmin as f64, fmax as f64, m.scale);
            ("HZ".to_string(), Some(f[1..rows + 1].to_vec()))
        }
        (None, None) => (
            "HZ".to_string(),
            Some(
                (0..rows)
                    .map(|k| k as f64 * cfg.sample_rate as f64 / cfg.stft.n_fft as f64)
                    .collect(),
            ),
        ),
    };
    let unit = match &cfg.compression {
        Compression::Db(_) if cfg.mfcc.is_none() => "DB",
        _ => "",
    };
    let opts = SpecPlot {
        title: title.to_string(),
        seconds_per_frame: cfg.stft.hop_length as f64 / cfg.sample_rate as f64,
        y_label,
        row_values,
        unit: unit.into(),
        ..Default::default()
    };
    spectrogram_png(png_path, a.view(), &opts).map_err(|e| e.to_string())
}

fn one_file(
    a: &FeatArgs,
    input: &Path,
    output: &Path,
    png: Option<&Path>,
) -> Result<String, String> {
    let native = info(input).map_err(|e| e.to_string())?.sample_rate;
    let cfg = build_config(a, Some(native))?;
    let read = ReadOptions {
        offset: a.offset,
        duration: a.duration,
        quality: parse::<ResampleQuality>(&a.resample, "resample")?,
    };
    let s = features_to_npy(input, output, &cfg, &read).map_err(|e| e.to_string())?;
    if let Some(p) = png {
        let name = input
            .file_name()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        draw_png(output, p, &cfg, &name)?;
    }
    Ok(format!(
        "{} -> {} ({} x {})",
        input.display(),
        output.display(),
        s.rows,
        s.frames
    ))
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out)?;
        } else if is_audio_path(&p) {
            out.push(p);
        }
    }
    Ok(())
}

fn features(a: FeatArgs) -> ExitCode {
    if !a.input.is_dir() {
        // validate the options once, before touching the file, for a clear message
        if let Err(e) = build_config(&a, Some(22050)) {
            if !e.contains("native") {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        }
        return match one_file(&a, &a.input, &a.output, a.png.as_deref()) {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        };
    }
    if let Err(e) = build_config(&a, Some(22050)) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut files = Vec::new();
    if let Err(e) = walk(&a.input, &mut files) {
        eprintln!("error: {}: {e}", a.input.display());
        return ExitCode::FAILURE;
    }
    if files.is_empty() {
        eprintln!("error: no audio files under {}", a.input.display());
        return ExitCode::FAILURE;
    }
    if let Some(j) = a.jobs {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(j.max(1))
            .build_global();
    }
    let pb = ProgressBar::new(files.len() as u64);
    pb.set_style(
        ProgressStyle::with_template(
            "{bar:40} {pos}/{len} files [{elapsed_precise} < {eta_precise}] {msg}",
        )
        .expect("valid template"),
    );
    let failures: Vec<String> = files
        .par_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(&a.input).unwrap_or(f);
            let out = a.output.join(rel).with_extension("npy");
            let res = out
                .parent()
                .map(std::fs::create_dir_all)
                .transpose()
                .map_err(|e| format!("{}: {e}", out.display()))
                .and_then(|_| {
                    let png = a.png.as_ref().map(|_| out.with_extension("png"));
                    one_file(&a, f, &out, png.as_deref())
                });
            pb.inc(1);
            match res {
                Ok(_) => None,
                Err(e) => {
                    pb.println(format!("skipped: {e}"));
                    Some(e)
                }
            }
        })
        .collect();
    pb.finish_and_clear();
    println!(
        "{} of {} files written under {}",
        files.len() - failures.len(),
        files.len(),
        a.output.display()
    );
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        eprintln!("{} file(s) failed:", failures.len());
        for f in &failures {
            eprintln!("  {f}");
        }
        ExitCode::FAILURE
    }
}

fn info_cmd(files: Vec<PathBuf>, json: bool) -> ExitCode {
    let mut failed = false;
    for f in files {
        match info(&f) {
            Ok(i) => {
                if json {
                    let v = serde_json::json!({
                        "path": f.display().to_string(), "codec": i.codec, "sample_rate": i.sample_rate,
                        "channels": i.channels, "frames": i.n_frames, "duration_secs": i.duration_secs,
                        "bits_per_sample": i.bits_per_sample, "file_bytes": i.file_bytes,
                    });
                    println!("{v}");
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
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn report(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Features(a) => features(a),
        Cmd::Augment(a) => augment_cmd(a),
        Cmd::Tag(a) => tag_cmd(a),
        Cmd::Embed {
            input,
            output,
            model,
            layers,
        } => match layers.as_deref() {
            None => embed_cmd(input, output, model, false),
            Some("all") => embed_cmd(input, output, model, true),
            Some(o) => {
                eprintln!("error: --layers {o}: only `all` is supported");
                ExitCode::from(2)
            }
        },
        Cmd::Similar { query, index, k } => similar_cmd(query, index, k),
        Cmd::Models => {
            for e in mirkit::models::registry::MODELS {
                let m = mirkit::models::registry::load_pretrained(e.name);
                let tags = m.as_ref().map(|m| m.tags().len()).unwrap_or(0);
                println!(
                    "{:<24} {:>5.1} MB  {} tags  {}",
                    e.name,
                    e.bytes.len() as f64 / 1e6,
                    tags,
                    e.description
                );
            }
            ExitCode::SUCCESS
        }
        Cmd::Info { files, json } => info_cmd(files, json),
        Cmd::Train(a) => report(learn::train_cmd(a)),
        Cmd::Finetune(a) => report(learn::finetune_cmd(a)),
        Cmd::Eval(a) => report(learn::eval_cmd(a)),
    }
}
