//! The `mirkit` command line: one module per subcommand, shared argument types in
//! [`args`], one error type in [`error`]. The library does the work; these modules parse
//! options, call it, and print.

pub mod args;
pub mod augment;
pub mod embed;
pub mod error;
pub mod features;
pub mod info;
pub mod learn;
pub mod tag;
pub mod thumbnail;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// The command line.
#[derive(Parser)]
#[command(
    name = "mirkit",
    version,
    about = "Music information retrieval: decode, features, tags."
)]
pub struct Cli {
    /// Flush every output to disk (fsync of the file and its folder) before reporting
    /// success; also MIRKIT_SYNC=1. Outputs are atomic either way (never half-written);
    /// this adds durability across a power loss at the cost of a disk flush per file.
    #[arg(long, global = true)]
    sync: bool,
    /// Worker threads for everything parallel (features of a folder, networks, training);
    /// default: RAYON_NUM_THREADS if set, else one per core. Results do not depend on it.
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    threads: Option<u16>,
    /// No progress bars and no summary lines (results, warnings and errors still print).
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Say more on standard error: the resolved settings (threads, model, front end,
    /// feature configuration), one line per file with its time, and where the time went
    /// (as --timings).
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Compute a (log-)mel spectrogram, spectrogram or MFCC and write float32 .npy
    /// of shape (rows, frames). IN may be a folder: every audio file below it is processed
    /// in parallel and the tree is mirrored under OUT.
    Features(features::FeatArgs),
    /// Augment one file: pitch shift, time stretch, gain, noise (seeded), write a WAV and
    /// optionally a JSON record of what was applied. Values may be ranges `LO:HI`, drawn
    /// with --seed.
    Augment(augment::AugArgs),
    /// Tag a song or every audio file in a folder with a pretrained model (compiled in).
    Tag(tag::TagArgs),
    /// List the pretrained models.
    Models,
    /// Embed a file (.npy vector) or every audio file of a folder (an index folder with
    /// embeddings.npy, index.csv and meta.json) with a pretrained model.
    Embed(embed::EmbedArgs),
    /// Rank the tracks of an index (from `mirkit embed FOLDER`) by cosine similarity to a
    /// query file.
    Similar(embed::SimilarArgs),
    /// Train a model from scratch on a labelled collection (folder per class or CSV).
    Train(learn::TrainArgs),
    /// Reuse a pretrained tagger: a head on frozen embeddings (linear, MLP, k-NN) or
    /// fine-tuning of the network with a new output layer.
    Finetune(learn::FinetuneArgs),
    /// Evaluate a trained model, head or fine-tuned tagger on a split.
    Eval(learn::EvalArgs),
    /// Apply a trained model, head or fine-tuned network to audio files: a CSV of class
    /// probabilities, tag scores or predicted values (regression), one row per file.
    Predict(learn::PredictArgs),
    /// Print what a file contains (codec, rate, channels, duration) without decoding it.
    Info(info::InfoArgs),
    /// Write the most representative segment of a track (its thumbnail) as a WAV and
    /// print its start and end in seconds.
    Thumbnail(thumbnail::ThumbArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell), e.g.
    /// `mirkit completions bash > ~/.local/share/bash-completion/completions/mirkit`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages: `mirkit.1` to standard output, or with --out-dir one page per
    /// subcommand (`mirkit-tag.1`, ...) into that folder.
    Man {
        /// Folder for `mirkit.1` and one page per subcommand.
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
}

/// Parses the arguments, runs the subcommand and turns its outcome into the exit status
/// (0 success, 1 failure, 2 usage error), printing any error as `error: …`.
pub fn main() -> ExitCode {
    let mut matches = command().get_matches();
    let cli = match <Cli as clap::FromArgMatches>::from_arg_matches_mut(&mut matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    args::set_quiet(cli.quiet);
    if let Some(n) = cli.threads {
        // Candle sizes its own pool from RAYON_NUM_THREADS when it first runs; we are
        // still single-threaded here, before any pool exists
        std::env::set_var("RAYON_NUM_THREADS", n.to_string());
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n.into())
            .build_global()
        {
            eprintln!("error: cannot start {n} threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    if cli.sync || std::env::var_os("MIRKIT_SYNC").is_some_and(|v| v == "1") {
        mirkit::core::npy::set_durable(true);
    }
    args::set_verbose(cli.verbose);
    if cli.verbose {
        // not rayon::current_num_threads(): that would start the global pool before
        // `features --jobs` sizes it
        let env = std::env::var("RAYON_NUM_THREADS")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (n, source) = match (cli.threads, env) {
            (Some(n), _) => (usize::from(n), "--threads"),
            (None, Some(n)) => (n, "RAYON_NUM_THREADS"),
            (None, None) => (cores, "one per core"),
        };
        eprintln!(
            "mirkit {}: {n} worker thread(s) ({source}); outputs {}",
            env!("CARGO_PKG_VERSION"),
            if mirkit::core::npy::durable() {
                "flushed to disk (--sync)"
            } else {
                "atomic, not flushed (--sync to flush)"
            }
        );
    }
    // one thread: this thread's parallel loops run on it (`features` sizes the pool
    // itself with --jobs and does the same after)
    if !matches!(cli.cmd, Cmd::Features(_)) {
        mirkit::threads::inline_single_thread();
    }
    let r = match cli.cmd {
        Cmd::Features(a) => features::run(a),
        Cmd::Augment(a) => augment::run(a),
        Cmd::Tag(a) => tag::run(a),
        Cmd::Models => info::models(),
        Cmd::Embed(a) => embed::run(a),
        Cmd::Similar(a) => embed::similar(a),
        Cmd::Train(a) => learn::train_cmd(a).map(|_| ExitCode::SUCCESS),
        Cmd::Finetune(a) => learn::finetune_cmd(a).map(|_| ExitCode::SUCCESS),
        Cmd::Eval(a) => learn::eval_cmd(a).map(|_| ExitCode::SUCCESS),
        Cmd::Predict(a) => learn::predict_cmd(a),
        Cmd::Info(a) => info::run(a),
        Cmd::Thumbnail(a) => thumbnail::run(a),
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cmd, "mirkit", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Man { out_dir } => man(out_dir.as_deref()),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    }
}

/// The command line as clap sees it: negative numbers are values everywhere
/// (`--pitch-shift -2`, `--gain -6:-1`, `--top-db -5` reaching its own check), never
/// taken for flags.
fn command() -> clap::Command {
    let cmd = <Cli as clap::CommandFactory>::command();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    names.iter().fold(cmd, |cmd, n| {
        cmd.mut_subcommand(n, |s| s.allow_negative_numbers(true))
    })
}

/// `mirkit man`: the top page to standard output, or every page into a folder.
fn man(out_dir: Option<&std::path::Path>) -> error::CliResult {
    let cmd = <Cli as clap::CommandFactory>::command();
    let failed = |e: std::io::Error| error::CliError::Failed(format!("man page: {e}"));
    let Some(dir) = out_dir else {
        clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .map_err(failed)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| error::CliError::Failed(format!("{}: {e}", dir.display())))?;
    let mut pages = vec![("mirkit".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands() {
        let name = format!("mirkit-{}", sub.get_name());
        // clap names are &'static str without its `string` feature; a few bytes, once
        let static_name: &'static str = Box::leak(name.clone().into_boxed_str());
        pages.push((name, sub.clone().name(static_name)));
    }
    for (name, c) in pages {
        let mut buf = Vec::new();
        clap_mangen::Man::new(c).render(&mut buf).map_err(failed)?;
        let path = dir.join(format!("{name}.1"));
        mirkit::core::npy::write_atomic(&path, |w| std::io::Write::write_all(w, &buf))?;
    }
    if !args::quiet() {
        println!("man pages written to {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}
