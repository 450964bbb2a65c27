//! # Embeddings and similarity
//!
//! `cargo run --release --example embeddings_and_similarity` — a pretrained tagger's
//! penultimate layer as a music embedding (transfer-learning features, Choi et al. 2017),
//! then cosine similarity between excerpts of the committed clips: excerpts of the same
//! piece should be closer to each other than to the other piece.

use mirkit::io::{load, LoadOptions};
use mirkit::models::scores::cosine;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The default tagger is musicnn 0.1.0's MagnaTagATune model: its embedding is the
    // 200-d "penultimate" layer, one per 3 s patch of the file's log-mel.
    let tagger = mirkit::Tagger::default()?;
    let m = tagger.model();
    let secs = tagger.window_secs();
    let clips = [
        "brahms_hungarian_dance_5.hq.ogg",
        "sorohanro_-_solo-trumpet-06.hq.ogg",
    ];
    // ## 1. Embed the first 3 s patches of each clip
    let mut items: Vec<(String, Vec<f32>)> = Vec::new();
    for c in clips {
        let y = load(
            format!("{}/data/clips/{c}", env!("CARGO_MANIFEST_DIR")),
            &LoadOptions::at(16_000),
        )?;
        for (i, e) in m
            .embed_windows(y.samples())?
            .into_iter()
            .take(3)
            .enumerate()
        {
            items.push((format!("{}@{:.0}s", &c[..8], i as f64 * secs), e));
        }
    }
    println!(
        "{} embeddings of {} dimensions",
        items.len(),
        items[0].1.len()
    );
    // ## 2. The cosine-similarity matrix
    print!("{:>16}", "");
    for (name, _) in &items {
        print!("{name:>14}");
    }
    println!();
    for (a, ea) in &items {
        print!("{a:>16}");
        for (_, eb) in &items {
            print!("{:>14.3}", cosine(ea, eb));
        }
        println!();
    }
    // ## 3. Nearest neighbour of the first excerpt (excluding itself)
    let q = &items[0];
    let best = items[1..]
        .iter()
        .max_by(|x, y| cosine(&q.1, &x.1).total_cmp(&cosine(&q.1, &y.1)))
        .expect("items");
    println!(
        "\nnearest to {}: {} ({:.3})",
        q.0,
        best.0,
        cosine(&q.1, &best.1)
    );
    Ok(())
}
