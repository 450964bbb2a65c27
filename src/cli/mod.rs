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
    /// Print what a file contains (codec, rate, channels, duration) without decoding it.
    Info(info::InfoArgs),
    /// Write the most representative segment of a track (its thumbnail) as a WAV and
    /// print its start and end in seconds.
    Thumbnail(thumbnail::ThumbArgs),
}

/// Parses the arguments, runs the subcommand and turns its outcome into the exit status
/// (0 success, 1 failure, 2 usage error), printing any error as `error: …`.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
        Cmd::Info(a) => info::run(a),
        Cmd::Thumbnail(a) => thumbnail::run(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            e.code()
        }
    }
}
