//! Data-set manifests as `mirkit train` / `finetune` read them: any text as a CSV manifest
//! (single-label with a split column, multi-label with `;`, a fixed class list, or
//! regression targets — the first byte picks), as MagnaTagATune's `annotations_final.csv`,
//! as an MTG-Jamendo split TSV, and as a GTZAN split list over a small folder tree.
//! What loads is then split (stratified, seeded) and turned into targets. Errors are
//! fine; a panic, an abort, a hang or an allocation over the limit is a finding.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mirkit_train::data::{CsvOptions, Dataset};
use std::path::{Path, PathBuf};

/// A folder for the manifest, with a two-genre GTZAN-style tree of (empty) audio files.
fn workdir() -> PathBuf {
    let dir = std::env::var_os("MIRKIT_FUZZ_TMP")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(format!("mirkit-fuzz-manifests-{}", std::process::id()));
    for genre in ["blues", "rock"] {
        let g = dir.join("gtzan").join(genre);
        std::fs::create_dir_all(&g).expect("fuzz work folder");
        for i in 0..3 {
            std::fs::write(g.join(format!("{genre}.0000{i}.wav")), b"").expect("fuzz file");
        }
    }
    dir
}

fn exercise(ds: Result<Dataset, mirkit_train::TrainError>) {
    if let Ok(mut ds) = ds {
        let items: Vec<_> = ds.items.clone();
        let _ = ds.targets(&items);
        if ds.stratified_split(0.2, 0.2, 7).is_ok() {
            for s in ["train", "valid", "test"] {
                if let Ok(part) = ds.split(s) {
                    let _ = ds.targets(&part);
                }
            }
        }
    }
}

fn options(mode: u8) -> CsvOptions {
    let mut o = CsvOptions::default();
    match mode % 4 {
        0 => {}
        1 => o.tag_separator = Some(';'),
        2 => o.classes = Some(vec!["a".into(), "b".into(), "c".into()]),
        _ => o.value_columns = Some(vec!["tempo".into(), "label".into()]),
    }
    o
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static DIR: PathBuf = workdir();
    }
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    DIR.with(|dir| {
        let file = dir.join("manifest.csv");
        if std::fs::write(&file, text).is_err() {
            return;
        }
        let f: &Path = &file;
        exercise(Dataset::csv_manifest(f, &options(mode)));
        exercise(Dataset::mtat(f, dir, None, &[]));
        exercise(Dataset::mtat(f, dir, None, &[("train", f)]));
        exercise(Dataset::jamendo(&[("train", f)], dir, None));
        exercise(Dataset::gtzan(dir.join("gtzan"), &[("train", f)]));
    });
});
