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
    /// `embedding`: the penultimate layer (compact, for similarity search); `all`: every
    /// pooled intermediate layer concatenated (Choi et al. 2017), the better features for
    /// classification (docs/transfer.md "Transfer defaults").
    #[arg(long, value_enum, default_value_t = LayersArg::Embedding)]
    layers: LayersArg,
    /// Print where the time went (decode, resample, features, model, write) on standard
    /// error (a single file).
    #[arg(long)]
    timings: bool,
    /// Folder: if the index exists, embed only files it does not hold yet and drop rows
    /// of files that are gone (same model and layers required); saved in two phases as
    /// always. Also how a killed run is finished: a folder run saves its index every 10 s
    /// (`MIRKIT_FLUSH_SECS`) while it embeds, and `--update` goes on from the last save.
    #[arg(long)]
    update: bool,
}

/// Options of `mirkit similar`.
#[derive(Args, Clone)]
pub struct SimilarArgs {
    /// Query audio file(s); several are searched by their centroid. A file the index
    /// holds uses its stored vector.
    #[arg(required = true)]
    query: Vec<PathBuf>,
    /// Index folder (from `mirkit embed FOLDER`).
    #[arg(long)]
    index: PathBuf,
    /// Results to show.
    #[arg(short, long = "top-k", default_value_t = 10)]
    k: usize,
    /// Make a playlist of this many tracks around the queries (seeds): seeds left out,
    /// `--diversity`, artist rules; replaces `--top-k`.
    #[arg(long, value_name = "N")]
    playlist: Option<usize>,
    /// Playlist: λ of maximal marginal relevance in [0, 1) (0: nearest first; 0.3 a
    /// mild mix).
    #[arg(long, default_value_t = 0.0, requires = "playlist")]
    diversity: f32,
    /// Playlist: leave out tracks by the seeds' artists.
    #[arg(long, requires = "playlist")]
    exclude_artist: bool,
    /// Playlist: at most this many tracks per artist.
    #[arg(long, value_name = "N", requires = "playlist")]
    max_per_artist: Option<usize>,
    /// Playlist: the artist is the folder this many levels above a file (2:
    /// `Artist/Album/track`).
    #[arg(long, default_value_t = 2, requires = "playlist")]
    artist_depth: usize,
    /// Also write the result as an M3U playlist (paths as indexed).
    #[arg(short, long, value_name = "FILE.m3u")]
    output: Option<PathBuf>,
}

/// Runs `mirkit embed`.
pub fn run(a: EmbedArgs) -> CliResult {
    let tagger = mirkit::Tagger::new(&a.model).map_err(|e| CliError::Usage(e.to_string()))?;
    args::detail(args::describe_model(&tagger));
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
        if a.timings || args::verbose() {
            eprintln!("timings: {t}");
        }
        return Ok(status(0));
    }
    let files = mirkit::io::audio_files(&a.input)?;
    // the index is saved every `flush` seconds while files are embedded (two phases,
    // checksummed), so a killed run keeps its work and `--update` finishes it; loading
    // comes before the sweep of stale temporaries, as it may need them to finish a save
    // that was killed between its renames
    let every = std::time::Duration::from_secs_f64(args::flush_secs());
    let existing = if a.update && a.output.is_dir() {
        match EmbeddingIndex::load(&a.output) {
            Ok(index) => Some(index),
            Err(_) if !a.output.join("meta.json").exists() => None, // nothing saved yet
            Err(e) => return Err(e.into()),
        }
    } else {
        None
    };
    args::sweep_stale(&a.output, true);
    let updating = existing.is_some();
    let mut index = if let Some(index) = existing {
        if index.meta.layers != layers {
            return Err(CliError::Usage(format!(
                "{} holds {:?} embeddings; --layers must match to update it",
                a.output.display(),
                index.meta.layers
            )));
        }
        index
    } else {
        EmbeddingIndex::new(tagger.name(), layers, Vec::new())?
    };
    let pb = args::progress(files.len());
    let up = index.update_saving(
        &tagger,
        &files,
        |d, t| {
            pb.set_length(t as u64);
            pb.set_position(d as u64)
        },
        Some((&a.output, every)),
    );
    pb.finish_and_clear();
    let up = up?;
    // an empty index is an error, unless an update emptied it because the files are gone
    if index.meta.count == 0 && (!updating || !up.failed.is_empty()) {
        return Err(up.nothing_embedded(files.len()).into());
    }
    if !updating || up.added + up.removed > 0 {
        index.save(&a.output)?;
    }
    let summary = if updating {
        format!(
            "{}: {} added, {} removed, {} kept ({} embeddings)",
            a.output.display(),
            up.added,
            up.removed,
            up.kept,
            index.meta.count
        )
    } else {
        format!(
            "{} embeddings of {} dims ({}) in {}",
            index.meta.count,
            index.meta.dim,
            a.model,
            a.output.display()
        )
    };
    args::summary(&summary, false);
    if !up.failed.is_empty() {
        eprintln!("{} file(s) failed:", up.failed.len());
        for (_, e) in &up.failed {
            eprintln!("  {e}");
        }
    }
    Ok(status(up.failed.len()))
}

/// Runs `mirkit similar`.
pub fn similar(a: SimilarArgs) -> CliResult {
    let index = EmbeddingIndex::load(&a.index)?;
    let tagger = mirkit::Tagger::new(&index.meta.model)?;
    let mut seeds = Vec::new();
    let mut seed_files = Vec::new();
    for q in &a.query {
        let name = q.display().to_string();
        match index.row_of(&name) {
            Some(r) => seeds.push(index.embeddings.row(r).to_vec()),
            None => seeds.push(tagger.embed_with(q, index.meta.layers)?),
        }
        seed_files.push(name);
    }
    let hits = match a.playlist {
        Some(n) => index.playlist(
            &seeds,
            n,
            &mirkit::index::PlaylistOptions {
                diversity: a.diversity,
                seed_files,
                exclude_seed_artists: a.exclude_artist,
                max_per_artist: a.max_per_artist,
                artist_depth: a.artist_depth,
            },
        )?,
        None if seeds.len() == 1 => index.search(&seeds[0], a.k)?,
        None => index.search(&index.centroid(&seeds)?, a.k)?,
    };
    if let Some(path) = &a.output {
        let mut m3u = String::from("#EXTM3U\n");
        for (s, f) in &hits {
            m3u.push_str(&format!("#EXTINF:-1,similarity {s:.4}\n{f}\n"));
        }
        use std::io::Write;
        mirkit::core::npy::write_atomic(path, |w| w.write_all(m3u.as_bytes()))?;
    }
    let lines: Vec<String> = hits
        .iter()
        .enumerate()
        .map(|(i, (s, n))| format!("{:>3}. {s:.4}  {n}", i + 1))
        .collect();
    println!("{}", lines.join("\n"));
    Ok(status(0))
}
