//! Won et al. 2020 taggers against the original PyTorch models (tools/make_model_fixtures.py:
//! the authors' best_model.pth, strict loading, eval mode, torch/torchaudio 2.5.1) on the
//! same 29 s of 16 kHz audio (the Brahms clip). Tolerance 1e-4 on sigmoid scores (the
//! issue's parity bar): the front end differs only by FFT round-off (f64 here, f32 in
//! torch) and the network by f32 summation order.

use mirkit_core::npy;
use mirkit_models::registry::Pretrained;
use mirkit_models::scores::average;
use mirkit_models::windows::Scores;
use mirkit_models::won2020::{Arch, Won2020};
use mirkit_models::ModelError;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..")
}
fn fx(name: &str) -> Vec<f32> {
    npy::read(
        root()
            .join("tests/fixtures/models")
            .join(format!("{name}.npy")),
    )
    .unwrap()
    .data
    .iter()
    .map(|&v| v as f32)
    .collect()
}

#[test]
fn fcn_and_crnn_match_pytorch() {
    let x = fx("brahms_16k_29s");
    for (arch, name) in [
        (Arch::Fcn, "fcn"),
        (Arch::Crnn, "crnn"),
        (Arch::Musicnn, "musicnn"),
    ] {
        let m = Won2020::load(
            arch,
            root().join(format!(
                "crates/mirkit-weights-won2020-mtat/weights/{name}.safetensors"
            )),
        )
        .unwrap();
        assert_eq!(m.tags().len(), 50);
        let got = m.tag_window(&x[..m.input_len()]).unwrap();
        let want = fx(&format!("won2020_{name}_mtat_brahms"));
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "won2020-{name}-mtat: max |score - torch| = {err:.2e}; top: {:?}",
            m.top_k(&got, 5)
        );
        assert!(err <= 1e-4, "{name}: {err}");
        // same top-10 order
        let order = |s: &[f32]| {
            let mut i: Vec<usize> = (0..s.len()).collect();
            i.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
            i.truncate(10);
            i
        };
        assert_eq!(order(&got), order(&want), "{name}: top-10 order");
        assert_eq!(m.top_k(&got, 1)[0].0, "classical");
    }
}

#[test]
fn protocol_windows_and_bad_inputs() {
    let m = Won2020::load(
        Arch::Fcn,
        root().join("crates/mirkit-weights-won2020-mtat/weights/fcn.safetensors"),
    )
    .unwrap();
    let x = fx("brahms_16k_29s");
    let one = m.tag_window(&x).unwrap();
    let m = Pretrained::Won2020(m);
    // a short file is zero-padded to one window
    let short = m.tag_windows(&x[..100_000]).unwrap();
    assert_eq!(short.len(), 1);
    let mut padded = x[..100_000].to_vec();
    padded.resize(x.len(), 0.0);
    let Pretrained::Won2020(w) = &m else {
        unreachable!()
    };
    assert_eq!(short[0], w.tag_window(&padded).unwrap());
    // 1.5 windows -> one window (remainder dropped), equal to tagging that window
    let mut long = x.clone();
    long.extend_from_slice(&x[..232_000]);
    let w2 = m.tag_windows(&long).unwrap();
    assert_eq!(w2.len(), 1);
    assert_eq!(average(&w2), one);
    assert_eq!(m.tag(&long).unwrap(), one);
    // streamed in odd-sized blocks: the same windows
    let mut s = m.stream::<Scores>();
    let mut got = Vec::new();
    for b in long.chunks(12_345) {
        s.push(b).unwrap();
        got.append(&mut s.take_ready());
    }
    got.append(&mut s.finish().unwrap());
    assert_eq!(got, w2);
    assert!(matches!(
        w.tag_window(&x[..1000]),
        Err(ModelError::Input(_))
    ));
    let mut nan = x.clone();
    nan[5] = f32::NAN;
    assert!(matches!(w.tag_window(&nan), Err(ModelError::Input(_))));
    assert!(matches!(m.tag(&nan), Err(ModelError::Input(_))));
    assert!(matches!(m.tag_windows(&[]), Err(ModelError::Input(_))));
    // loading the FCN weights as a CRNN names the first missing tensor
    let e = Won2020::load(
        Arch::Crnn,
        root().join("crates/mirkit-weights-won2020-mtat/weights/fcn.safetensors"),
    )
    .err()
    .unwrap();
    assert!(
        matches!(&e, ModelError::WrongShape { name, .. } | ModelError::MissingTensor { name, .. } if name.starts_with("layer")),
        "{e}"
    );
    // a file that is not safetensors
    let bad = std::env::temp_dir().join(format!("mirkit-bad-{}.safetensors", std::process::id()));
    std::fs::write(&bad, b"definitely not weights").unwrap();
    assert!(Won2020::load(Arch::Fcn, &bad).is_err());
    std::fs::remove_file(&bad).unwrap();
}

/// Every registry model (MTAT, MSD, Jamendo) against the original PyTorch model.
#[test]
fn registry_models_load_from_the_binary_and_match_pytorch() {
    let x = fx("brahms_16k_29s");
    let first = |ds: &str| match ds {
        "mtat" => "guitar",
        "msd" => "rock",
        _ => "genre---alternative",
    };
    use mirkit_models::registry::Family;
    for e in mirkit_models::registry::MODELS {
        let Family::Won2020(arch) = e.family else {
            // musicnn 0.1.0 models: tests/musicnn.rs; registry::load refuses them
            assert!(mirkit_models::registry::load(e.name).is_err());
            assert!(mirkit_models::registry::load_pretrained(e.name).is_ok());
            continue;
        };
        let m = mirkit_models::registry::load(e.name).unwrap();
        assert_eq!(m.arch(), arch);
        let parts: Vec<&str> = e.name.split('-').collect(); // won2020-<model>-<dataset>
        assert_eq!(m.tags().len(), 50);
        let got = m.tag_window(&x[..m.input_len()]).unwrap();
        let want = fx(&format!("won2020_{}_{}_brahms", parts[1], parts[2]));
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("{}: max |score - torch| = {err:.2e}", e.name);
        assert!(err <= 1e-4, "{}: {err}", e.name);
        assert_eq!(m.tags()[0], first(parts[2]), "{}: tag order", e.name);
    }
    let e = mirkit_models::registry::load("no-such-model")
        .err()
        .unwrap();
    assert!(e.to_string().contains("won2020-fcn-mtat"), "{e}");
}

#[test]
fn embeddings_have_the_documented_sizes_and_rank_like_with_like() {
    let x = fx("brahms_16k_29s");
    for (name, dim) in [
        ("won2020-fcn-mtat", 64),
        ("won2020-crnn-mtat", 32),
        ("won2020-musicnn-mtat", 200),
    ] {
        let m = mirkit_models::registry::load(name).unwrap();
        let n = m.input_len();
        let e = m.embed_window(&x[..n]).unwrap();
        assert_eq!(e.len(), dim, "{name}");
        // the head on the embedding gives the tag scores
        assert_eq!(m.tag_window(&x[..n]).unwrap().len(), 50);
    }
    // musicnn: two windows of the same piece are closer than the piece and silence-ish noise
    let m = mirkit_models::registry::load("won2020-musicnn-mtat").unwrap();
    let a = m.embed_window(&x[..48000]).unwrap();
    let b = m.embed_window(&x[48000..96000]).unwrap();
    let noise: Vec<f32> = (0..48000)
        .map(|i| (((i * 7919) % 1000) as f32 / 1000.0 - 0.5) * 0.1)
        .collect();
    let c = m.embed_window(&noise).unwrap();
    assert!(mirkit_models::scores::cosine(&a, &b) > mirkit_models::scores::cosine(&a, &c));
}

/// From the original 44.1 kHz Ogg file through mirkit's own decoder and resampler (not
/// librosa's soxr) the scores stay within 1e-2 of the PyTorch reference (issue #5's bar
/// for resampler differences), with the same top-5. Measured: FCN 1.5e-3, CRNN 1.8e-3,
/// Musicnn 1.7e-3 with the FFT resampler (`Fast`, 83.5 dB SNR against soxr HQ at 16 kHz);
/// the sinc preset (`High`, 73 dB) passes more energy just below 8 kHz than soxr, which
/// the FCN's top mel band turns into a 2.5e-2 difference — hence the taggers use `Fast`.
#[test]
fn from_the_44k_file_scores_stay_within_1e_2() {
    let y = mirkit_io::load(
        root().join("data/clips/brahms_hungarian_dance_5.hq.ogg"),
        &mirkit_io::LoadOptions {
            sr: Some(16000),
            offset: 5.0,
            duration: Some(29.0),
            quality: mirkit_io::ResampleQuality::Fast,
            ..Default::default()
        },
    )
    .unwrap();
    for name in ["fcn", "crnn", "musicnn"] {
        let m = mirkit_models::registry::load(&format!("won2020-{name}-mtat")).unwrap();
        let got = m.tag_window(&y.samples()[..m.input_len()]).unwrap();
        let want = fx(&format!("won2020_{name}_mtat_brahms"));
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!("won2020-{name}-mtat from 44.1 kHz: max |score - torch| = {err:.2e}");
        assert!(err <= 1e-2, "{name}: {err}");
        let top = |s: &[f32]| {
            let mut i: Vec<usize> = (0..s.len()).collect();
            i.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
            i.truncate(5);
            i
        };
        assert_eq!(top(&got), top(&want), "{name}: top-5 order");
    }
}

#[test]
fn batched_tagging_equals_window_by_window() {
    let m = mirkit_models::registry::load("won2020-musicnn-mtat").unwrap();
    let x = fx("brahms_16k_29s");
    let ws: Vec<&[f32]> = x.chunks_exact(48000).take(3).collect();
    let b = m.tag_batch(&ws).unwrap();
    for (w, s) in ws.iter().zip(&b) {
        let one = m.tag_window(w).unwrap();
        let e = one
            .iter()
            .zip(s)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(e <= 1e-5, "{e}");
    }
}
