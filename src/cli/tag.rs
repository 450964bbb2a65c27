//! `mirkit tag`: tag a file or every audio file of a folder with a pretrained model.

use super::args::{self, TagFormat};
use super::error::{status, CliError, CliResult};
use clap::Args;
use mirkit::tagger::TagRecord;
use std::path::PathBuf;

/// Options of `mirkit tag`.
#[derive(Args, Clone)]
pub struct TagArgs {
    /// Audio file or folder.
    input: PathBuf,
    /// Registry model (see `mirkit models`) or a `.safetensors` file.
    #[arg(long, default_value = mirkit::models::registry::DEFAULT_MODEL)]
    model: String,
    /// Tags to show per file (`--topN` as in musicnn is accepted too).
    #[arg(long, short = 'k', visible_alias = "topN", default_value_t = 5)]
    top_k: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TagFormat::Table)]
    format: TagFormat,
    /// Write the results to this file (atomically) instead of standard output.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// Include per-window scores with their start times (json) / rows (csv).
    #[arg(long)]
    segments: bool,
    /// With -o and --format json: keep the files already in OUT and tag only the others
    /// (matched by their real path, however the folder is spelled). While it runs, OUT is
    /// rewritten atomically every 10 s (`MIRKIT_FLUSH_SECS`), so a run that is killed keeps
    /// what it finished.
    #[arg(long)]
    resume: bool,
    /// Process only shard I of N (0-based) of the sorted file list, e.g. 0/4; `auto` reads
    /// a Slurm array's or Kubernetes Indexed Job's index (see docs/scale-out.md).
    #[arg(long, value_parser = args::shard)]
    shard: Option<(usize, usize)>,
    /// Draw a taggram (tags × time, per-window scores) as PNG; for a folder, FILE.png
    /// beside each input's name under this folder.
    #[arg(long)]
    png: Option<PathBuf>,
    /// Print where the time went (decode, resample, features, model, write) on standard
    /// error, summed over the files.
    #[arg(long)]
    timings: bool,
    /// Answer in another data set's tags (`mtat`, `msd`, `jamendo`): each tag scored by
    /// the model's tags of the same meaning (docs/applications.md has the table); tags
    /// without a counterpart are left out.
    #[arg(long, value_parser = ["mtat", "msd", "jamendo"])]
    vocabulary: Option<String>,
}

/// Runs `mirkit tag`.
pub fn run(mut a: TagArgs) -> CliResult {
    // `-o -` is standard output, as without -o
    if a.output.as_deref().is_some_and(args::is_dash) {
        if a.resume {
            return Err(CliError::Usage(
                "--resume needs an output file, not standard output".into(),
            ));
        }
        a.output = None;
    }
    let tagger = mirkit::Tagger::new(&a.model).map_err(|e| CliError::Usage(e.to_string()))?;
    args::detail(args::describe_model(&tagger));
    let vocabulary = match &a.vocabulary {
        None => None,
        Some(v) => {
            let to = mirkit::models::vocabulary::Vocabulary::parse(v)?;
            let from = mirkit::models::vocabulary::Vocabulary::of_model(tagger.name()).ok_or_else(
                || {
                    CliError::Usage(format!(
                        "--vocabulary: {} was not trained on MTAT, MSD or Jamendo tags",
                        tagger.name()
                    ))
                },
            )?;
            let t = mirkit::models::vocabulary::Translation::new(tagger.tags(), from, to)?;
            if !args::quiet() {
                eprintln!(
                    "{} answering in {} tags: {} of them have a counterpart{}",
                    tagger.name(),
                    to.name(),
                    t.tags().len(),
                    if t.unmapped().is_empty() {
                        String::new()
                    } else {
                        format!(" (none for: {})", t.unmapped().join(", "))
                    }
                );
            }
            Some(to)
        }
    };
    if let Some(o) = &a.output {
        args::sweep_stale(o, false);
    }
    if a.resume && (a.output.is_none() || a.format != TagFormat::Json) {
        return Err(CliError::Usage(
            "--resume needs -o OUT and --format json".into(),
        ));
    }
    // `-`: standard input, copied to a temporary file and shown as `-`
    let stdin = if args::is_dash(&a.input) {
        Some(args::Input::new(&a.input)?)
    } else {
        None
    };
    let mut files = if a.input.is_dir() {
        mirkit::io::audio_files(&a.input)?
    } else {
        vec![stdin
            .as_ref()
            .map_or(a.input.clone(), |i| i.path().to_path_buf())]
    };
    let shown = |f: &std::path::Path| -> String {
        match &stdin {
            Some(i) if f == i.path() => i.name(),
            _ => f.display().to_string(),
        }
    };
    if let Some((i, n)) = a.shard {
        files = files
            .into_iter()
            .enumerate()
            .filter(|(k, _)| k % n == i)
            .map(|(_, f)| f)
            .collect();
    }
    // --resume: what the output already holds
    let mut previous: Vec<TagRecord> = Vec::new();
    if a.resume {
        if let Some(p) = a.output.as_ref().filter(|p| p.exists()) {
            previous = std::fs::read(p)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| {
                    CliError::Failed(format!(
                        "{}: exists but is not a mirkit tag JSON array",
                        p.display()
                    ))
                })?;
        }
        // the same file however its folder was spelled (`DIR`, `./DIR/`, absolute)
        let done: std::collections::HashSet<PathBuf> =
            previous.iter().map(|r| real_path(&r.file)).collect();
        files.retain(|f| !done.contains(&real_path(&f.display().to_string())));
    }
    let pb = args::progress(files.len());
    // --resume: the output is saved as it goes (atomically, every `flush` seconds)
    let flush = args::flush_secs();
    let mut last_save = std::time::Instant::now();
    let mut results: Vec<(PathBuf, mirkit::Result<mirkit::TagResult>)> = Vec::new();
    for f in &files {
        // tag outputs name files as UTF-8 text: a name that is not would be written wrong
        let tagged = match mirkit::index::utf8_name(f) {
            Ok(_) => tagger.tag_file(f),
            Err(e) => Err(e),
        };
        let r = match (tagged, vocabulary) {
            (Ok(r), Some(v)) => r.in_vocabulary(v),
            (r, _) => r,
        };
        pb.inc(1);
        if let Ok(t) = &r {
            args::detail_above(
                &pb,
                format!(
                    "{}: {} window{} in {:.3} s",
                    shown(f),
                    t.segments.len(),
                    if t.segments.len() == 1 { "" } else { "s" },
                    t.timings.total.as_secs_f64()
                ),
            );
        }
        results.push((f.clone(), r));
        if a.resume && last_save.elapsed().as_secs_f64() >= flush {
            let items = records(&previous, &results, a.top_k, a.segments, &shown);
            save_json(a.output.as_ref().expect("checked"), &items)?;
            last_save = std::time::Instant::now();
        }
    }
    pb.finish_and_clear();
    let ok = || {
        results
            .iter()
            .filter_map(|(f, r)| r.as_ref().ok().map(|t| (f, t)))
    };
    // taggrams: PNG given for one file; for a folder, its tree mirrored under the PNG
    // folder (`a/x.ogg` and `b/x.ogg` do not overwrite each other). A taggram that cannot
    // be written is a failure of the run.
    let mut png_failed = 0usize;
    if let Some(png) = &a.png {
        for (f, t) in ok() {
            let target = if files.len() == 1 && !png.is_dir() {
                png.clone()
            } else {
                let rel = f.strip_prefix(&a.input).unwrap_or(f);
                let mut name = rel.as_os_str().to_os_string();
                name.push(".png");
                png.join(name)
            };
            let r = match target.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => {
                    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))
                }
                _ => Ok(()),
            }
            .and_then(|_| t.taggram_png(&target, &shown(f)).map_err(|e| e.to_string()));
            if let Err(e) = r {
                eprintln!("error: {e}");
                png_failed += 1;
            }
        }
    }
    let mut out = String::new();
    match a.format {
        TagFormat::Table => {
            for (f, t) in ok() {
                let n = t.segments.len();
                out.push_str(&format!(
                    "{} ({} window{}, {})\n",
                    shown(f),
                    n,
                    if n == 1 { "" } else { "s" },
                    tagger.name()
                ));
                for (tag, v) in t.top_k(a.top_k) {
                    out.push_str(&format!("  {tag:<20} {v:.4}\n"));
                }
            }
        }
        TagFormat::Json => {
            out = json_text(&records(&previous, &results, a.top_k, a.segments, &shown));
        }
        TagFormat::Csv => {
            // RFC 4180 through the csv crate: names with quotes, commas or newlines stay
            // one field
            let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
            let csv_err = |e: csv::Error| CliError::Failed(format!("CSV: {e}"));
            let mut header = vec!["file".to_string(), "start_secs".to_string()];
            header.extend(tagger.tags().iter().cloned());
            w.write_record(&header).map_err(csv_err)?;
            for (f, t) in ok() {
                let name = shown(f);
                let mut row = |start: String, s: &[f32]| {
                    let mut rec = vec![name.clone(), start];
                    rec.extend(s.iter().map(|v| format!("{v:.6}")));
                    w.write_record(&rec)
                };
                row("all".into(), &t.scores).map_err(csv_err)?;
                if a.segments {
                    for s in &t.segments {
                        row(format!("{:.3}", s.start_secs), &s.scores).map_err(csv_err)?;
                    }
                }
            }
            let bytes = w
                .into_inner()
                .map_err(|e| CliError::Failed(format!("CSV: {e}")))?;
            out = String::from_utf8(bytes).expect("UTF-8 fields");
        }
    }
    let t_write = std::time::Instant::now();
    match &a.output {
        Some(p) => {
            mirkit::core::npy::write_atomic(p, |w| std::io::Write::write_all(w, out.as_bytes()))?
        }
        None => print!("{out}"),
    }
    if a.timings || args::verbose() {
        let mut sum = mirkit::pipeline::Timings::default();
        for (_, t) in ok() {
            sum += t.timings;
        }
        sum.write += t_write.elapsed();
        sum.total += t_write.elapsed();
        eprintln!("timings: {sum}");
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().err().map(|e| e.to_string()))
        .collect();
    if !args::quiet() {
        eprintln!(
            "{} file(s) tagged, {} failed",
            results.len() - failed.len(),
            failed.len()
        );
    }
    for e in &failed {
        eprintln!("  {e}");
    }
    Ok(status(failed.len() + png_failed))
}

/// The real path of a recorded or listed file, for matching (the path as written when it
/// no longer resolves).
fn real_path(file: &str) -> PathBuf {
    std::fs::canonicalize(file).unwrap_or_else(|_| PathBuf::from(file))
}

/// The records of a JSON output: those kept from before, then this run's, in order.
fn records(
    previous: &[TagRecord],
    results: &[(PathBuf, mirkit::Result<mirkit::TagResult>)],
    top_k: usize,
    segments: bool,
    shown: &dyn Fn(&std::path::Path) -> String,
) -> Vec<TagRecord> {
    let mut items = previous.to_vec();
    items.extend(results.iter().filter_map(|(f, r)| {
        r.as_ref()
            .ok()
            .map(|t| t.record(&shown(f), top_k, segments))
    }));
    items
}

fn json_text(items: &[TagRecord]) -> String {
    let mut out = serde_json::to_string_pretty(items).expect("plain values");
    out.push('\n');
    out
}

/// Rewrites the JSON output atomically (a partial save during `--resume`).
fn save_json(path: &std::path::Path, items: &[TagRecord]) -> Result<(), CliError> {
    let text = json_text(items);
    mirkit::core::npy::write_atomic(path, |w| std::io::Write::write_all(w, text.as_bytes()))?;
    Ok(())
}
