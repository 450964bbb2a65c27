//! `mirkit embed` and `mirkit similar`: embeddings of files, an index of a folder, and a
//! cosine-similarity query against it (the index itself is library API:
//! [`mirkit::index`]).

use super::args::{self, LayersArg};
use super::error::{status, CliError, CliResult};
use clap::Args;
use mirkit::index::EmbeddingIndex;
use std::path::PathBuf;

/// Options of `mirkit embed`.
#[derive(Args, Clone)]
pub struct EmbedArgs {
    /// Audio file or folder.
    input: PathBuf,
    /// Output .npy (file) or index folder (folder).
    #[arg(short, long)]
    output: PathBuf,
    /// Registry model or a `.safetensors` file.
    #[arg(long, default_value = mirkit::models::registry::DEFAULT_MODEL)]
    model: String,
    /// `embedding`: the penultimate layer; `all`: every pooled intermediate layer
    /// concatenated (Choi et al. 2017).
    #[arg(long, value_enum, default_value_t = LayersArg::Embedding)]
    layers: LayersArg,
    /// Print where the time went (decode, resample, features, model, write) on standard
    /// error (a single file).
    #[arg(long)]
    timings: bool,
}

/// Options of `mirkit similar`.
#[derive(Args, Clone)]
pub struct SimilarArgs {
    /// Query audio file.
    query: PathBuf,
    /// Index folder (from `mirkit embed FOLDER`).
    #[arg(long)]
    index: PathBuf,
    /// Results to show.
    #[arg(short, long = "top-k", default_value_t = 10)]
    k: usize,
}

/// Runs `mirkit embed`.
pub fn run(a: EmbedArgs) -> CliResult {
    let tagger = mirkit::Tagger::new(&a.model).map_err(|e| CliError::Usage(e.to_string()))?;
    let layers = a.layers.into();
    if !a.input.is_dir() {
        // `-`: standard input / standard output (the summary then goes to stderr)
        let input = args::Input::new(&a.input)?;
        let output = args::Output::new(&a.output, "npy");
        let (e, mut t) = tagger.embed_timed(input.path(), layers)?;
        let t_write = std::time::Instant::now();
        mirkit::core::npy::write_f32(output.path(), &[e.len()], &e)?;
        t.write = t_write.elapsed();
        t.total += t.write;
        let msg = format!("{} -> {}", input.name(), output.name());
        let data_on_stdout = output.is_stdout();
        output.finish()?;
        args::summary(&msg, data_on_stdout);
        if a.timings {
            eprintln!("timings: {t}");
        }
        return Ok(status(0));
    }
    let files = mirkit::io::audio_files(&a.input)?;
    let pb = args::progress(files.len());
    let built = EmbeddingIndex::build(&tagger, layers, &files, |_, _| pb.inc(1));
    pb.finish_and_clear();
    let built = built?;
    built.index.save(&a.output)?;
    args::summary(
        &format!(
            "{} embeddings of {} dims ({}) in {}",
            built.index.meta.count,
            built.index.meta.dim,
            a.model,
            a.output.display()
        ),
        false,
    );
    if !built.failed.is_empty() {
        eprintln!("{} file(s) failed:", built.failed.len());
        for (_, e) in &built.failed {
            eprintln!("  {e}");
        }
    }
    Ok(status(built.failed.len()))
}

/// Runs `mirkit similar`.
pub fn similar(a: SimilarArgs) -> CliResult {
    let index = EmbeddingIndex::load(&a.index)?;
    let tagger = mirkit::Tagger::new(&index.meta.model)?;
    let q = tagger.embed_with(&a.query, index.meta.layers)?;
    let hits = index.search(&q, a.k)?;
    let lines: Vec<String> = hits
        .iter()
        .enumerate()
        .map(|(i, (s, n))| format!("{:>3}. {s:.4}  {n}", i + 1))
        .collect();
    println!("{}", lines.join("\n"));
    Ok(status(0))
}
