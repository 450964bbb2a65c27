//! # Tagging a song
//!
//! `cargo run --release --example tag_a_song [FILE] [MODEL]` — the whole pipeline in a few
//! lines: decode (any format), downmix, resample to 16 kHz, cut into the model's windows,
//! run the pretrained tagger compiled into the library, average the window scores.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("data/clips/brahms_hungarian_dance_5.hq.ogg")
        });
    let model = std::env::args()
        .nth(2)
        .unwrap_or_else(|| mirkit::models::registry::DEFAULT_MODEL.to_string());

    // ## 1. Which models are there?
    for e in mirkit::models::registry::MODELS {
        println!("{:<22} {}", e.name, e.description);
    }

    // ## 2. Tag the file: one call
    let tagger = mirkit::Tagger::new(&model)?;
    let t0 = std::time::Instant::now();
    let result = tagger.tag_file(&file)?;
    println!(
        "\n{} with {} ({} windows, {:.2} s):",
        file.display(),
        result.model,
        result.segments.len(),
        t0.elapsed().as_secs_f64()
    );
    for (tag, score) in result.top_k(10) {
        println!(
            "  {tag:<16} {score:.3} {}",
            "#".repeat((score * 40.0) as usize)
        );
    }

    // ## 3. How the top tag evolves over time (per-window scores)
    let best = result.top_k(1)[0].0.to_string();
    let k = result
        .tags
        .iter()
        .position(|t| *t == best)
        .expect("tag exists");
    println!("\n'{best}' over time:");
    for s in &result.segments {
        println!("  {:>6.1} s  {:.3}", s.start_secs, s.scores[k]);
    }
    Ok(())
}
