//! Any text as an augmentation record (`mirkit augment --record`), replayed on a short
//! signal: parsed and replayed, or refused with a typed error.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(records) = mirkit_augment::records_from_json(text) {
        let y: Vec<f32> = (0..4000).map(|i| (i as f32 * 0.05).sin() * 0.5).collect();
        let _ = mirkit_augment::replay(&records, &y, 8000);
    }
});
