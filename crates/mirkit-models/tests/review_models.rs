//! The review's architectures without public weights — ReSE-2-Multi (Kim et al. 2018),
//! FCN-4 (Choi et al. 2016), the 1-D CNN of Dieleman & Schrauwen 2014 (mel and raw) —
//! against PyTorch ports with random weights (tools/make_model_fixtures.py, torch 2.5.1),
//! eval mode. Tolerance 1e-4 on sigmoid outputs (the bar; f32 summation order is
//! the only difference). Parameter counts of the published configurations equal PyTorch's.

use candle_core::{Device, Tensor};
use mirkit_core::npy;
use mirkit_models::cnn1d::{Cnn1d, Cnn1dConfig, Input};
use mirkit_models::fcn4::{Fcn4, Fcn4Config};
use mirkit_models::rese2::{ReSe2, ReSe2Config};
use mirkit_models::{create, ModelError};
use std::path::PathBuf;

fn fx(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../tests/fixtures/models")
    .join(name)
}
/// The fixture script's deterministic input: sin(0.001·i·(1 + i mod 7)).
fn wavy(shape: &[usize]) -> Tensor {
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|i| (0.001 * i as f64 * (1 + i % 7) as f64).sin() as f32)
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}
fn check(name: &str, got: &Tensor) {
    let want = npy::read(fx(&format!("{name}_y.npy"))).unwrap();
    assert_eq!(got.dims(), want.shape.as_slice(), "{name}");
    let got: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    let err = got
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (*a as f64 - *b).abs())
        .fold(0.0, f64::max);
    eprintln!("{name}: max |y - torch| = {err:.2e}");
    assert!(err <= 1e-4, "{name}: {err}");
}
fn counts() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fx("param_counts.json")).unwrap()).unwrap()
}

#[test]
fn rese2_matches_pytorch() {
    let cfg = ReSe2Config {
        init: 4,
        alpha: 2,
        n_class: 50,
    };
    let m = create::load(fx("rese2_small.safetensors"), |vb| ReSe2::new(&cfg, vb)).unwrap();
    check(
        "rese2_small",
        &m.forward(&wavy(&[2, 59049]), false, None).unwrap(),
    );
    let f = m.features(&wavy(&[1, 59049]), false, None).unwrap();
    let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[..2], ["block1", "block2"]);
    assert_eq!(names[9..], ["multi_level", "embedding"]);
    assert_eq!(f[8].1.dims(), &[1, 16, 1]);
    assert_eq!(f[9].1.dims(), &[1, cfg.feature_dim()]);
    assert_eq!(
        ReSe2Config::published().param_count() as u64,
        counts()["rese2_multi"].as_u64().unwrap()
    );
    assert!(matches!(
        m.forward(&wavy(&[1, 48000]), false, None),
        Err(ModelError::Input(_))
    ));
}

#[test]
fn fcn4_matches_pytorch() {
    let cfg = Fcn4Config {
        channels: [4, 6, 8, 10],
        n_class: 50,
    };
    let m = create::load(fx("fcn4_small.safetensors"), |vb| Fcn4::new(&cfg, vb)).unwrap();
    check(
        "fcn4_small",
        &m.forward(&wavy(&[2, 96, 1366]), false).unwrap(),
    );
    let f = m.features(&wavy(&[1, 96, 1366]), false).unwrap();
    assert_eq!(f[3].1.dims(), &[1, 10, 1, 1]);
    assert_eq!(
        Fcn4Config::published().param_count() as u64,
        counts()["fcn4"].as_u64().unwrap()
    );
    assert!(matches!(
        m.forward(&wavy(&[1, 96, 1000]), false),
        Err(ModelError::Input(_))
    ));
}

#[test]
fn dieleman_1d_cnn_matches_pytorch() {
    for (name, input, shape) in [
        ("dieleman_mel", Input::Mel, vec![2, 128, 94]),
        ("dieleman_raw", Input::Raw, vec![2, 48000]),
    ] {
        let cfg = Cnn1dConfig::published(input);
        let m = create::load(fx(&format!("{name}.safetensors")), |vb| {
            Cnn1d::new(&cfg, vb)
        })
        .unwrap();
        check(name, &m.forward(&wavy(&shape), None).unwrap());
        assert_eq!(
            cfg.param_count() as u64,
            counts()[name].as_u64().unwrap(),
            "{name}"
        );
        let f = m.features(&wavy(&shape)).unwrap();
        assert_eq!(f.last().unwrap().0, "embedding");
        assert_eq!(f.last().unwrap().1.dims(), &[2, 100]);
    }
    let m = create::seeded(|vb| Cnn1d::new(&Cnn1dConfig::published(Input::Mel), vb), 1)
        .unwrap()
        .0;
    assert!(matches!(
        m.forward(&wavy(&[1, 96, 94]), None),
        Err(ModelError::Input(_))
    ));
}

#[test]
fn seeded_creation_is_reproducible_and_loading_names_bad_tensors() {
    let cfg = ReSe2Config {
        init: 4,
        alpha: 2,
        n_class: 5,
    };
    let x = wavy(&[1, 59049]);
    let run = |seed| {
        let (m, vm) = create::seeded(|vb| ReSe2::new(&cfg, vb), seed).unwrap();
        (
            m.forward(&x, false, None)
                .unwrap()
                .to_vec2::<f32>()
                .unwrap(),
            vm,
        )
    };
    let (a, vm) = run(3);
    assert_eq!(a, run(3).0);
    assert_ne!(a, run(4).0);
    // batch norm starts at weight 1, bias 0, running variance 1
    let bn = vm.data().lock().unwrap()["block1.bn_1.weight"]
        .as_tensor()
        .clone();
    assert_eq!(bn.to_vec1::<f32>().unwrap(), vec![1.0; 4]);
    // save, reload, same outputs; a file for another configuration names the tensor
    let dir = std::env::temp_dir().join(format!("mirkit-review-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("rese2.safetensors");
    vm.save(&p).unwrap();
    let m = create::load(&p, |vb| ReSe2::new(&cfg, vb)).unwrap();
    assert_eq!(
        m.forward(&x, false, None)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap(),
        a
    );
    let other = ReSe2Config {
        n_class: 6,
        ..cfg.clone()
    };
    let e = create::load(&p, |vb| ReSe2::new(&other, vb)).err().unwrap();
    assert!(
        matches!(e, ModelError::WrongShape { ref name, .. } if name == "dense2.bias"),
        "{e}"
    );
    let fcn = create::load(&p, |vb| Fcn4::new(&Fcn4Config::published(), vb))
        .err()
        .unwrap();
    assert!(matches!(fcn, ModelError::MissingTensor { .. }), "{fcn}");
    // training mode with a seeded RNG: dropout is reproducible
    let mut r1 = mirkit_core::Rng::new(9);
    let mut r2 = mirkit_core::Rng::new(9);
    let t1 = m
        .forward(&x, true, Some(&mut r1))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let t2 = m
        .forward(&x, true, Some(&mut r2))
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    assert_eq!(t1, t2);
    std::fs::remove_dir_all(&dir).unwrap();
}
