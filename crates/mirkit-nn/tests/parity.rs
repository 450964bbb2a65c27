//! mirkit-nn against PyTorch 2.5.1 (fixtures from tools/make_nn_fixtures.py) and finite
//! differences. Tolerances: 1e-5 absolute for f32 forward values and gradients of O(1)
//! (the same f32 operations in a different order), 1e-4 for the recurrent layers (20
//! chained matmuls and nonlinearities), 1e-3 relative for finite differences (f32 step).

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::{VarBuilder, VarMap};
use mirkit_core::{npy, Rng};
use mirkit_nn::optim::{clip_grad_norm, AdamW, ReduceOnPlateau, Schedule, Sgd};
use mirkit_nn::rnn::{Rnn, RnnConfig, RnnKind};
use mirkit_nn::{dropout, loss, pool};
use std::collections::HashMap;
use std::path::PathBuf;

fn fx(name: &str) -> Tensor {
    let p = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../tests/fixtures/nn")
    .join(format!("{name}.npy"));
    let a = npy::read(&p).unwrap_or_else(|e| panic!("{e} (run tools/make_nn_fixtures.py)"));
    Tensor::from_vec(
        a.data.iter().map(|&v| v as f32).collect::<Vec<f32>>(),
        a.shape.clone(),
        &Device::Cpu,
    )
    .unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims(), "shapes");
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

fn check_pool(x: &Tensor, name: &str, f: impl Fn(&Tensor) -> Tensor) {
    let v = Var::from_tensor(x).unwrap();
    let y = f(v.as_tensor());
    let e = max_diff(&y, &fx(&format!("{name}_y")));
    assert!(e <= 1e-5, "{name} forward: {e}");
    let g = fx(&format!("{name}_g"));
    let grads = (y * &g).unwrap().sum_all().unwrap().backward().unwrap();
    let dx = grads.get(v.as_tensor()).unwrap();
    let e = max_diff(dx, &fx(&format!("{name}_dx")));
    assert!(e <= 1e-5, "{name} gradient: {e}");
}

#[test]
fn pooling_matches_torch_forward_and_backward() {
    let x = fx("pool_x");
    check_pool(&x, "maxpool2d_k3s2p1", |t| {
        pool::max_pool2d(t, (3, 3), (2, 2), (1, 1)).unwrap()
    });
    check_pool(&x, "maxpool2d_k23", |t| {
        pool::max_pool2d(t, (2, 3), (2, 3), (0, 0)).unwrap()
    });
    check_pool(&x, "avgpool2d_k3s2p1", |t| {
        pool::avg_pool2d(t, (3, 3), (2, 2), (1, 1)).unwrap()
    });
    check_pool(&fx("pool1d_x"), "maxpool1d_k3", |t| {
        pool::max_pool1d(t, 3, 3, 0).unwrap()
    });
    let a = pool::adaptive_avg_pool2d(&x, (2, 3)).unwrap();
    assert!(max_diff(&a, &fx("adaptive_avg2d_2x3_y")) <= 1e-5);
    assert!(pool::max_pool2d(&x, (0, 2), (1, 1), (0, 0)).is_err());
    assert!(pool::max_pool2d(&x.flatten_all().unwrap(), (2, 2), (2, 2), (0, 0)).is_err());
}

#[test]
fn avg_pool_gradient_matches_finite_differences() {
    let mut rng = Rng::new(3);
    let x = mirkit_nn::init::tensor(
        &[1, 2, 5, 6],
        mirkit_nn::init::Init::Normal(1.0),
        &mut rng,
        &Device::Cpu,
    )
    .unwrap();
    let w = mirkit_nn::init::tensor(
        &[1, 2, 3, 3],
        mirkit_nn::init::Init::Normal(1.0),
        &mut rng,
        &Device::Cpu,
    )
    .unwrap();
    let f = |t: &Tensor| -> f64 {
        (pool::avg_pool2d(t, (3, 2), (2, 2), (1, 0)).unwrap() * &w)
            .unwrap()
            .sum_all()
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    let v = Var::from_tensor(&x).unwrap();
    let g = (pool::avg_pool2d(v.as_tensor(), (3, 2), (2, 2), (1, 0)).unwrap() * &w)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let analytic: Vec<f32> = g
        .get(v.as_tensor())
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let base: Vec<f32> = x.flatten_all().unwrap().to_vec1().unwrap();
    for i in [0usize, 7, 13, 29, 41, 59] {
        let h = 1e-2f32;
        let mut p = base.clone();
        p[i] += h;
        let mut m = base.clone();
        m[i] -= h;
        let tp = Tensor::from_vec(p, x.dims(), &Device::Cpu).unwrap();
        let tm = Tensor::from_vec(m, x.dims(), &Device::Cpu).unwrap();
        let num = (f(&tp) - f(&tm)) / (2.0 * h as f64);
        assert!(
            (num - analytic[i] as f64).abs() <= 1e-3 * (1.0 + num.abs()),
            "element {i}: {num} vs {}",
            analytic[i]
        );
    }
}

#[test]
fn losses_match_torch_and_stay_finite() {
    let (x, y, pw) = (fx("bce_logits"), fx("bce_target"), fx("bce_pos_weight"));
    for (name, w) in [("bce", None), ("bce_pw", Some(&pw))] {
        let v = Var::from_tensor(&x).unwrap();
        let l = loss::bce_with_logits(v.as_tensor(), &y, w, 0.0).unwrap();
        let lv = l.to_scalar::<f32>().unwrap();
        assert!(lv.is_finite());
        let want = fx(&format!("{name}_loss")).to_scalar::<f32>().unwrap();
        assert!(
            (lv - want).abs() <= 1e-5 * want.abs().max(1.0),
            "{name}: {lv} vs {want}"
        );
        let g = l.backward().unwrap();
        assert!(
            max_diff(
                g.get(v.as_tensor()).unwrap(),
                &fx(&format!("{name}_dlogits"))
            ) <= 1e-6,
            "{name} grad"
        );
    }
    let logits = fx("ce_logits");
    let labels = fx("ce_target").to_dtype(DType::U32).unwrap();
    let v = Var::from_tensor(&logits).unwrap();
    let l = loss::cross_entropy(v.as_tensor(), &labels, 0.1).unwrap();
    let want = fx("ce_ls0.1_loss").to_scalar::<f32>().unwrap();
    assert!((l.to_scalar::<f32>().unwrap() - want).abs() <= 1e-5);
    let g = l.backward().unwrap();
    assert!(max_diff(g.get(v.as_tensor()).unwrap(), &fx("ce_ls0.1_dlogits")) <= 1e-6);
    assert!(loss::bce_with_logits(&x, &labels.to_dtype(DType::F32).unwrap(), None, 0.0).is_err());
}

/// MSE and Huber (δ = 1 and 0.5, errors on both sides of δ) against PyTorch 2.5.1:
/// loss within 1e-6 relative (f32 mean of 12 terms), gradient within 1e-6.
#[test]
fn regression_losses_match_torch() {
    let (p, y) = (fx("reg_pred"), fx("reg_target"));
    for (name, l) in [
        ("mse", loss::RegressionLoss::Mse),
        ("huber1", loss::RegressionLoss::Huber { delta: 1.0 }),
        ("huber0.5", loss::RegressionLoss::Huber { delta: 0.5 }),
    ] {
        let v = Var::from_tensor(&p).unwrap();
        let out = l.apply(v.as_tensor(), &y).unwrap();
        let (got, want) = (
            out.to_scalar::<f32>().unwrap(),
            fx(&format!("{name}_loss")).to_scalar::<f32>().unwrap(),
        );
        assert!(
            (got - want).abs() <= 1e-6 * want.abs().max(1.0),
            "{name}: {got} vs {want}"
        );
        let g = out.backward().unwrap();
        let d = max_diff(g.get(v.as_tensor()).unwrap(), &fx(&format!("{name}_dpred")));
        assert!(d <= 1e-6, "{name} grad {d}");
    }
    assert!(loss::mse(&p, &p.t().unwrap()).is_err(), "shape mismatch");
    assert!(loss::huber(&p, &y, 0.0).is_err(), "delta 0");
    assert!(loss::huber(&p, &y, f64::NAN).is_err(), "delta NaN");
}

fn load_rnn(kind: RnnKind, prefix: &str) -> Rnn {
    let mut map = HashMap::new();
    for l in 0..2 {
        for s in ["", "_reverse"] {
            for w in ["weight_ih", "weight_hh", "bias_ih", "bias_hh"] {
                let n = format!("{w}_l{l}{s}");
                map.insert(n.clone(), fx(&format!("{prefix}.{n}")));
            }
        }
    }
    let vb = VarBuilder::from_tensors(map, DType::F32, &Device::Cpu);
    Rnn::new(
        kind,
        RnnConfig {
            input_size: 3,
            hidden_size: 4,
            num_layers: 2,
            bidirectional: true,
        },
        vb,
    )
    .unwrap()
}

#[test]
fn gru_and_lstm_match_torch() {
    let gru = load_rnn(RnnKind::Gru, "gru");
    let o = gru.forward(&fx("gru_input")).unwrap();
    assert!(max_diff(&o.output, &fx("gru_output")) <= 1e-5);
    assert!(max_diff(&o.h_n, &fx("gru_h_n")) <= 1e-5);
    let lstm = load_rnn(RnnKind::Lstm, "lstm");
    let o = lstm.forward(&fx("lstm_input")).unwrap();
    assert!(max_diff(&o.output, &fx("lstm_output")) <= 1e-5);
    assert!(max_diff(&o.h_n, &fx("lstm_h_n")) <= 1e-5);
    assert!(max_diff(o.c_n.as_ref().unwrap(), &fx("lstm_c_n")) <= 1e-5);
    // wrong input width and a missing tensor are errors naming the problem
    assert!(gru
        .forward(&Tensor::zeros((2, 5, 7), DType::F32, &Device::Cpu).unwrap())
        .is_err());
    let vb = VarBuilder::from_tensors(HashMap::new(), DType::F32, &Device::Cpu);
    let e = Rnn::new(
        RnnKind::Gru,
        RnnConfig {
            input_size: 3,
            hidden_size: 4,
            num_layers: 1,
            bidirectional: false,
        },
        vb,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("weight_ih_l0"), "{e}");
}

#[test]
fn optimisers_match_torch_after_five_steps() {
    let a = fx("opt_target");
    let coef = Tensor::arange(1f32, 13.0, &Device::Cpu)
        .unwrap()
        .reshape((3, 4))
        .unwrap();
    for name in [
        "sgd_m0.9_nesterov_wd0.01",
        "sgd_m0.9_damp0.1",
        "adamw_wd0.01",
    ] {
        let w = Var::from_tensor(&fx(&format!("opt_{name}_w0"))).unwrap();
        enum O {
            S(Sgd),
            A(AdamW),
        }
        let mut opt = match name {
            "sgd_m0.9_nesterov_wd0.01" => {
                O::S(Sgd::new(vec![w.clone()], 0.1, 0.9, 0.0, true, 0.01).unwrap())
            }
            "sgd_m0.9_damp0.1" => {
                O::S(Sgd::new(vec![w.clone()], 0.05, 0.9, 0.1, false, 0.0).unwrap())
            }
            _ => O::A(AdamW::new(vec![w.clone()], 0.01, 0.01).unwrap()),
        };
        for _ in 0..5 {
            let l = ((w.as_tensor() - &a).unwrap().sqr().unwrap() * &coef)
                .unwrap()
                .sum_all()
                .unwrap();
            let g = l.backward().unwrap();
            match &mut opt {
                O::S(o) => o.step(&g).unwrap(),
                O::A(o) => o.step(&g).unwrap(),
            }
        }
        let want = fx(&format!("opt_{name}_w5"));
        let scale = want
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
            .max(1.0);
        let e = max_diff(w.as_tensor(), &want);
        // f32 round-off relative to the weights' size (the lr-0.1 Nesterov run oscillates
        // up to |w| ≈ 700 on this quadratic)
        assert!(e <= 1e-6 * scale, "{name}: {e} (scale {scale})");
    }
    assert!(Sgd::new(vec![], 0.1, 0.0, 0.0, true, 0.0).is_err());
}

#[test]
fn schedules_clipping_dropout_and_init_are_reproducible() {
    assert!(
        (Schedule::Step {
            step: 10,
            gamma: 0.1
        }
        .lr(1.0, 25)
            - 0.01)
            .abs()
            < 1e-12
    );
    let c = Schedule::Cosine {
        t_max: 10,
        eta_min: 0.0,
    };
    assert!((c.lr(1.0, 5) - 0.5).abs() < 1e-12 && c.lr(1.0, 10).abs() < 1e-12);
    let mut p = ReduceOnPlateau::new(0.5, 1, 1e-4, 1e-3);
    let mut lr = 1.0;
    for m in [1.0, 0.9, 0.95, 0.95, 0.95] {
        lr = p.step(m, lr);
    }
    assert_eq!(lr, 0.5);
    // clipping: gradient of sum(3·w) with 4 elements has norm 6 -> scaled to 1
    let w = Var::from_tensor(&Tensor::ones(4, DType::F32, &Device::Cpu).unwrap()).unwrap();
    let mut g = (w.as_tensor() * 3.0)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let n = clip_grad_norm(std::slice::from_ref(&w), &mut g, 1.0).unwrap();
    assert!((n - 6.0).abs() < 1e-5);
    let gn: f32 = g
        .get(w.as_tensor())
        .unwrap()
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap();
    assert!((gn.sqrt() - 1.0).abs() < 1e-5);
    // dropout and init: same seed, same values
    let x = Tensor::ones((4, 8), DType::F32, &Device::Cpu).unwrap();
    let a: Vec<f32> = dropout::dropout(&x, 0.5, true, &mut Rng::new(9))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let b: Vec<f32> = dropout::dropout(&x, 0.5, true, &mut Rng::new(9))
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    assert_eq!(a, b);
    assert!(a.iter().all(|&v| v == 0.0 || v == 2.0) && a.contains(&0.0));
    assert!(dropout::dropout(&x, 1.0, true, &mut Rng::new(1)).is_err());
    let vm1 = VarMap::new();
    let vm2 = VarMap::new();
    let cfg = RnnConfig {
        input_size: 3,
        hidden_size: 4,
        num_layers: 2,
        bidirectional: true,
    };
    Rnn::init(
        RnnKind::Gru,
        cfg,
        &vm1,
        "gru",
        &mut Rng::new(5),
        &Device::Cpu,
    )
    .unwrap();
    Rnn::init(
        RnnKind::Gru,
        cfg,
        &vm2,
        "gru",
        &mut Rng::new(5),
        &Device::Cpu,
    )
    .unwrap();
    let r1 = Rnn::new(
        RnnKind::Gru,
        cfg,
        VarBuilder::from_varmap(&vm1, DType::F32, &Device::Cpu).pp("gru"),
    )
    .unwrap();
    let r2 = Rnn::new(
        RnnKind::Gru,
        cfg,
        VarBuilder::from_varmap(&vm2, DType::F32, &Device::Cpu).pp("gru"),
    )
    .unwrap();
    let inp = fx("gru_input");
    assert_eq!(
        max_diff(
            &r1.forward(&inp).unwrap().output,
            &r2.forward(&inp).unwrap().output
        ),
        0.0
    );
}

fn block_vb(prefix: &str) -> VarBuilder<'static> {
    let dir = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../../tests/fixtures/nn");
    let mut map = HashMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let n = e.unwrap().file_name().to_string_lossy().to_string();
        if let Some(rest) = n.strip_prefix(&format!("{prefix}.")) {
            let key = rest.trim_end_matches(".npy").to_string();
            map.insert(key, fx(n.trim_end_matches(".npy")));
        }
    }
    VarBuilder::from_tensors(map, DType::F32, &Device::Cpu)
}

#[test]
fn residual_and_se_blocks_match_torch_in_train_and_eval() {
    use mirkit_nn::blocks::{Res2d, ResSe1d};
    let b = ResSe1d::new(2, 4, 3, 1, 3, block_vb("resse1d")).unwrap();
    let x = fx("resse1d_x");
    assert!(max_diff(&b.forward_t(&x, false).unwrap(), &fx("resse1d_eval_y")) <= 1e-5);
    assert!(max_diff(&b.forward_t(&x, true).unwrap(), &fx("resse1d_train_y")) <= 1e-5);
    let r = Res2d::new(2, 4, 3, 2, block_vb("res2d")).unwrap();
    let x = fx("res2d_x");
    assert!(max_diff(&r.forward_t(&x, false).unwrap(), &fx("res2d_eval_y")) <= 1e-5);
    assert!(max_diff(&r.forward_t(&x, true).unwrap(), &fx("res2d_train_y")) <= 1e-5);
}

#[test]
fn mel_front_end_module_gives_mirkit_dsp_numbers() {
    use candle_core::Module;
    use mirkit_dsp::{FeatureConfig, FeatureExtractor};
    let mut rng = Rng::new(21);
    let x = mirkit_nn::init::tensor(
        &[2, 16000],
        mirkit_nn::init::Init::Normal(0.1),
        &mut rng,
        &Device::Cpu,
    )
    .unwrap();
    let fe = mirkit_nn::frontend::MelFrontEnd::new(FeatureConfig::won2020()).unwrap();
    let y = fe.forward(&x).unwrap();
    assert_eq!(y.dims(), &[2, 96, 1 + 16000 / 256]);
    let ex = FeatureExtractor::new(FeatureConfig::won2020()).unwrap();
    let rows: Vec<Vec<f32>> = x.to_vec2().unwrap();
    for (b, r) in rows.iter().enumerate() {
        let want: Vec<f32> = ex
            .compute(r)
            .unwrap()
            .into_array()
            .into_raw_vec_and_offset()
            .0;
        let got: Vec<f32> = y.get(b).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, want);
    }
    assert!(fe
        .forward(&Tensor::zeros(5, DType::F32, &Device::Cpu).unwrap())
        .is_err());
}
