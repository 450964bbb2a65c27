//! Any bytes as a `.npy` file: parsed, then converted to f32 arrays.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(a) = mirkit_core::npy::from_bytes(data) {
        if a.shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .is_some_and(|n| n < 1 << 24)
        {
            let _ = a.to_f32_2d();
        }
    }
});
