//! # Model speed: the whole zoo, forward and training step, against PyTorch
//!
//! `cargo run --release --example bench_models -- [--batch 16] [--models a,b] [--reps 3]
//! [--no-train] [--train-only] [--split] [--ops] [--no-winograd] [--winograd4]` — times every architecture of the zoo on random input of its
//! published size: an eval-mode forward and a training step (train-mode forward, binary
//! cross-entropy, backward, Adam update), median of `--reps` runs after one warm-up (or
//! of as many runs as fill half a second, up to 1000, when that is more).
//! `--train-only` runs the forward only twice (for profiling a training step).
//! `--split` also reports a step's forward, backward and update times. `--ops` adds a per-op profile of the dominant operations at the models' own shapes.
//! `--no-winograd` computes the eval forward's stride-1 3×3 convolutions by im2col
//! instead of Winograd's F(2×2, 3×3) (`mirkit_nn::fused::set_winograd`), for A/B runs;
//! `--winograd4` by the opt-in F(4×4, 3×3).
//! The thread count follows `RAYON_NUM_THREADS`. `tools/bench_models.py` runs the same
//! work in PyTorch (same names, shapes and batch) and prints the ratios; it calls this
//! example. Prints one JSON object.
//!
//! | name | model | input |
//! |---|---|---|
//! | `samplecnn`, `samplecnn_se` | SampleCNN (+SE), published widths | `(B, 59049)` samples |
//! | `rese2` | ReSE-2-Multi | `(B, 59049)` samples |
//! | `fcn4` | FCN-4 (Choi et al. 2016) | `(B, 96, 1366)` log-mel |
//! | `cnn1d` | 1-D CNN over mel frames (Dieleman & Schrauwen 2014) | `(B, 128, 94)` |
//! | `shortchunk_cnn`, `shortchunk_res` | short-chunk CNN / ResNet | `(B, 1, 128, 128)` |
//! | `won2020_fcn`, `won2020_crnn`, `won2020_musicnn` | Won 2020 networks after the mel front end (forward: the pretrained model as `mirkit tag` loads it; step: its trainable copy) | `(B, 1, 96, frames)` of one window |
//! | `musicnn_mtt`, `vgg_mtt` | musicnn 0.1.0's pretrained musicnn / VGG (inference only: no training step) | `(B, 187, 96)` log-mel patches |

use candle_core::{DType, Device, Tensor, Var};
use std::time::Instant;

/// Median seconds of at least `reps` runs after one warm-up, and of as many more as fit
/// in [`MIN_TOTAL_S`] (at most [`MAX_REPS`]): a median of three sub-millisecond runs
/// measures thread wake-ups and cold caches, not the work. `tools/bench_models.py` times
/// PyTorch by the same rule. `reps = 0`: one run.
fn time(reps: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut t = Vec::new();
    let start = Instant::now();
    while t.len() < reps.max(1)
        || (reps > 0 && t.len() < MAX_REPS && start.elapsed().as_secs_f64() < MIN_TOTAL_S)
    {
        let t0 = Instant::now();
        f();
        t.push(t0.elapsed().as_secs_f64());
    }
    t.sort_by(f64::total_cmp);
    t[t.len() / 2]
}

/// Seconds of timed runs [`time`] fills at least (with `reps` runs or more).
const MIN_TOTAL_S: f64 = 0.5;
/// Most runs [`time`] makes for one figure.
const MAX_REPS: usize = 1000;

/// PyTorch's `binary_cross_entropy` on probabilities (clamped as PyTorch clamps its log).
fn bce(p: &Tensor, y: &Tensor) -> candle_core::Result<Tensor> {
    let p = p.clamp(1e-7, 1.0 - 1e-7)?;
    let l = ((y * p.log()?)? + ((1.0 - y)? * (1.0 - &p)?.log()?)?)?;
    l.mean_all()?.neg()
}

/// A model's forward: `(input, train) → sigmoid scores`.
type Forward = Box<dyn Fn(&Tensor, bool) -> candle_core::Result<Tensor>>;

/// Forward (eval) and training-step functions of one model on its input.
struct Case {
    x: Tensor,
    /// `(input, train)`: the trainable model (training steps, and the eval forward unless
    /// `eval` is set).
    forward: Forward,
    /// The eval forward of the model as loaded for inference, where that differs from
    /// the trainable one (Won 2020's pretrained Musicnn: its vertical filters run as a
    /// band-axis DFT, derived from weights that never change).
    eval: Option<Forward>,
    /// Trainable variables; empty for the inference-only musicnn 0.1.0 graphs (no
    /// training step is timed for them).
    vars: Vec<Var>,
}

fn err(e: impl std::fmt::Display) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

fn case(name: &str, b: usize) -> Result<Case, Box<dyn std::error::Error>> {
    use mirkit_models::*;
    let dev = Device::Cpu;
    let wave = |len| Tensor::randn(0f32, 0.1, (b, len), &dev);
    Ok(match name {
        "samplecnn" | "samplecnn_se" => {
            let cfg = sample_cnn::SampleCnnConfig::published(name.ends_with("_se"));
            let (m, vm) = create::seeded(|vb| sample_cnn::SampleCnn::new(&cfg, vb), 1)?;
            Case {
                x: wave(sample_cnn::INPUT_LEN)?,
                forward: Box::new(move |x, t| m.forward_t(x, t).map_err(err)),
                vars: vm.all_vars(),
                eval: None,
            }
        }
        "rese2" => {
            let cfg = rese2::ReSe2Config::published();
            let (m, vm) = create::seeded(|vb| rese2::ReSe2::new(&cfg, vb), 1)?;
            Case {
                x: wave(rese2::INPUT_LEN)?,
                forward: Box::new(move |x, t| m.forward(x, t, None).map_err(err)),
                vars: vm.all_vars(),
                eval: None,
            }
        }
        "fcn4" => {
            let cfg = fcn4::Fcn4Config::published();
            let (m, vm) = create::seeded(|vb| fcn4::Fcn4::new(&cfg, vb), 1)?;
            Case {
                x: Tensor::randn(0f32, 1.0, (b, fcn4::N_MELS, fcn4::FRAMES), &dev)?,
                forward: Box::new(move |x, t| m.forward(x, t).map_err(err)),
                vars: vm.all_vars(),
                eval: None,
            }
        }
        "cnn1d" => {
            let cfg = cnn1d::Cnn1dConfig::published(cnn1d::Input::Mel);
            let (m, vm) = create::seeded(|vb| cnn1d::Cnn1d::new(&cfg, vb), 1)?;
            Case {
                x: Tensor::randn(0f32, 1.0, (b, cfg.n_mels, cfg.frames), &dev)?,
                forward: Box::new(move |x, t| {
                    // training mode is `Some((p, rng))`; p = 0 as the PyTorch side has no
                    // dropout in this benchmark
                    let mut rng = mirkit_core::Rng::new(0);
                    m.forward(x, t.then_some((0.0, &mut rng))).map_err(err)
                }),
                vars: vm.all_vars(),
                eval: None,
            }
        }
        "shortchunk_cnn" | "shortchunk_res" => {
            let cfg = short_chunk::ShortChunkConfig::published(name.ends_with("_res"));
            let (m, vm) = create::seeded(|vb| short_chunk::ShortChunk::new(&cfg, vb), 1)?;
            Case {
                x: Tensor::randn(0f32, 1.0, (b, 1, 128, 128), &dev)?,
                forward: Box::new(move |x, t| m.forward_t(x, t).map_err(err)),
                vars: vm.all_vars(),
                eval: None,
            }
        }
        "won2020_fcn" | "won2020_crnn" | "won2020_musicnn" => {
            let arch = won2020::Arch::parse(&name["won2020_".len()..]).ok_or("arch")?;
            let entry = registry::MODELS
                .iter()
                .find(|e| e.name == format!("won2020-{}-mtat", arch.as_str()))
                .ok_or("registry entry")?;
            let (m, vm) = won2020::Won2020::trainable_from_bytes(
                arch,
                entry.weights()?,
                entry.name,
                None,
                1,
            )?;
            // torchaudio's centred frames of one window at hop 256
            let frames = arch.input_len() / 256 + 1;
            let frozen = won2020::Won2020::from_bytes(arch, entry.weights()?, entry.name)?;
            Case {
                x: Tensor::randn(0f32, 1.0, (b, 1, 96, frames), &dev)?,
                forward: Box::new(move |x, t| {
                    let e = m
                        .embedding_t(&m.spec_bn_t(x, t).map_err(err)?, t)
                        .map_err(err)?;
                    candle_nn::ops::sigmoid(&m.logits(&e).map_err(err)?)
                }),
                vars: vm.all_vars(),
                eval: Some(Box::new(move |x, _| {
                    frozen
                        .forward(&frozen.spec_bn_t(x, false).map_err(err)?)
                        .map_err(err)
                })),
            }
        }
        "musicnn_mtt" | "vgg_mtt" => {
            let model = name.replace('_', "-");
            let entry = registry::MODELS
                .iter()
                .find(|e| e.name == model)
                .ok_or("registry entry")?;
            let m = musicnn::Musicnn::from_bytes(entry.weights()?, entry.name)?;
            Case {
                x: Tensor::randn(0f32, 1.0, (b, musicnn::PATCH_FRAMES, musicnn::N_MELS), &dev)?,
                forward: Box::new(move |x, _| candle_nn::ops::sigmoid(&m.forward(x).map_err(err)?)),
                vars: Vec::new(),
                eval: None,
            }
        }
        other => return Err(format!("unknown model {other}").into()),
    })
}

const ALL: &[&str] = &[
    "samplecnn",
    "samplecnn_se",
    "rese2",
    "fcn4",
    "cnn1d",
    "shortchunk_cnn",
    "shortchunk_res",
    "won2020_fcn",
    "won2020_crnn",
    "won2020_musicnn",
    "musicnn_mtt",
    "vgg_mtt",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // as the `mirkit` command does (mirkit_core::alloc, mirkit::threads)
    mirkit_core::alloc::keep_freed_memory();
    mirkit::threads::inline_single_thread();
    let args: Vec<String> = std::env::args().collect();
    let opt = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let batch: usize = opt("--batch").map_or(Ok(16), |v| v.parse())?;
    let reps: usize = opt("--reps").map_or(Ok(3), |v| v.parse())?;
    let models: Vec<String> = opt("--models").map_or_else(
        || ALL.iter().map(|s| s.to_string()).collect(),
        |v| v.split(',').map(str::to_string).collect(),
    );
    let train = !args.iter().any(|a| a == "--no-train");
    let train_only = args.iter().any(|a| a == "--train-only");
    if args.iter().any(|a| a == "--no-winograd") {
        // A/B: the fused eval path's stride-1 3×3 convolutions by im2col instead
        mirkit::nn::fused::set_winograd(mirkit::nn::fused::Winograd::Off);
    }
    if args.iter().any(|a| a == "--winograd4") {
        // the opt-in F(4×4, 3×3) (faster, twice the rounding error)
        mirkit::nn::fused::set_winograd(mirkit::nn::fused::Winograd::F4x4);
    }
    let mut out = serde_json::Map::new();
    out.insert("threads".into(), rayon::current_num_threads().into());
    out.insert("batch".into(), batch.into());
    for name in &models {
        let c = case(name, batch)?;
        // `--train-only` (profiling a training step) skips the forward's timing
        let fwd = time(if train_only { 0 } else { reps }, || {
            match &c.eval {
                Some(f) => f(&c.x, false),
                None => (c.forward)(&c.x, false),
            }
            .unwrap();
        });
        let mut rec = serde_json::json!({ "forward_s": fwd });
        let mut msg = format!("{name}: forward {fwd:.3} s");
        if train && !c.vars.is_empty() {
            let y = Tensor::zeros((batch, 50), DType::F32, &Device::Cpu)?;
            let mut opt = mirkit_nn::optim::AdamW::adam_l2(c.vars.clone(), 1e-4, 0.0)?;
            let step = time(reps, || {
                let loss = bce(&(c.forward)(&c.x, true).unwrap(), &y).unwrap();
                let g = loss.backward().unwrap();
                opt.step(&g).unwrap();
            });
            rec["train_step_s"] = step.into();
            msg += &format!(", train step {step:.3} s");
            if args.iter().any(|a| a == "--split") {
                // where a step's time goes: train-mode forward + loss, backward, update
                let (mut f, mut b, mut u) = (0.0, 0.0, 0.0);
                for _ in 0..reps.max(1) {
                    let t0 = Instant::now();
                    let loss = bce(&(c.forward)(&c.x, true)?, &y)?;
                    let t1 = Instant::now();
                    let g = loss.backward()?;
                    let t2 = Instant::now();
                    opt.step(&g)?;
                    f += (t1 - t0).as_secs_f64();
                    b += (t2 - t1).as_secs_f64();
                    u += t2.elapsed().as_secs_f64();
                }
                let r = reps.max(1) as f64;
                rec["split_s"] =
                    serde_json::json!({"forward": f / r, "backward": b / r, "update": u / r});
                msg += &format!(
                    " (forward {:.3}, backward {:.3}, update {:.3})",
                    f / r,
                    b / r,
                    u / r
                );
            }
        }
        eprintln!("{msg}");
        out.insert(name.clone(), rec);
    }
    if args.iter().any(|a| a == "--ops") {
        out.insert("ops".into(), ops(batch, reps)?);
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

/// Per-op profile at the models' dominant shapes.
fn ops(batch: usize, reps: usize) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
    let dev = Device::Cpu;
    let mut ops = serde_json::Map::new();
    let mut op = |name: &str, f: &mut dyn FnMut()| {
        let s = time(reps, f);
        eprintln!("  {name}: {:.1} ms", s * 1e3);
        ops.insert(name.into(), serde_json::json!(s));
    };
    // SampleCNN block 2: (B, 128, 6561) * (128, 128, 3)
    let a = Tensor::randn(0f32, 1.0, (batch, 128, 6561), &dev)?;
    let w = Var::from_tensor(&Tensor::randn(0f32, 0.1, (128, 128, 3), &dev)?)?;
    op("conv1d 128→128 k3, L 6561: forward", &mut || {
        mirkit_nn::conv::conv1d_gemm(&a, &w, None, 1, 1).unwrap();
    });
    op(
        "conv1d 128→128 k3, L 6561: forward + backward",
        &mut || {
            let y = mirkit_nn::conv::conv1d_gemm(&a, w.as_tensor(), None, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        },
    );
    let bn = candle_nn::batch_norm(
        128,
        mirkit_nn::blocks::bn_eps(1e-5),
        candle_nn::VarBuilder::from_varmap(&candle_nn::VarMap::new(), DType::F32, &dev),
    )?;
    op(
        "conv1d+bn+relu+pool3 128→128 k3, L 6561: eval",
        &mut || {
            mirkit_nn::fused::conv_block_eval(
                &a,
                mirkit_nn::fused::ConvSpec {
                    weight: w.as_tensor(),
                    bias: None,
                    stride: 1,
                    padding: (0, 1),
                },
                mirkit_nn::fused::Epilogue {
                    bn: Some(&bn),
                    act: mirkit_nn::fused::Act::Relu,
                    pool: (1, 3),
                },
            )
            .unwrap();
        },
    );
    op("batch norm (train) (B, 128, 6561)", &mut || {
        candle_core::ModuleT::forward_t(&bn, &a, true).unwrap();
    });
    op("max_pool1d 3 (B, 128, 6561)", &mut || {
        mirkit_nn::pool::max_pool1d(&a, 3, 3, 0).unwrap();
    });
    // short-chunk layer 2: (B, 128, 64, 64) * (128, 128, 3, 3)
    let b = Tensor::randn(0f32, 1.0, (batch, 128, 64, 64), &dev)?;
    let w2 = Var::from_tensor(&Tensor::randn(0f32, 0.1, (128, 128, 3, 3), &dev)?)?;
    op("conv2d 128→128 3×3, 64×64: forward", &mut || {
        mirkit_nn::conv2d::conv2d_gemm(&b, &w2, None, 1, 1).unwrap();
    });
    op(
        "conv2d 128→128 3×3, 64×64: forward + backward",
        &mut || {
            let y = mirkit_nn::conv2d::conv2d_gemm(&b, w2.as_tensor(), None, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap();
        },
    );
    op("max_pool2d 2×2 (B, 128, 64, 64)", &mut || {
        mirkit_nn::pool::max_pool2d(&b, (2, 2), (2, 2), (0, 0)).unwrap();
    });
    Ok(serde_json::Value::Object(ops))
}
