//! SampleCNN / SampleCNN+SE against the same architectures in PyTorch 2.5.1 with random
//! weights (tools/make_model_fixtures.py). The wiring is tested at full depth and input
//! length with narrow channels (8–32) to keep fixtures small; parameter counts of the
//! published widths are compared with PyTorch's. Tolerance 1e-4 on sigmoid outputs.

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use mirkit_models::sample_cnn::{SampleCnn, SampleCnnConfig};
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../tests/fixtures/models")
}

#[test]
fn samplecnn_and_se_match_pytorch() {
    let a = mirkit_core::npy::read(dir().join("samplecnn_x.npy")).unwrap();
    let x = Tensor::from_vec(
        a.data.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
        (2, 59049),
        &Device::Cpu,
    )
    .unwrap();
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("param_counts.json")).unwrap()).unwrap();
    for (name, se) in [("samplecnn", false), ("samplecnn_se", true)] {
        let cfg = SampleCnnConfig {
            channels: [8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32],
            n_class: 50,
            se,
        };
        let w = candle_core::safetensors::load(
            dir().join(format!("{name}_small.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        let m =
            SampleCnn::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).unwrap();
        let y: Vec<f32> = m
            .forward_t(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want: Vec<f32> = mirkit_core::npy::read(dir().join(format!("{name}_small_y.npy")))
            .unwrap()
            .data
            .iter()
            .map(|&v| v as f32)
            .collect();
        let e = y
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(e <= 1e-4, "{name}: {e}");
        assert_eq!(
            SampleCnnConfig::published(se).param_count() as u64,
            counts[name].as_u64().unwrap(),
            "{name} parameter count"
        );
    }
    let cfg = SampleCnnConfig {
        channels: [8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32],
        n_class: 50,
        se: false,
    };
    let w = candle_core::safetensors::load(dir().join("samplecnn_small.safetensors"), &Device::Cpu)
        .unwrap();
    let m = SampleCnn::new(&cfg, VarBuilder::from_tensors(w, DType::F32, &Device::Cpu)).unwrap();
    assert!(m
        .forward_t(
            &Tensor::zeros((1, 1000), DType::F32, &Device::Cpu).unwrap(),
            false
        )
        .is_err());
}

#[test]
fn short_chunk_cnn_and_resnet_match_pytorch() {
    use mirkit_models::short_chunk::{ShortChunk, ShortChunkConfig};
    let a = mirkit_core::npy::read(dir().join("shortchunk_x.npy")).unwrap();
    let x = Tensor::from_vec(
        a.data.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
        (2, 1, 128, 231),
        &Device::Cpu,
    )
    .unwrap();
    let counts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir().join("param_counts.json")).unwrap()).unwrap();
    for (name, residual) in [("shortchunk_cnn", false), ("shortchunk_res", true)] {
        let w = candle_core::safetensors::load(
            dir().join(format!("{name}_small.safetensors")),
            &Device::Cpu,
        )
        .unwrap();
        let m = ShortChunk::new(
            &ShortChunkConfig {
                channels: 8,
                residual,
                n_class: 50,
            },
            VarBuilder::from_tensors(w, DType::F32, &Device::Cpu),
        )
        .unwrap();
        let y: Vec<f32> = m
            .forward_t(&x, false)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let want: Vec<f32> = mirkit_core::npy::read(dir().join(format!("{name}_small_y.npy")))
            .unwrap()
            .data
            .iter()
            .map(|&v| v as f32)
            .collect();
        let e = y
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(e <= 1e-4, "{name}: {e}");
        assert_eq!(
            ShortChunkConfig::published(residual).param_count() as u64,
            counts[name].as_u64().unwrap(),
            "{name} parameter count"
        );
    }
}

#[test]
fn named_features_of_samplecnn_and_short_chunk() {
    use mirkit_models::create;
    let cfg = SampleCnnConfig {
        channels: [8, 8, 8, 16, 16, 16, 16, 16, 16, 32, 32],
        n_class: 50,
        se: true,
    };
    let m = create::load(dir().join("samplecnn_se_small.safetensors"), |vb| {
        SampleCnn::new(&cfg, vb)
    })
    .unwrap();
    let x = Tensor::zeros((1, 59049), DType::F32, &Device::Cpu).unwrap();
    let f = m.features(&x, false).unwrap();
    assert_eq!(f.len(), 12);
    assert_eq!(f[0].0, "layer1");
    assert_eq!(f[0].1.dims(), &[1, 8, 19683]);
    assert_eq!(f[11].0, "embedding");
    let e = m.embedding_t(&x, false).unwrap();
    assert_eq!(
        f[11].1.to_vec2::<f32>().unwrap(),
        e.to_vec2::<f32>().unwrap()
    );
    use mirkit_models::short_chunk::{ShortChunk, ShortChunkConfig};
    let sc = ShortChunkConfig {
        channels: 8,
        residual: true,
        n_class: 50,
    };
    let (m, _) = create::seeded(|vb| ShortChunk::new(&sc, vb), 5).unwrap();
    let x = Tensor::ones((1, 1, 128, 231), DType::F32, &Device::Cpu).unwrap();
    let f = m.features(&x, false).unwrap();
    let names: Vec<&str> = f.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[6..], ["layer7", "pooled", "embedding"]);
    assert_eq!(f[8].1.dims(), &[1, 32]);
}
