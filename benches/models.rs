//! Criterion benches of the network hot paths: mirkit-nn's convolutions (forward and
//! forward + backward, against Candle's own), the fused blocks of issue #14 against the
//! composed ops they replace, Musicnn's vertical filters by band-axis DFT against the
//! im2col block, the column FFT that ends the band-axis DFT, and one window of the two default-class pretrained
//! taggers, and an Adam update. `cargo bench --bench models`.
//! (Whole-model times against PyTorch: `python3 tools/bench_models.py`; end-to-end
//! tagging against the original pipelines: `python3 tools/bench_tag.py`.)
use candle_core::{DType, Device, Tensor, Var};
use criterion::{criterion_group, criterion_main, Criterion};
use mirkit::models::registry::{load_pretrained, Pretrained};
use mirkit::nn::fused::{self, Act, ConvSpec, Epilogue};
use mirkit::nn::{batchnorm, conv::conv1d_gemm, conv2d::conv2d_gemm, convop};

fn benches(c: &mut Criterion) {
    let dev = Device::Cpu;
    let mut g = c.benchmark_group("nn");
    g.sample_size(10);
    // a SampleCNN-like 1-D layer and an FCN-like 2-D layer, batch 4
    let a = Tensor::randn(0f32, 1.0, (4, 128, 2187), &dev).unwrap();
    let w1 = Var::from_tensor(&Tensor::randn(0f32, 0.1, (128, 128, 3), &dev).unwrap()).unwrap();
    g.bench_function("conv1d_gemm_128x128_k3_fwd", |b| {
        b.iter(|| conv1d_gemm(&a, &w1, None, 1, 1).unwrap())
    });
    g.bench_function("conv1d_gemm_128x128_k3_fwd_bwd", |b| {
        b.iter(|| {
            let y = conv1d_gemm(&a, w1.as_tensor(), None, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    let x = Tensor::randn(0f32, 1.0, (4, 64, 32, 32), &dev).unwrap();
    let w2 = Var::from_tensor(&Tensor::randn(0f32, 0.1, (64, 64, 3, 3), &dev).unwrap()).unwrap();
    g.bench_function("conv2d_gemm_64x64_3x3_fwd", |b| {
        b.iter(|| conv2d_gemm(&x, &w2, None, 1, 1).unwrap())
    });
    g.bench_function("conv2d_candle_64x64_3x3_fwd", |b| {
        b.iter(|| x.conv2d(&w2, 1, 1, 1, 1).unwrap())
    });
    g.bench_function("conv2d_gemm_64x64_3x3_fwd_bwd", |b| {
        b.iter(|| {
            let y = conv2d_gemm(&x, w2.as_tensor(), None, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    g.bench_function("conv2d_candle_64x64_3x3_fwd_bwd", |b| {
        b.iter(|| {
            let y = x.conv2d(w2.as_tensor(), 1, 1, 1, 1).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    g.finish();

    // issue #14's fused kernels on a SampleCNN block (batch 4): conv → BN → ReLU →
    // pool 3 in eval mode (one tiled pass vs the composed ops), the same block in
    // training (one op with its own backward vs the composed ops), the tiled
    // differentiable convolution, and training batch norm + ReLU as one op
    let mut g = c.benchmark_group("fused");
    g.sample_size(10);
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, candle_core::DType::F32, &dev);
    let bn = candle_nn::batch_norm(128, mirkit::nn::blocks::bn_eps(1e-5), vb.pp("bn")).unwrap();
    let bias = Var::from_tensor(&Tensor::randn(0f32, 0.1, 128, &dev).unwrap()).unwrap();
    let spec = ConvSpec {
        weight: w1.as_tensor(),
        bias: Some(bias.as_tensor()),
        stride: 1,
        padding: (0, 1),
    };
    let epi = Epilogue {
        bn: Some(&bn),
        act: Act::Relu,
        pool: (1, 3),
    };
    g.bench_function("block1d_eval_fused", |b| {
        b.iter(|| fused::conv_block_eval(&a, spec, epi).unwrap())
    });
    g.bench_function("block1d_eval_composed", |b| {
        b.iter(|| fused::composed(&a, spec, epi).unwrap())
    });
    g.bench_function("block1d_train_one_op_fwd_bwd", |b| {
        b.iter(|| {
            let y = fused::conv_block(&a, spec, epi, true).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    g.bench_function("block1d_train_composed_fwd_bwd", |b| {
        b.iter(|| {
            let z = conv1d_gemm(&a, w1.as_tensor(), Some(bias.as_tensor()), 1, 1).unwrap();
            let y = candle_core::ModuleT::forward_t(&bn, &z, true)
                .unwrap()
                .relu()
                .unwrap();
            let y = mirkit::nn::pool::max_pool1d(&y, 3, 3, 0).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    g.bench_function("convop_128x128_k3_fwd_bwd", |b| {
        b.iter(|| {
            let y = convop::conv(&a, w1.as_tensor(), 1, (0, 1))
                .unwrap()
                .unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    // a stride-1 3×3 convolution's forward and both gradients, 128 → 128 on 32 × 32 at
    // batch 4: Winograd's F(2×2, 3×3) forward and input gradient, the kernel gradient by
    // F(3×3, 2×2) (`mirkit_nn::wgrad`)
    let x33 = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 128, 32, 32), &dev).unwrap()).unwrap();
    let w33 =
        Var::from_tensor(&Tensor::randn(0f32, 0.05, (128, 128, 3, 3), &dev).unwrap()).unwrap();
    g.bench_function("convop_128x128_3x3_32x32_fwd_bwd", |b| {
        b.iter(|| {
            let y = convop::conv(&x33, w33.as_tensor(), 1, (1, 1))
                .unwrap()
                .unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    let av = Var::from_tensor(&a).unwrap();
    g.bench_function("batch_norm_train_relu_fwd_bwd", |b| {
        b.iter(|| {
            let y = batchnorm::batch_norm_train(&av, &bn, Act::Relu).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    // the 1-D CNN's first block at batch 16 — (16, 128, 94) mel frames, 32 filters of
    // 8 taps, bias → ReLU → pool 4: one product per tap on strided views of the input
    // (no im2col copy); in training one op without batch norm, and no input gradient
    // (the input is data)
    let mel = Tensor::randn(0f32, 1.0, (16, 128, 94), &dev).unwrap();
    let w8 = Var::from_tensor(&Tensor::randn(0f32, 0.05, (32, 128, 8), &dev).unwrap()).unwrap();
    let b8 = Var::from_tensor(&Tensor::randn(0f32, 0.1, 32, &dev).unwrap()).unwrap();
    let spec8 = ConvSpec {
        weight: w8.as_tensor(),
        bias: Some(b8.as_tensor()),
        stride: 1,
        padding: (0, 0),
    };
    let epi8 = Epilogue {
        bn: None,
        act: Act::Relu,
        pool: (1, 4),
    };
    g.bench_function("cnn1d_block1_eval_taps", |b| {
        b.iter(|| fused::conv_block_eval(&mel, spec8, epi8).unwrap())
    });
    g.bench_function("cnn1d_block1_train_fwd_bwd", |b| {
        b.iter(|| {
            let y = fused::conv_block(&mel, spec8, epi8, true).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    // the short-chunk ResNet's largest convolution — its first block's second 3×3
    // layer, 128 → 128 channels on 64 × 64 positions, then batch norm (batch 4):
    // Winograd's F(2×2, 3×3) against im2col + one product per tile
    let r = Tensor::randn(0f32, 1.0, (4, 128, 64, 64), &dev).unwrap();
    let w3 = Tensor::randn(0f32, 0.03, (128, 128, 3, 3), &dev).unwrap();
    let bn3 = candle_nn::BatchNorm::new(
        128,
        Tensor::zeros(128, DType::F32, &dev).unwrap(),
        Tensor::ones(128, DType::F32, &dev).unwrap(),
        Tensor::ones(128, DType::F32, &dev).unwrap(),
        Tensor::zeros(128, DType::F32, &dev).unwrap(),
        1e-5,
    )
    .unwrap();
    let spec3 = ConvSpec {
        weight: &w3,
        bias: None,
        stride: 1,
        padding: (1, 1),
    };
    let epi3 = Epilogue {
        bn: Some(&bn3),
        act: Act::Identity,
        pool: (1, 1),
    };
    for (name, on) in [
        (
            "res_128x128_3x3_64x64_eval_winograd4",
            fused::Winograd::F4x4,
        ),
        ("res_128x128_3x3_64x64_eval_winograd", fused::Winograd::F2x2),
        ("res_128x128_3x3_64x64_eval_im2col", fused::Winograd::Off),
    ] {
        g.bench_function(name, |b| {
            fused::set_winograd(on);
            b.iter(|| fused::conv_block_eval(&r, spec3, epi3).unwrap());
            fused::set_winograd(fused::Winograd::F2x2);
        });
    }
    // batch 1, a late ResNet layer (256 → 256 on 8 × 8): one tile, its products split
    // by kernel rows across the threads
    let r1 = Tensor::randn(0f32, 1.0, (1, 256, 8, 8), &dev).unwrap();
    let w256 = Tensor::randn(0f32, 0.02, (256, 256, 3, 3), &dev).unwrap();
    let spec256 = ConvSpec {
        weight: &w256,
        bias: None,
        stride: 1,
        padding: (1, 1),
    };
    g.bench_function("res_256x256_3x3_8x8_batch1_eval", |b| {
        b.iter(|| fused::conv_block_eval(&r1, spec256, Epilogue::default()).unwrap())
    });
    // batch 1, a late ReSE-2 block (256 → 256 over 243 samples): tap products split by
    // kernel rows across the threads, the residual end pooled without argmax bookkeeping
    let vm_se = candle_nn::VarMap::new();
    let rese = mirkit::nn::blocks::ResSe1d::rese2(
        256,
        256,
        16,
        candle_nn::VarBuilder::from_varmap(&vm_se, DType::F32, &dev),
    )
    .unwrap();
    let s1 = Tensor::randn(0f32, 1.0, (1, 256, 243), &dev).unwrap();
    g.bench_function("rese2_block_256_243_batch1_eval", |b| {
        b.iter(|| rese.forward_t(&s1, false).unwrap())
    });
    // an FCN-4-like layer (64 → 128, 3 × 3, batch norm, ELU, max-pool (4, 5)): the ELU
    // evaluated once per pooling window, in eval mode and in training (forward and
    // backward); the identity batch norm of 128 channels above
    let wf = Var::from_tensor(&Tensor::randn(0f32, 0.05, (128, 64, 3, 3), &dev).unwrap()).unwrap();
    let spec_f = ConvSpec {
        weight: wf.as_tensor(),
        bias: None,
        stride: 1,
        padding: (1, 1),
    };
    let epi_f = Epilogue {
        bn: Some(&bn3),
        act: Act::Elu(1.0),
        pool: (4, 5),
    };
    let xf = Tensor::randn(0f32, 1.0, (2, 64, 24, 170), &dev).unwrap();
    g.bench_function("fcn_layer_64x128_elu_pool_eval", |b| {
        b.iter(|| fused::conv_block_eval(&xf, spec_f, epi_f).unwrap())
    });
    g.bench_function("fcn_layer_64x128_elu_pool_train_fwd_bwd", |b| {
        b.iter(|| {
            let y = fused::conv_block(&xf, spec_f, epi_f, true).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    // a short-chunk ResNet block in training (stride 2, 128 → 128 on 32 × 32, batch 4):
    // train-mode forward and backward (kernel and input gradients by tiles, batch
    // statistics and batch-norm backward, the residual end)
    let vm = candle_nn::VarMap::new();
    let vb = candle_nn::VarBuilder::from_varmap(&vm, DType::F32, &dev);
    let res = mirkit::nn::blocks::Res2d::new(128, 128, 3, 2, vb).unwrap();
    let xr = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 128, 32, 32), &dev).unwrap()).unwrap();
    g.bench_function("res2d_block_128_32x32_train_fwd_bwd", |b| {
        b.iter(|| {
            let y = res.forward_t(&xr, true).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    // the short-chunk ResNet's last block at batch 16 (256 → 512, 2 × 2 → 1 × 1): the
    // items' one-position planes side by side in one product per kernel
    // (`fused::item_groups`), the kernels read once per call instead of once per item
    let vm7 = candle_nn::VarMap::new();
    let vb7 = candle_nn::VarBuilder::from_varmap(&vm7, DType::F32, &dev);
    let res7 = mirkit::nn::blocks::Res2d::new(256, 512, 3, 2, vb7).unwrap();
    let x7 = Tensor::randn(0f32, 1.0, (16, 256, 2, 2), &dev).unwrap();
    g.bench_function("res2d_block_256_512_2x2_batch16_eval", |b| {
        b.iter(|| res7.forward_t(&x7, false).unwrap())
    });
    // a short-chunk CNN layer in training (128 → 128 on 32 × 32, batch norm, ReLU,
    // max-pool 2 × 2, batch 4): the pool's argmax by bands of rows, its gradient through
    // the window-offset table
    let wc = Var::from_tensor(&Tensor::randn(0f32, 0.05, (128, 128, 3, 3), &dev).unwrap()).unwrap();
    let spec_c = ConvSpec {
        weight: wc.as_tensor(),
        bias: None,
        stride: 1,
        padding: (1, 1),
    };
    let epi_c = Epilogue {
        bn: Some(&bn3),
        act: Act::Relu,
        pool: (2, 2),
    };
    let xc = Tensor::randn(0f32, 1.0, (4, 128, 32, 32), &dev).unwrap();
    g.bench_function("cnn_layer_128_32x32_relu_pool_train_fwd_bwd", |b| {
        b.iter(|| {
            let y = fused::conv_block(&xc, spec_c, epi_c, true).unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    // a ReSE-2 block's training step as one op (`mirkit_nn::resblock`: conv-BN-ReLU-
    // dropout-conv-BN-excitation-residual end-pool, its backward included), 128
    // channels over 2187 positions at batch 4, and the batch norm's training backward
    // inside it
    let vm_rb = candle_nn::VarMap::new();
    let rb = mirkit::nn::blocks::ResSe1d::rese2(
        128,
        128,
        2,
        candle_nn::VarBuilder::from_varmap(&vm_rb, DType::F32, &dev),
    )
    .unwrap();
    let xr = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 128, 2187), &dev).unwrap()).unwrap();
    let mut rng = mirkit::core::Rng::new(3);
    g.bench_function("rese2_block_128x2187_train_fwd_bwd", |b| {
        b.iter(|| {
            let y = rb
                .forward_drop(xr.as_tensor(), true, Some(&mut rng))
                .unwrap();
            y.sum_all().unwrap().backward().unwrap()
        })
    });
    // one Adam update (L2 decay, moments present) of SampleCNN-sized parameters:
    // four (512, 512, 3) kernels, 3.1 M values, in one pass per variable
    let ws: Vec<Var> = (0..4)
        .map(|_| Var::from_tensor(&Tensor::randn(0f32, 0.1, (512, 512, 3), &dev).unwrap()).unwrap())
        .collect();
    let gs = ws
        .iter()
        .map(|w| (w.as_tensor() * w.as_tensor()).unwrap().sum_all().unwrap())
        .reduce(|a, b| (a + b).unwrap())
        .unwrap()
        .backward()
        .unwrap();
    let mut adam = mirkit::nn::optim::AdamW::adam_l2(ws.clone(), 1e-4, 1e-5).unwrap();
    adam.step(&gs).unwrap();
    g.bench_function("adam_step_3m_params", |b| {
        b.iter(|| adam.step(&gs).unwrap())
    });
    g.finish();

    // Musicnn's 67-band × 7-frame vertical filter (204 of them) over one 3 s window at
    // batch 4, reduced to the max over bands: the band-axis DFT (`bandconv`, what frozen
    // models run) against the im2col block with the max over all rows fused in
    let mut g = c.benchmark_group("bandconv");
    g.sample_size(10);
    let k = Tensor::randn(0f32, 0.1, (204, 1, 67, 7), &dev).unwrap();
    let x = Tensor::randn(0f32, 1.0, (4, 1, 96, 188), &dev).unwrap();
    let band = mirkit::nn::bandconv::BandConv::new(
        &k.permute((0, 1, 3, 2)).unwrap().contiguous().unwrap(),
        96,
    )
    .unwrap();
    g.bench_function("vertical_67x7_max_over_bands_dft", |b| {
        b.iter(|| {
            let xt = x
                .transpose(2, 3)
                .unwrap()
                .pad_with_zeros(2, 3, 3)
                .unwrap()
                .contiguous()
                .unwrap();
            band.max_min(&xt).unwrap()
        })
    });
    let vspec = ConvSpec {
        weight: &k,
        bias: None,
        stride: 1,
        padding: (0, 3),
    };
    let vepi = Epilogue {
        pool: (30, 1),
        ..Epilogue::default()
    };
    g.bench_function("vertical_67x7_max_over_bands_im2col", |b| {
        b.iter(|| fused::conv_block_eval(&x, vspec, vepi).unwrap())
    });
    // musicnn 0.1.0's longest temporal filter (51 filters of 128 frames, "same" padding)
    // over two 187-frame patches' 96 bands, reduced to the max and min over bands: each
    // band convolved in place (Toeplitz view) and folded into the running max/min
    let rows: Vec<f32> = Tensor::randn(0f32, 1.0, (2, 96, 187 + 127), &dev)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let tk: Vec<f32> = Tensor::randn(0f32, 0.1, (51, 128), &dev)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    g.bench_function("temporal_128_max_min_over_bands_rows", |b| {
        b.iter(|| mirkit::nn::kernels::rows_conv_max_min(&rows, (2, 96, 187 + 127), &tk, (51, 128)))
    });
    // musicnn 0.1.0's 38-band timbral filter (204 × 7 frames) over four 3 s patches: the
    // layer whose inverse DFT (59 of 96 outputs) the column FFT computes
    let k38 = Tensor::randn(0f32, 0.1, (204, 1, 7, 38), &dev).unwrap();
    let x38 = Tensor::randn(0f32, 1.0, (4, 1, 187 + 6, 96), &dev).unwrap();
    let band38 = mirkit::nn::bandconv::BandConv::new(&k38, 96).unwrap();
    g.bench_function("timbral_38x7_max_min_over_bands", |b| {
        b.iter(|| band38.max_min(&x38).unwrap())
    });
    g.finish();

    // the column FFT alone: one piece of BandConv (4 channels × 187 frames), half spectra
    // of 96 bands → max and min of the first 59 outputs of each column's real inverse DFT
    // (CPUs without AVX2/FMA have no plan and skip it)
    let mut g = c.benchmark_group("colfft");
    if let Some(plan) = mirkit::nn::colfft::ColumnIrfft::new(96, 59) {
        let cols = 4 * 187;
        let spec: Vec<f32> = Tensor::randn(0f32, 1.0, (98 * cols,), &dev)
            .unwrap()
            .to_vec1()
            .unwrap();
        let (mut hi, mut lo) = (vec![0f32; cols], vec![0f32; cols]);
        g.bench_function("irfft96_max_min_59_of_748_columns", |b| {
            b.iter(|| plan.max_min(&spec, cols, &mut hi, &mut lo))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("taggers_one_window");
    g.sample_size(10);
    let Pretrained::Musicnn(m) = load_pretrained("musicnn-mtt").unwrap() else {
        unreachable!("musicnn-mtt is a musicnn 0.1.0 model")
    };
    let patch = Tensor::randn(0f32, 1.0, (1, 187, 96), &dev).unwrap();
    g.bench_function("musicnn_mtt_patch", |b| {
        b.iter(|| m.forward(&patch).unwrap())
    });
    let Pretrained::Won2020(w) = load_pretrained("won2020-musicnn-mtat").unwrap() else {
        unreachable!("won2020-musicnn-mtat is a Won 2020 model")
    };
    let audio: Vec<f32> = (0..48_000).map(|i| (i as f32 * 0.05).sin() * 0.1).collect();
    g.bench_function("won2020_musicnn_window", |b| {
        b.iter(|| w.tag_window(&audio).unwrap())
    });
    g.finish();
}

criterion_group!(models, benches);
criterion_main!(models);
