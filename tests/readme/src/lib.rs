//! The README's library snippets, compiled as a crate that depends on `mirkit` by path
//! with default features, exactly as a user's crate would (nothing private, no
//! workspace-only dependency). `build.rs` copies every ```rust block of the README's
//! "## Library" section into a function; the test runs each in a folder holding the
//! files the snippets name (`song.ogg`, `song.mp3`). A README edit that breaks a snippet
//! breaks `cargo test --workspace`.

include!(concat!(env!("OUT_DIR"), "/snippets.rs"));

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn readme_library_snippets_compile_and_run() {
        let root = Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../..");
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            root.join("data/clips/brahms_hungarian_dance_5.hq.ogg"),
            dir.path().join("song.ogg"),
        )
        .unwrap();
        std::fs::copy(
            root.join("tests/fixtures/formats/tone.mp3"),
            dir.path().join("song.mp3"),
        )
        .unwrap();
        // the snippets name files relative to the working folder, as a user's program
        // would; this crate has this one test, so nothing else sees the change
        std::env::set_current_dir(dir.path()).unwrap();
        assert!(super::SNIPPETS.len() >= 3, "the README lost its snippets");
        for (i, snippet) in super::SNIPPETS.iter().enumerate() {
            if let Err(e) = snippet() {
                panic!("README snippet {} failed: {e}", i + 1);
            }
        }
    }
}
