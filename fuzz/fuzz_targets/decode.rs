//! Any bytes as an audio file (every container and codec symphonia and mirkit-io's own
//! WAV reader handle): `info`, then `load` at 16 kHz mono. Errors are fine; a panic that
//! escapes, an abort, a hang or an allocation over the limit is a finding.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    thread_local! {
        static PATH: std::path::PathBuf = {
            let dir = std::env::var_os("MIRKIT_FUZZ_TMP").map(Into::into).unwrap_or_else(std::env::temp_dir);
            dir.join(format!("mirkit-fuzz-{}.bin", std::process::id()))
        };
    }
    PATH.with(|p| {
        if std::fs::write(p, data).is_err() {
            return;
        }
        let _ = mirkit_io::info(p);
        let opts = mirkit_io::LoadOptions {
            sr: Some(16_000),
            duration: Some(5.0),
            ..Default::default()
        };
        let _ = mirkit_io::load(p, &opts);
    });
});
