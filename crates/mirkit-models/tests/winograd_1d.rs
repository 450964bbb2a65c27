//! The sample-level networks at their published widths with the 1-D convolutions by
//! Winograd's F(4, 3) / F(2, 3) (the default eval path) against the same networks with
//! Winograd's paths off (tap products, the sums of builds before it), on two windows of
//! real music (the repository's Brahms clip at 16 kHz): every named feature within 1e-5
//! of its scale, and different bits (so the path ran).
//!
//! Its own test binary: `set_winograd` is process-wide, and the other binaries' tests
//! must not see it switched.

use candle_core::{Device, Tensor};
use mirkit_models::create;
use mirkit_models::rese2::{ReSe2, ReSe2Config};
use mirkit_models::sample_cnn::{SampleCnn, SampleCnnConfig};
use mirkit_nn::fused::{set_winograd, Winograd};
use std::path::PathBuf;

/// Two consecutive windows of 59 049 samples from `data/clips`' Brahms clip, decoded and
/// resampled to 16 kHz by mirkit-io, as `(2, 59049)`.
fn two_windows() -> Tensor {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data/clips/brahms_hungarian_dance_5.hq.ogg");
    let y = mirkit_io::load(
        path,
        &mirkit_io::LoadOptions {
            sr: Some(16000),
            offset: 5.0,
            duration: Some(8.0),
            ..Default::default()
        },
    )
    .unwrap();
    let n = 2 * 59049;
    Tensor::from_vec(y.samples()[..n].to_vec(), (2, 59049), &Device::Cpu).unwrap()
}

/// Each feature's largest difference over its largest magnitude, by name, and whether
/// any bit differed.
fn compare(a: &[(String, Tensor)], b: &[(String, Tensor)]) -> (Vec<(String, f32)>, bool) {
    let mut differ = false;
    let errs = a
        .iter()
        .zip(b)
        .map(|((name, x), (nb, y))| {
            assert_eq!(name, nb);
            let x: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
            let y: Vec<f32> = y.flatten_all().unwrap().to_vec1().unwrap();
            differ |= x.iter().zip(&y).any(|(p, q)| p.to_bits() != q.to_bits());
            let scale = y.iter().fold(0f32, |m, v| m.max(v.abs()));
            let diff = x
                .iter()
                .zip(&y)
                .fold(0f32, |m, (p, q)| m.max((p - q).abs()));
            (name.clone(), diff / scale.max(f32::MIN_POSITIVE))
        })
        .collect();
    (errs, differ)
}

#[test]
fn published_widths_match_the_tap_products() {
    let x = two_windows();
    let (rese2, _) = create::seeded(|vb| ReSe2::new(&ReSe2Config::published(), vb), 7).unwrap();
    let (scnn, _) = create::seeded(
        |vb| SampleCnn::new(&SampleCnnConfig::published(false), vb),
        8,
    )
    .unwrap();
    let run = || {
        (
            rese2.features(&x, false, None).unwrap(),
            scnn.features(&x, false).unwrap(),
        )
    };
    let (r_on, s_on) = run();
    set_winograd(Winograd::Off);
    let (r_off, s_off) = run();
    set_winograd(Winograd::F2x2);
    for (model, on, off) in [("ReSE-2", r_on, r_off), ("SampleCNN", s_on, s_off)] {
        let (errs, differ) = compare(&on, &off);
        assert!(differ, "{model}: the Winograd path did not run");
        for (name, e) in errs {
            eprintln!("{model} {name}: {e:.2e}");
            assert!(e <= 1e-5, "{model} {name}: {e:.2e}");
        }
    }
}
