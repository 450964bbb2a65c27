//! Model and weight files: safetensors through every loader a user's file reaches —
//! the header reader, `load_pretrained` (musicnn 0.1.0 or Won 2020 layout, told apart by
//! tensor names), a `mirkit train` model (`ScratchModel::load`), a transfer head
//! (`Head::load`) and a fine-tuned network (`FineTune::load`). Errors are fine; a panic,
//! an abort, a hang or an allocation over the limit is a finding.
//!
//! The first byte picks how the rest is read: even — the bytes are the whole file; odd —
//! the bytes are the JSON header only, and the file is built around it (length prefix,
//! then zeros up to the largest data offset the header names, at most 16 MiB), so the
//! fuzzer works on names, shapes, dtypes and metadata instead of on tensor data.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// Largest data section a header-only input may ask for.
const MAX_DATA: u64 = 16 << 20;

fn file_around_header(header: &[u8]) -> Vec<u8> {
    // the data section the header needs: the largest `data_offsets` end, when it parses
    let need = serde_json::from_slice::<serde_json::Value>(header)
        .ok()
        .and_then(|v| {
            v.as_object().map(|o| {
                o.values()
                    .filter_map(|t| t.get("data_offsets")?.get(1)?.as_u64())
                    .max()
                    .unwrap_or(0)
            })
        })
        .unwrap_or(0)
        .min(MAX_DATA) as usize;
    let mut f = Vec::with_capacity(8 + header.len() + need);
    f.extend_from_slice(&(header.len() as u64).to_le_bytes());
    f.extend_from_slice(header);
    f.resize(8 + header.len() + need, 0);
    f
}

fn load_everything(path: &Path, bytes: &[u8]) {
    let _ = mirkit_models::weights::Header::from_bytes(bytes, "fuzz");
    let _ = mirkit_models::weights::Header::read(path);
    let name = path.to_str().expect("UTF-8 temporary path");
    let _ = mirkit_models::registry::load_pretrained(name);
    let _ = mirkit_train::zoo::ScratchModel::load(path);
    let _ = mirkit_transfer::heads::Head::load(path);
    let _ = mirkit_transfer::finetune::FineTune::load(name);
}

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static PATH: std::path::PathBuf = {
            let dir = std::env::var_os("MIRKIT_FUZZ_TMP").map(Into::into).unwrap_or_else(std::env::temp_dir);
            dir.join(format!("mirkit-fuzz-{}.safetensors", std::process::id()))
        };
    }
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let bytes = if mode % 2 == 1 {
        file_around_header(rest)
    } else {
        rest.to_vec()
    };
    PATH.with(|p| {
        if std::fs::write(p, &bytes).is_ok() {
            load_everything(p, &bytes);
        }
    });
});
