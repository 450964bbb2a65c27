//! Exact cosine search and playlists on an embedding index of 100,000 random 200-d
//! vectors (musicnn's embedding width): the latency a `mirkit similar` query pays after
//! the index is loaded (docs/applications.md).

use criterion::{criterion_group, criterion_main, Criterion};
use mirkit::index::{EmbeddingIndex, PlaylistOptions};
use mirkit::transfer::embed::Layers;

fn index(n: usize, dim: usize) -> EmbeddingIndex {
    let mut r = mirkit::core::rng::Rng::new(1);
    let rows = (0..n)
        .map(|i| {
            (
                format!("artist{}/album/track{i}.flac", i % 5000),
                (0..dim).map(|_| r.normal() as f32).collect(),
            )
        })
        .collect();
    EmbeddingIndex::new("random", Layers::Embedding, rows).unwrap()
}

fn bench(c: &mut Criterion) {
    let idx = index(100_000, 200);
    let q: Vec<f32> = idx.embeddings.row(7).to_vec();
    let mut g = c.benchmark_group("index_100k_x_200");
    g.sample_size(20);
    g.bench_function("search_top10", |b| b.iter(|| idx.search(&q, 10).unwrap()));
    let opts = PlaylistOptions {
        diversity: 0.3,
        max_per_artist: Some(2),
        artist_depth: 2,
        ..PlaylistOptions::default()
    };
    g.bench_function("playlist_20_mmr", |b| {
        b.iter(|| idx.playlist(std::slice::from_ref(&q), 20, &opts).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
