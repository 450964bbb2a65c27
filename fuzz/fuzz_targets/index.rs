//! The JSON and CSV mirkit reads back from its own outputs. The first byte picks:
//!
//! * even — an embedding index folder (`mirkit embed -o DIR`, read by `similar` and
//!   `embed --update`): after two little-endian `u16` lengths, the bytes are `meta.json`,
//!   `index.csv` and `embeddings.npy`; the folder is loaded and, when it loads, searched,
//!   and a playlist is drawn from it;
//! * odd — a `mirkit tag --format json` output as `tag --resume` reads it: parsed as
//!   tag records, and what parses must write back and parse again to the same records
//!   and the same bytes (what makes a resumed output byte-identical).
//!
//! Errors are fine; a panic, an abort, a hang or an allocation over the limit is a finding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mirkit::index::{EmbeddingIndex, PlaylistOptions};
use mirkit::tagger::TagRecord;
use std::path::PathBuf;

fn index_folder(dir: &PathBuf, data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let meta_len = u16::from_le_bytes([data[0], data[1]]) as usize;
    let csv_len = u16::from_le_bytes([data[2], data[3]]) as usize;
    let rest = &data[4..];
    let meta_end = meta_len.min(rest.len());
    let csv_end = (meta_end + csv_len).min(rest.len());
    for (name, bytes) in [
        ("meta.json", &rest[..meta_end]),
        ("index.csv", &rest[meta_end..csv_end]),
        ("embeddings.npy", &rest[csv_end..]),
    ] {
        if std::fs::write(dir.join(name), bytes).is_err() {
            return;
        }
    }
    if let Ok(index) = EmbeddingIndex::load(dir) {
        let dim = index.embeddings.ncols();
        let query: Vec<f32> = (0..dim).map(|i| (i as f32 * 0.37).sin()).collect();
        let _ = index.search(&query, 5);
        let opts = PlaylistOptions {
            diversity: 0.3,
            max_per_artist: Some(1),
            artist_depth: 1,
            ..Default::default()
        };
        let _ = index.playlist(&[query], 4, &opts);
    }
}

fn tag_records(data: &[u8]) {
    let Ok(first) = serde_json::from_slice::<Vec<TagRecord>>(data) else {
        return;
    };
    let written = serde_json::to_vec_pretty(&first).expect("records serialise");
    let second: Vec<TagRecord> =
        serde_json::from_slice(&written).expect("what mirkit writes, it reads back");
    assert_eq!(first, second, "tag records changed on a write/read round trip");
    let again = serde_json::to_vec_pretty(&second).expect("records serialise");
    assert_eq!(written, again, "tag records re-serialised to other bytes");
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static DIR: PathBuf = {
            let dir = std::env::var_os("MIRKIT_FUZZ_TMP")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir)
                .join(format!("mirkit-fuzz-index-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("fuzz work folder");
            dir
        };
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        DIR.with(|dir| index_folder(dir, rest));
    } else {
        tag_records(rest);
    }
});
