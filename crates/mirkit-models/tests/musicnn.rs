//! musicnn 0.1.0 taggers against the original TensorFlow models (tools/make_musicnn_fixtures.py:
//! musicnn/models.py run by TensorFlow 2.16.2 in v1 mode, checkpoints from the PyPI wheel,
//! whose variables the script checks bit-equal to crates/mirkit-weights-{musicnn,vgg}/weights/*.safetensors) on 29 s of
//! the Brahms clip at 16 kHz.
//!
//! Tolerances: 1e-4 on sigmoid scores given the same patches (the parity bar;
//! the networks differ only by f32 summation order — measured ≤ 3e-6). Intermediate
//! features within 1e-4 relative to each feature's largest magnitude. From the audio,
//! mirkit's front end must give the same patches within 2 f32 ulps, except where the f32
//! mel sits on a float16 rounding boundary and lands on the other side of it: the test
//! bounds such flips (one float16 step of the mel each, under 0.1 % of the values) and
//! the effect on the scores at 1e-3.

use candle_core::{Device, Tensor};
use mirkit_core::npy;
use mirkit_models::musicnn::{Kind, Musicnn, PATCH_FRAMES};
use mirkit_models::registry::Pretrained;
use mirkit_models::ModelError;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..")
}
fn fx(name: &str) -> (Vec<f32>, Vec<usize>) {
    let a = npy::read(root().join("tests/fixtures").join(format!("{name}.npy"))).unwrap();
    (a.data.iter().map(|&v| v as f32).collect(), a.shape.clone())
}
fn model(name: &str) -> Musicnn {
    Musicnn::load(root().join(format!(
        "crates/mirkit-weights-{}/weights/{name}.safetensors",
        name.split('-').next().unwrap()
    )))
    .unwrap()
}
fn patches() -> Tensor {
    let (p, shape) = fx("musicnn/brahms_patches");
    Tensor::from_vec(p, shape.as_slice(), &Device::Cpu).unwrap()
}
fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn all_four_models_match_tensorflow_on_the_same_patches() {
    let x = patches();
    for (name, kind) in [
        ("musicnn-mtt", Kind::Musicnn),
        ("musicnn-msd", Kind::Musicnn),
        ("vgg-mtt", Kind::Vgg),
        ("vgg-msd", Kind::Vgg),
    ] {
        let m = model(name);
        assert_eq!(m.kind(), kind);
        assert_eq!(m.tags().len(), 50);
        let got: Vec<f32> = m.tag_patches(&x).unwrap().concat();
        let (want, shape) = fx(&format!("musicnn/{name}_brahms"));
        assert_eq!(shape, vec![9, 50]);
        let err = max_abs(&got, &want);
        eprintln!("{name}: max |score - TF| = {err:.2e}");
        assert!(err <= 1e-4, "{name}: {err}");
        // the averaged scores rank the same top 10
        let mean = |v: &[f32]| -> Vec<f32> {
            (0..50)
                .map(|j| (0..9).map(|i| v[i * 50 + j]).sum::<f32>() / 9.0)
                .collect()
        };
        let top10 = |s: &[f32]| {
            let mut i: Vec<usize> = (0..50).collect();
            i.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
            i.truncate(10);
            i
        };
        assert_eq!(top10(&mean(&got)), top10(&mean(&want)), "{name}");
    }
}

#[test]
fn named_features_match_tensorflow() {
    let x = patches().narrow(0, 0, 1).unwrap();
    for (name, feats) in [
        ("musicnn-mtt", Kind::Musicnn.feature_names()),
        ("vgg-mtt", Kind::Vgg.feature_names()),
    ] {
        let m = model(name);
        let got = m.features(&x).unwrap();
        let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, feats);
        for (n, t) in got {
            let t = t.squeeze(0).unwrap();
            // the fixture keeps per-channel means of the two largest VGG pools
            let t = if n == "pool1" || n == "pool2" {
                t.mean(0).unwrap().mean(0).unwrap()
            } else {
                t
            };
            let (want, shape) = fx(&format!("musicnn/{name}_{n}"));
            assert_eq!(t.dims(), shape.as_slice(), "{name} {n}");
            let got: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
            let scale = want.iter().fold(0.0f32, |a, b| a.max(b.abs()));
            let err = max_abs(&got, &want) / scale;
            eprintln!("{name} {n}: max relative error {err:.1e}");
            assert!(err <= 1e-4, "{name} {n}: {err}");
        }
    }
}

#[test]
fn from_audio_the_front_end_and_scores_match() {
    let (audio, _) = fx("models/brahms_16k_29s");
    let m = model("musicnn-mtt");
    let p = m.patches(&m.log_mel(&audio).unwrap()).unwrap();
    assert_eq!(p.dims(), &[9, PATCH_FRAMES, 96]);
    let got: Vec<f32> = p.flatten_all().unwrap().to_vec1().unwrap();
    let (want, _) = fx("musicnn/brahms_patches");
    // equal within 2 f32 ulps (the log10 kernels differ), or apart by one float16 step of
    // the rounded mel x: log10(e)·10000·step(x)/(1 + 10000x)
    let mut flips = 0usize;
    for (a, b) in got.iter().zip(&want) {
        if (a.to_bits() as i64 - b.to_bits() as i64).abs() > 2 {
            let z = 10f64.powf(*b as f64);
            let x = (z - 1.0) / 1e4;
            let step_x = 2f64.powi(x.max(2f64.powi(-14)).log2().floor() as i32 - 10);
            let tol = std::f64::consts::LOG10_E * 1e4 * step_x / z * 1.01 + 1e-6;
            assert!(((a - b).abs() as f64) <= tol, "{a} vs {b}");
            flips += 1;
        }
    }
    eprintln!(
        "front end: {flips} of {} values differ by a float16 flip",
        got.len()
    );
    assert!(flips * 1000 < got.len(), "{flips} flips");
    let m = Pretrained::Musicnn(m);
    let scores = m.tag(&audio).unwrap();
    let (per_patch, _) = fx("musicnn/musicnn-mtt_brahms");
    let want: Vec<f32> = (0..50)
        .map(|j| (0..9).map(|i| per_patch[i * 50 + j]).sum::<f32>() / 9.0)
        .collect();
    let err = max_abs(&scores, &want);
    eprintln!(
        "from audio: max |score - TF| = {err:.2e}; top 5 {:?}",
        mirkit_models::scores::top_k(m.tags(), &scores, 5)
    );
    assert!(err <= 1e-3, "{err}");
    let top = |s: &[f32]| {
        let mut i: Vec<usize> = (0..50).collect();
        i.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
        i.truncate(5);
        i
    };
    assert_eq!(top(&scores), top(&want));
    assert_eq!(m.tags()[top(&scores)[0]], "classical");
}

#[test]
fn short_files_are_repeat_padded_and_bad_input_is_typed() {
    let m = model("musicnn-mtt");
    // 1 s: 63 frames, repeated to one 187-frame patch
    let one_s: Vec<f32> = (0..16000)
        .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 16000.0).sin() * 0.3)
        .collect();
    let mel = m.log_mel(&one_s).unwrap();
    assert_eq!(mel.dims(), &[63, 96]);
    let p = m.patches(&mel).unwrap();
    assert_eq!(p.dims(), &[1, PATCH_FRAMES, 96]);
    let row = |t: &Tensor, i: usize| -> Vec<f32> { t.get(i).unwrap().to_vec1().unwrap() };
    assert_eq!(row(&p.squeeze(0).unwrap(), 63), row(&mel, 0));
    let pm = Pretrained::Musicnn(m);
    assert_eq!(pm.tag(&one_s).unwrap().len(), 50);
    assert!(matches!(pm.tag(&[]), Err(ModelError::Input(_))));
    // the driver in odd-sized blocks gives the windows of the whole signal, bit for bit
    // (9 s: three patches, so both the pair and the single-patch paths run)
    let nine: Vec<f32> = (0..9 * 16000)
        .map(|i| (i as f32 * 0.013).sin() * 0.2 + (i as f32 * 0.0007).cos() * 0.1)
        .collect();
    let whole = pm.tag_windows(&nine).unwrap();
    assert_eq!(whole.len(), 3);
    let mut s = pm.stream::<mirkit_models::windows::Scores>();
    let mut got = Vec::new();
    for b in nine.chunks(7777) {
        s.push(b).unwrap();
        got.append(&mut s.take_ready());
    }
    assert_eq!(s.windows(), got.len());
    got.append(&mut s.finish().unwrap());
    assert_eq!(got, whole);
    assert!(pm.tag(&[f32::NAN; 1000]).is_err());
    let Pretrained::Musicnn(m) = pm else {
        unreachable!()
    };
    let vgg = model("vgg-mtt");
    let short = Tensor::zeros((1, 100, 96), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(vgg.forward(&short), Err(ModelError::Input(_))));
    // musicnn takes any patch length
    assert_eq!(m.forward(&short).unwrap().dims(), &[1, 50]);
    let wrong = Tensor::zeros((1, 187, 40), candle_core::DType::F32, &Device::Cpu).unwrap();
    assert!(matches!(m.forward(&wrong), Err(ModelError::Input(_))));
}

#[test]
fn wrong_weights_name_the_tensor() {
    use std::collections::HashMap;
    let path = root().join("crates/mirkit-weights-musicnn/weights/musicnn-mtt.safetensors");
    let mut map = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let meta: HashMap<String, String> = [
        (
            "tags".to_string(),
            serde_json::to_string(&vec!["a"; 50]).unwrap(),
        ),
        ("arch".to_string(), "musicnn".to_string()),
    ]
    .into();
    let dir = std::env::temp_dir().join(format!("mirkit-musicnn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let save = |map: &HashMap<String, Tensor>, name: &str| {
        let p = dir.join(name);
        let data: Vec<(&String, &Tensor)> = map.iter().collect();
        safetensors::tensor::serialize_to_file(data, Some(meta.clone()), &p).unwrap();
        p
    };
    let mut bad = map.clone();
    bad.insert(
        "dense/kernel".into(),
        Tensor::zeros((1506, 199), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    let e = Musicnn::load(save(&bad, "shape.safetensors"))
        .err()
        .unwrap();
    assert!(
        matches!(e, ModelError::WrongShape { ref name, .. } if name == "dense/kernel"),
        "{e}"
    );
    map.remove("conv2d_3/bias");
    let e = Musicnn::load(save(&map, "missing.safetensors"))
        .err()
        .unwrap();
    assert!(
        matches!(e, ModelError::MissingTensor { ref name, .. } if name == "conv2d_3/bias"),
        "{e}"
    );
    std::fs::write(dir.join("trunc.safetensors"), b"\x10\x00\x00").unwrap();
    assert!(Musicnn::load(dir.join("trunc.safetensors")).is_err());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pooled_features_and_embeddings_have_the_documented_sizes() {
    let x = patches().narrow(0, 0, 2).unwrap();
    let m = model("musicnn-mtt");
    let dims: Vec<(String, Vec<usize>)> = m
        .pooled_features(&x)
        .unwrap()
        .into_iter()
        .map(|(n, t)| (n, t.dims().to_vec()))
        .collect();
    let want = [
        ("timbral", 408),
        ("temporal", 153),
        ("cnn1", 64),
        ("cnn2", 64),
        ("cnn3", 64),
        ("mean_pool", 753),
        ("max_pool", 753),
        ("penultimate", 200),
    ];
    for ((n, d), (wn, wd)) in dims.iter().zip(want) {
        assert_eq!((n.as_str(), d.as_slice()), (wn, [2, wd].as_slice()));
    }
    let e = m.embedding(&x).unwrap();
    assert_eq!((e.len(), e[0].len()), (2, 200));
    // the embedding is the penultimate feature itself
    let (want, _) = fx("musicnn/musicnn-mtt_penultimate");
    assert!(max_abs(&e[0], &want) < 1e-4);
    let v = model("vgg-mtt");
    let e = v.embedding(&x).unwrap();
    assert_eq!(e[0].len(), 256);
    for (_, t) in v.pooled_features(&x).unwrap() {
        assert_eq!(t.dims(), &[2, 128]);
    }
}
