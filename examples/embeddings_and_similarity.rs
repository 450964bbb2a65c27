//! # Embeddings and similarity
//!
//! `cargo run --release --example embeddings_and_similarity` — a pretrained tagger's
//! penultimate layer as a music embedding (transfer-learning features, Choi et al. 2017),
//! then cosine similarity between excerpts of the committed clips: excerpts of the same
//! piece should be closer to each other than to the other piece.

use mirkit::io::{load, LoadOptions};
use mirkit::models::won2020::cosine;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tagger = mirkit::Tagger::default()?;
    let m = tagger.model();
    let n = m.input_len();
    let clips = [
        "brahms_hungarian_dance_5.hq.ogg",
        "sorohanro_-_solo-trumpet-06.hq.ogg",
    ];
    // ## 1. Embed 3 s excerpts of each clip
    let mut items: Vec<(String, Vec<f32>)> = Vec::new();
    for c in clips {
        let y = load(
            format!("{}/data/clips/{c}", env!("CARGO_MANIFEST_DIR")),
            &LoadOptions::at(16_000),
        )?;
        for (i, w) in y.samples().chunks_exact(n).take(3).enumerate() {
            items.push((format!("{}@{}s", &c[..8], i * n / 16_000), m.embed(w)?));
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
