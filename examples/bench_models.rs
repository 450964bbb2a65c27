//! # Model speed: forward and training step against PyTorch
//!
//! `cargo run --release --example bench_models` — times the zoo's two reference shapes
//! at batch 16 (SampleCNN on 59 049 raw samples; the short-chunk CNN, a 7-layer FCN, on
//! 128 mels × 128 frames): an eval-mode forward and a training step (train-mode forward,
//! binary cross-entropy, backward, Adam update). Then a per-op profile of the dominant
//! operations at the models' own shapes, to show where the time goes.
//! `tools/bench_models.py` runs the same work in PyTorch and prints the ratios.
//! Prints one JSON object.

use candle_core::{DType, Device, Tensor, Var};
use mirkit_models::create;
use mirkit_models::sample_cnn::{SampleCnn, SampleCnnConfig};
use mirkit_models::short_chunk::{ShortChunk, ShortChunkConfig};
use std::time::Instant;

const BATCH: usize = 16;
const REPS: usize = 3;

/// Median seconds of `REPS` runs after one warm-up.
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let mut t: Vec<f64> = (0..REPS)
        .map(|_| {
            let t0 = Instant::now();
            f();
            t0.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(f64::total_cmp);
    t[REPS / 2]
}

fn bce(p: &Tensor, y: &Tensor) -> Tensor {
    let p = p.clamp(1e-7, 1.0 - 1e-7).unwrap();
    let l = ((y * p.log().unwrap()).unwrap()
        + ((1.0 - y).unwrap() * (1.0 - &p).unwrap().log().unwrap()).unwrap())
    .unwrap();
    l.mean_all().unwrap().neg().unwrap()
}

fn bench(
    name: &str,
    x: &Tensor,
    forward: impl Fn(&Tensor, bool) -> Tensor,
    vars: Vec<Var>,
) -> serde_json::Value {
    let y = Tensor::zeros((BATCH, 50), DType::F32, &Device::Cpu).unwrap();
    let fwd = time(|| {
        forward(x, false);
    });
    let mut opt = mirkit_nn::optim::AdamW::adam_l2(vars, 1e-4, 0.0).unwrap();
    let step = time(|| {
        let loss = bce(&forward(x, true), &y);
        let g = loss.backward().unwrap();
        opt.step(&g).unwrap();
    });
    eprintln!("{name}: forward {fwd:.3} s, train step {step:.3} s");
    serde_json::json!({"forward_s": fwd, "train_step_s": step})
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let mut out = serde_json::Map::new();
    // SampleCNN, published widths (1.87 M parameters)
    let cfg = SampleCnnConfig::published(false);
    let (m, vm) = create::seeded(|vb| SampleCnn::new(&cfg, vb), 1)?;
    let x = (Tensor::randn(0f32, 0.1, (BATCH, 59_049), &dev)?).contiguous()?;
    out.insert(
        "samplecnn".into(),
        bench(
            "samplecnn",
            &x,
            |x, t| m.forward_t(x, t).unwrap(),
            vm.all_vars(),
        ),
    );
    // short-chunk CNN (a 7-layer FCN), published width 128 (3.69 M parameters)
    let sc = ShortChunkConfig::published(false);
    let (m, vm) = create::seeded(|vb| ShortChunk::new(&sc, vb), 1)?;
    let x = Tensor::randn(0f32, 1.0, (BATCH, 1, 128, 128), &dev)?;
    out.insert(
        "fcn_128x128".into(),
        bench(
            "fcn_128x128",
            &x,
            |x, t| m.forward_t(x, t).unwrap(),
            vm.all_vars(),
        ),
    );

    // per-op profile at the models' dominant shapes
    let mut ops = serde_json::Map::new();
    let mut op = |name: &str, f: &mut dyn FnMut()| {
        let s = time(f);
        eprintln!("  {name}: {:.1} ms", s * 1e3);
        ops.insert(name.into(), serde_json::json!(s));
    };
    // SampleCNN block 2: (16, 128, 6561) * (128, 128, 3)
    let a = Tensor::randn(0f32, 1.0, (BATCH, 128, 6561), &dev)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (128, 128, 3), &dev)?)?;
    op("conv1d 128→128 k3, L 6561: forward", &mut || {
        a.conv1d(&w, 1, 1, 1, 1).unwrap();
    });
    op(
        "conv1d 128→128 k3, L 6561: forward + backward",
        &mut || {
            let y = a.conv1d(w.as_tensor(), 1, 1, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        },
    );
    op(
        "conv1d 128→128 k3, L 6561: forward + backward, im2col+GEMM",
        &mut || {
            let y = mirkit_nn::conv::conv1d_gemm(&a, w.as_tensor(), None, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        },
    );
    op(
        "conv1d 128→128 k3, L 6561: forward, im2col+GEMM",
        &mut || {
            mirkit_nn::conv::conv1d_gemm(&a, &w, None, 1, 1).unwrap();
        },
    );
    let bn = candle_nn::batch_norm(
        128,
        mirkit_nn::blocks::bn_eps(1e-5),
        candle_nn::VarBuilder::from_varmap(&candle_nn::VarMap::new(), DType::F32, &dev),
    )?;
    op("batch norm (train) (16, 128, 6561)", &mut || {
        candle_core::ModuleT::forward_t(&bn, &a, true).unwrap();
    });
    op("max_pool1d 3 (16, 128, 6561)", &mut || {
        mirkit_nn::pool::max_pool1d(&a, 3, 3, 0).unwrap();
    });
    // short-chunk layer 2: (16, 128, 64, 64) * (128, 128, 3, 3)
    let b = Tensor::randn(0f32, 1.0, (BATCH, 128, 64, 64), &dev)?;
    let w2 = Tensor::randn(0f32, 0.1, (128, 128, 3, 3), &dev)?;
    op("conv2d 128→128 3×3, 64×64: forward", &mut || {
        b.conv2d(&w2, 1, 1, 1, 1).unwrap();
    });
    op(
        "conv2d 128→128 3×3, 64×64: forward, im2col+GEMM",
        &mut || {
            mirkit_nn::conv2d::conv2d_gemm(&b, &w2, None, 1, 1).unwrap();
        },
    );
    let w2v = Var::from_tensor(&w2)?;
    op(
        "conv2d 128→128 3×3, 64×64: forward + backward",
        &mut || {
            let y = b.conv2d(w2v.as_tensor(), 1, 1, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        },
    );
    op(
        "conv2d 128→128 3×3, 64×64: forward + backward, im2col+GEMM",
        &mut || {
            let y = mirkit_nn::conv2d::conv2d_gemm(&b, w2v.as_tensor(), None, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        },
    );
    op("max_pool2d 2×2 (16, 128, 64, 64)", &mut || {
        mirkit_nn::pool::max_pool2d(&b, (2, 2), (2, 2), (0, 0)).unwrap();
    });
    out.insert("ops".into(), serde_json::Value::Object(ops));
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
