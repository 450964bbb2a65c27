//! The pretrained taggers of **musicnn 0.1.0** (Pons & Serra, "musicnn: pre-trained
//! convolutional neural networks for music audio tagging", ISMIR 2019 LBD; Pons et al.,
//! "End-to-end learning for music audio tagging at scale", ISMIR 2018): `musicnn-mtt`,
//! `musicnn-msd` (musically motivated front end, dense mid end, temporal pooling back end)
//! and their VGG baselines `vgg-mtt`, `vgg-msd`, as published in the package's TensorFlow 1
//! checkpoints (converted without TensorFlow by `tools/convert_musicnn.py`; names and
//! layouts are TensorFlow's).
//!
//! Front end (musicnn/extractor.py): 16 kHz mono, `librosa.feature.melspectrogram(n_fft
//! 512, hop 256, 96 mels)` (Slaney scale and norm, power 2, centred with reflect padding
//! as librosa < 0.10 did), cast to float16, `log10(10000·x + 1)`, split into
//! non-overlapping 187-frame patches (≈ 3 s); tag scores are the sigmoid outputs averaged
//! over the patches. A file shorter than one patch is repeat-padded (the training
//! configuration's `pad_short: repeat-pad`; the original extractor fails on such files).
//!
//! Networks (musicnn/models.py): input batch norm; **musicnn**: timbral filters 7×38 and
//! 7×67 (time × frequency, 204 each, "valid", max over frequency) and temporal filters
//! 128×1, 64×1, 32×1 (51 each, "same", max over frequency) → 561 channels; three 1-D
//! convolutions of width 7 (64 channels, the 2nd and 3rd residual); the input and the three
//! outputs concatenated (753); max and mean over time, interleaved per channel (1506); batch
//! norm, dense 200 + ReLU, batch norm (the *penultimate* features), dense 50. Every
//! convolution is conv → bias → ReLU → batch norm (ε = 0.001, TensorFlow's default).
//! **vgg**: five [3×3 conv (128), ReLU, batch norm, max pool] blocks with pools 4×1 stride
//! 2×2, then 2×2, 2×2, 2×2, 4×4; flattened (256, time-major as TensorFlow's NHWC) → dense 50.

use crate::error::{ModelError, Result};
use crate::weights::{check_layout, tags_from_meta, Header};
use candle_core::{DType, Device, Tensor, D};
use mirkit_dsp::{FeatureConfig, FeatureExtractor};
use mirkit_nn::bandconv::BandConv;
use mirkit_nn::fused::{Act, ConvSpec, Epilogue};
use std::collections::HashMap;
use std::path::Path;

/// Sample rate of the models' input.
pub const SAMPLE_RATE: u32 = 16_000;
/// Frames per patch (3 s: `librosa.time_to_frames(3, sr=16000, hop_length=256) + 1`).
pub const PATCH_FRAMES: usize = 187;
/// Mel bands.
pub const N_MELS: usize = 96;
/// Hop between frames, samples.
pub const HOP: usize = 256;
/// TensorFlow's batch-norm ε (`tf.layers.batch_normalization` default).
const BN_EPS: f64 = 1e-3;

/// Which of the two musicnn 0.1.0 architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Pons et al.'s musically motivated CNN.
    Musicnn,
    /// The VGG-like baseline.
    Vgg,
}

impl Kind {
    /// `musicnn` or `vgg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Musicnn => "musicnn",
            Kind::Vgg => "vgg",
        }
    }
    /// Names of the features [`Musicnn::features`] returns, as musicnn's extractor names them.
    pub fn feature_names(self) -> &'static [&'static str] {
        match self {
            Kind::Musicnn => &[
                "timbral",
                "temporal",
                "cnn1",
                "cnn2",
                "cnn3",
                "mean_pool",
                "max_pool",
                "penultimate",
            ],
            Kind::Vgg => &["pool1", "pool2", "pool3", "pool4", "pool5"],
        }
    }
}

/// Inference batch norm as a per-channel affine map (`scale`, `shift` shaped to broadcast
/// over the channel axis `axis`).
struct Bn {
    scale: Tensor,
    shift: Tensor,
}

impl Bn {
    fn new(map: &HashMap<String, Tensor>, name: &str, rank: usize, axis: usize) -> Result<Self> {
        let g = map[&format!("{name}/gamma")].to_dtype(DType::F64)?;
        let b = map[&format!("{name}/beta")].to_dtype(DType::F64)?;
        let m = map[&format!("{name}/moving_mean")].to_dtype(DType::F64)?;
        let v = map[&format!("{name}/moving_variance")].to_dtype(DType::F64)?;
        let scale = (g / (v + BN_EPS)?.sqrt()?)?;
        let shift = (b - (m * &scale)?)?;
        let mut shape = vec![1usize; rank];
        shape[axis] = scale.dim(0)?;
        Ok(Self {
            scale: scale.to_dtype(DType::F32)?.reshape(shape.clone())?,
            shift: shift.to_dtype(DType::F32)?.reshape(shape)?,
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)?)
    }
}

/// 2-D convolution from a TensorFlow kernel (kh × kw × in × out) with bias, explicit
/// (possibly asymmetric, TensorFlow "same") zero padding, then ReLU.
struct Conv {
    w: Tensor,
    /// The bias as `(O,)`, for the fused block.
    b_flat: Tensor,
    /// For a time-only (`kh × 1`) kernel, the same kernel as `(O, 1, 1, kh)` for
    /// [`Conv::max_min_bands`].
    w_bands: Option<Tensor>,
    b: Tensor,
    /// (top, bottom, left, right) padding
    pad: (usize, usize, usize, usize),
}

impl Conv {
    fn new(map: &HashMap<String, Tensor>, name: &str, same: bool) -> Result<Self> {
        let k = &map[&format!("{name}/kernel")];
        let (kh, kw) = (k.dim(0)?, k.dim(1)?);
        let w = k.permute((3, 2, 0, 1))?.contiguous()?;
        let b_flat = map[&format!("{name}/bias")].clone();
        let b = b_flat.reshape((1, (), 1, 1))?;
        // TensorFlow "same", stride 1: total k - 1, the extra one after
        let pad = if same {
            ((kh - 1) / 2, kh / 2, (kw - 1) / 2, kw / 2)
        } else {
            (0, 0, 0, 0)
        };
        let w_bands = if kw == 1 {
            Some(w.transpose(2, 3)?.contiguous()?)
        } else {
            None
        };
        Ok(Self {
            w,
            b_flat,
            w_bands,
            b,
            pad,
        })
    }
    /// `relu(conv + bias)`; a symmetrically padded one (VGG's 3×3 "same") runs as one
    /// fused tile pass ([`mirkit_nn::fused`]: im2col tile → product → bias → ReLU in
    /// cache) instead of a padded copy, the product, and two element-wise passes.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (t, bo, l, r) = self.pad;
        if t == bo && l == r {
            return conv_bias_relu(x, &self.w, &self.b_flat, (t, l));
        }
        self.activate(&self.conv_raw(x)?)
    }
    /// VGG's block `maxpool(bn(relu(conv + bias)))` with max-pooling window `k` and
    /// stride `s`. A symmetrically padded convolution runs as one fused pass with the
    /// batch norm's scale and shift after the ReLU ([`mirkit_nn::fused::conv_act_affine_eval`],
    /// the same f32 operations as the composed ops) and non-overlapping pooling in it;
    /// the first block's windows of 4 rows at stride 2 are the maxima of adjacent pairs
    /// of non-overlapping 2-row windows (pooled in the pass), and its column stride of 2
    /// with windows of 1 keeps every other column.
    fn relu_bn_pool(
        &self,
        x: &Tensor,
        bn: &Bn,
        k: (usize, usize),
        s: (usize, usize),
    ) -> Result<Tensor> {
        let (t, bo, l, r) = self.pad;
        let fused = |pool| {
            let spec = ConvSpec {
                weight: &self.w,
                bias: Some(&self.b_flat),
                stride: 1,
                padding: (t, l),
            };
            mirkit_nn::fused::conv_act_affine_eval(x, spec, Act::Relu, (&bn.scale, &bn.shift), pool)
        };
        if t == bo && l == r {
            if k == s {
                return Ok(fused(k)?);
            }
            if k == (4, 1) && s == (2, 2) && x.dim(2)? >= 4 {
                // rows r = 2i … 2i + 3: the max of pooled rows i and i + 1 of (2, 1);
                // columns 0, 2, 4, …
                let p = fused((2, 1))?;
                let (b, c, rows, cols) = p.dims4()?;
                let pv: Vec<f32> = p.flatten_all()?.to_vec1()?;
                let (oh, ow) = (rows - 1, cols.div_ceil(2));
                let mut y = Vec::with_capacity(b * c * oh * ow);
                for plane in pv.chunks_exact(rows * cols) {
                    for i in 0..oh {
                        let (r0, r1) =
                            (&plane[i * cols..][..cols], &plane[(i + 1) * cols..][..cols]);
                        y.extend(r0.iter().zip(r1).step_by(2).map(|(&u, &v)| u.max(v)));
                    }
                }
                return Ok(Tensor::from_vec(y, (b, c, oh, ow), p.device())?);
            }
        }
        Ok(bn
            .forward(&self.forward(x)?)?
            .max_pool2d_with_stride(k, s)?)
    }
    /// The padded convolution without bias and ReLU.
    fn conv_raw(&self, x: &Tensor) -> Result<Tensor> {
        let (t, bo, l, r) = self.pad;
        let x = x.pad_with_zeros(2, t, bo)?.pad_with_zeros(3, l, r)?;
        Ok(mirkit_nn::conv2d::conv2d_gemm(&x, &self.w, None, 1, 0)?)
    }
    /// For a `kh × 1` (time-only) kernel: the raw convolution's max and min over the bands,
    /// `(B, O, T, 1)` each, from the input laid out bands × frames `(B, 1, F, T)`: the
    /// convolution then runs along rows, its output is `(B, O, F, T)` and the reductions
    /// run down columns (vectorised) instead of along 96-value rows.
    fn max_min_bands(&self, xb: &Tensor) -> Result<(Tensor, Tensor)> {
        let (t, bo, _, _) = self.pad;
        let x = xb.pad_with_zeros(3, t, bo)?;
        let w = self.w_bands.as_ref().ok_or_else(|| {
            ModelError::Input("max_min_bands needs a time-only (kh × 1) kernel".into())
        })?;
        let (b, _, f, width) = x.dims4()?;
        let (o, kh) = (w.dim(0)?, w.dim(3)?);
        if x.device().is_cpu() && x.dtype() == DType::F32 && kh <= width {
            // each band's convolution on the band in place, reduced over bands in cache
            let (x, w) = (x.contiguous()?, w.contiguous()?);
            let (xv, wv) = (
                x.flatten_all()?.to_vec1::<f32>()?,
                w.flatten_all()?.to_vec1::<f32>()?,
            );
            let (hi, lo) = mirkit_nn::kernels::rows_conv_max_min(&xv, (b, f, width), &wv, (o, kh));
            let tt = width - kh + 1;
            let dev = x.device();
            return Ok((
                Tensor::from_vec(hi, (b, o, tt, 1), dev)?,
                Tensor::from_vec(lo, (b, o, tt, 1), dev)?,
            ));
        }
        let y = mirkit_nn::conv2d::conv2d_gemm(&x, w, None, 1, 0)?; // (B, O, F, T)
        let (b, o, f, tt) = y.dims4()?;
        let both = y.reshape((b * o, f, tt))?.apply_op1_no_bwd(&ColumnMaxMin)?; // (B·O, 2, T)
        let pick =
            |i: usize| -> Result<Tensor> { Ok(both.narrow(1, i, 1)?.reshape((b, o, tt, 1))?) };
        Ok((pick(0)?, pick(1)?))
    }
    /// Bias and ReLU on a convolution output (or on any reduction of it that keeps the
    /// rank and the channel axis).
    fn activate(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.broadcast_add(&self.b)?.relu()?)
    }
}

/// A front-end branch: the max over frequency of `bn(relu(conv + bias))`, `(B, C, T)`.
/// Every step after the convolution is a per-channel monotone map (rounding included;
/// bn's scale may be negative), so with the raw convolution's max and min over
/// frequency, `max(f(max), f(min))` is exactly the max of `f` over all frequencies: the
/// same bits with two reductions instead of five passes over the `(B, C, T, F)` tensor.
/// (The model computes the max and min with [`BandConv`] and [`Conv::max_min_bands`];
/// this direct form is the tests' reference.)
#[cfg(test)]
fn conv_bn_max(c: &Conv, bn: &Bn, inp: &Tensor) -> Result<Tensor> {
    let raw = c.conv_raw(inp)?;
    finish_branch(
        c,
        bn,
        raw.max_keepdim(D::Minus1)?,
        raw.min_keepdim(D::Minus1)?,
    )
}

/// `max(f(max), f(min))` (see `conv_bn_max`) from the convolution's max and min over
/// frequency, `(B, C, T, 1)` each.
fn finish_branch(c: &Conv, bn: &Bn, mx: Tensor, mn: Tensor) -> Result<Tensor> {
    let f = |t: Tensor| -> Result<Tensor> { bn.forward(&c.activate(&t)?) };
    Ok(f(mx)?.maximum(&f(mn)?)?.squeeze(D::Minus1)?)
}

/// Max and min down the columns of a contiguous f32 matrix `(rows, n)` → `(2, n)` (or of
/// each matrix of a stack `(G, rows, n)` → `(G, 2, n)`): row by row element-wise, which
/// vectorises (Candle 0.11's reduction over a leading
/// dimension is a strided loop, 20 % of the tagging time when used here).
struct ColumnMaxMin;

impl candle_core::CustomOp1 for ColumnMaxMin {
    fn name(&self) -> &'static str {
        "musicnn-column-max-min"
    }

    fn cpu_fwd(
        &self,
        s: &candle_core::CpuStorage,
        l: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        let (candle_core::CpuStorage::F32(data), Some((a, b))) = (s, l.contiguous_offsets()) else {
            candle_core::bail!("column max/min: contiguous f32 expected")
        };
        let (groups, rows, n) = match l.dims() {
            [rows, n] => (1, *rows, *n),
            [g, rows, n] => (*g, *rows, *n),
            d => candle_core::bail!("column max/min: rank 2 or 3 expected, got {d:?}"),
        };
        if rows == 0 || n == 0 {
            candle_core::bail!("column max/min: empty matrix")
        }
        let x = &data[a..b];
        let mut out = vec![0f32; groups * 2 * n];
        for (xg, og) in x.chunks_exact(rows * n).zip(out.chunks_exact_mut(2 * n)) {
            let (hi, lo) = og.split_at_mut(n);
            mirkit_nn::kernels::column_max_min(xg, n, hi, lo);
        }
        let mut shape = l.dims().to_vec();
        let k = shape.len() - 2;
        shape[k] = 2;
        Ok((
            candle_core::CpuStorage::F32(out),
            candle_core::Shape::from(shape),
        ))
    }
}

/// 1-D convolution over time (the mid end's `[7, C]` kernels, time padded by 3).
struct Conv1 {
    w: Tensor,
    /// The bias, `(O,)`.
    b: Tensor,
}

impl Conv1 {
    fn new(map: &HashMap<String, Tensor>, name: &str) -> Result<Self> {
        // (7, C, 1, out) → (out, C, 7)
        let k = &map[&format!("{name}/kernel")];
        let w = k.squeeze(2)?.permute((2, 1, 0))?.contiguous()?;
        let b = map[&format!("{name}/bias")].clone();
        Ok(Self { w, b })
    }
    /// `relu(conv + bias)` as one fused pass ([`mirkit_nn::fused`]; with the mid end's
    /// 561 or 64 input channels, one product per kernel tap on the input in place)
    /// instead of a batch im2col, the product and two element-wise passes.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        conv_bias_relu(x, &self.w, &self.b, (0, 3))
    }
}

/// `relu(conv(x, w) + b)`, stride 1, zero padding `(rows, columns)` (1-D: the second), as
/// one fused inference pass ([`mirkit_nn::fused::conv_block`]).
fn conv_bias_relu(x: &Tensor, w: &Tensor, b: &Tensor, padding: (usize, usize)) -> Result<Tensor> {
    let spec = ConvSpec {
        weight: w,
        bias: Some(b),
        stride: 1,
        padding,
    };
    let epi = Epilogue {
        act: Act::Relu,
        ..Epilogue::default()
    };
    Ok(mirkit_nn::fused::conv_block(x, spec, epi, false)?)
}

struct Dense {
    /// (in, out), TensorFlow's layout
    w: Tensor,
    b: Tensor,
}

impl Dense {
    fn new(map: &HashMap<String, Tensor>, name: &str) -> Result<Self> {
        Ok(Self {
            w: map[&format!("{name}/kernel")].clone(),
            b: map[&format!("{name}/bias")].clone(),
        })
    }
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.w)?.broadcast_add(&self.b)?)
    }
}

enum Net {
    Musicnn {
        timbral: Vec<(Conv, Bn, BandConv)>,
        temporal: Vec<(Conv, Bn)>,
        mid: Vec<(Conv1, Bn)>,
        bn_flat: Bn,
        dense: Dense,
        bn_dense: Bn,
        out: Dense,
    },
    Vgg {
        blocks: Vec<(Conv, Bn)>,
        out: Dense,
    },
}

/// A loaded musicnn 0.1.0 tagger.
pub struct Musicnn {
    kind: Kind,
    bn_in: Bn,
    net: Net,
    tags: Vec<String>,
    front: FeatureExtractor,
}

/// VGG pools: (kernel, stride) over (time, frequency).
const VGG_POOLS: [((usize, usize), (usize, usize)); 5] = [
    ((4, 1), (2, 2)),
    ((2, 2), (2, 2)),
    ((2, 2), (2, 2)),
    ((2, 2), (2, 2)),
    ((4, 4), (4, 4)),
];

fn bn_layout(names: &mut Vec<(String, Vec<usize>)>, name: &str, n: usize) {
    for p in ["beta", "gamma", "moving_mean", "moving_variance"] {
        names.push((format!("{name}/{p}"), vec![n]));
    }
}

/// Tensor names and shapes of each architecture (TensorFlow's automatic layer names).
fn layout(kind: Kind, n_class: usize) -> Vec<(String, Vec<usize>)> {
    let mut v = Vec::new();
    bn_layout(&mut v, "batch_normalization", 1);
    match kind {
        Kind::Musicnn => {
            let convs: [(&[usize], usize); 8] = [
                (&[7, 38, 1, 204], 204),
                (&[7, 67, 1, 204], 204),
                (&[128, 1, 1, 51], 51),
                (&[64, 1, 1, 51], 51),
                (&[32, 1, 1, 51], 51),
                (&[7, 561, 1, 64], 64),
                (&[7, 64, 1, 64], 64),
                (&[7, 64, 1, 64], 64),
            ];
            for (i, (k, o)) in convs.iter().enumerate() {
                let c = if i == 0 {
                    "conv2d".to_string()
                } else {
                    format!("conv2d_{i}")
                };
                v.push((format!("{c}/kernel"), k.to_vec()));
                v.push((format!("{c}/bias"), vec![*o]));
                bn_layout(&mut v, &format!("batch_normalization_{}", i + 1), *o);
            }
            bn_layout(&mut v, "batch_normalization_9", 1506);
            v.push(("dense/kernel".into(), vec![1506, 200]));
            v.push(("dense/bias".into(), vec![200]));
            bn_layout(&mut v, "batch_normalization_10", 200);
            v.push(("dense_1/kernel".into(), vec![200, n_class]));
            v.push(("dense_1/bias".into(), vec![n_class]));
        }
        Kind::Vgg => {
            for i in 1..=5 {
                let cin = if i == 1 { 1 } else { 128 };
                v.push((format!("{i}CNN/kernel"), vec![3, 3, cin, 128]));
                v.push((format!("{i}CNN/bias"), vec![128]));
                bn_layout(&mut v, &format!("batch_normalization_{i}"), 128);
            }
            v.push(("dense/kernel".into(), vec![256, n_class]));
            v.push(("dense/bias".into(), vec![n_class]));
        }
    }
    v
}

impl Musicnn {
    /// Loads a file written by `tools/convert_musicnn.py`; the architecture comes from its
    /// metadata (`arch`) or its tensor names. Every tensor is checked: a missing,
    /// mis-shaped or unexpected one is an error naming it.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let meta = crate::weights::metadata(path)?;
        let map = candle_core::safetensors::load(path, &Device::Cpu)?;
        Self::from_parts(map, &meta, &path.display().to_string())
    }

    /// Loads from safetensors bytes (e.g. compiled into the binary).
    pub fn from_bytes(bytes: &[u8], label: &str) -> Result<Self> {
        let meta = Header::from_bytes(bytes, label)?.metadata();
        let map = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)?;
        Self::from_parts(map, &meta, label)
    }

    /// Whether a safetensors file holds a musicnn 0.1.0 model (metadata `arch` of
    /// `musicnn` or `vgg` with TensorFlow names, or those names alone); reads the header only.
    pub fn is_musicnn_file(path: &Path) -> Result<bool> {
        let h = Header::read(path)?;
        Ok(h.has_tensor("conv2d/kernel") || h.has_tensor("1CNN/kernel"))
    }

    fn from_parts(
        map: HashMap<String, Tensor>,
        meta: &HashMap<String, String>,
        file: &str,
    ) -> Result<Self> {
        let tags = tags_from_meta(meta, file)?;
        let kind = if map.contains_key("1CNN/kernel") {
            Kind::Vgg
        } else {
            Kind::Musicnn
        };
        check_layout(file, &map, &layout(kind, tags.len()))?;
        let map: HashMap<String, Tensor> = map
            .into_iter()
            .map(|(k, v)| Ok((k, v.to_dtype(DType::F32)?)))
            .collect::<Result<_>>()?;
        let bn_in = Bn::new(&map, "batch_normalization", 4, 1)?;
        let net = match kind {
            Kind::Musicnn => {
                let conv = |i: usize, same: bool| -> Result<(Conv, Bn)> {
                    let c = if i == 0 {
                        "conv2d".to_string()
                    } else {
                        format!("conv2d_{i}")
                    };
                    Ok((
                        Conv::new(&map, &c, same)?,
                        Bn::new(&map, &format!("batch_normalization_{}", i + 1), 4, 1)?,
                    ))
                };
                let mid = (5..8)
                    .map(|i| {
                        Ok((
                            Conv1::new(&map, &format!("conv2d_{i}"))?,
                            Bn::new(&map, &format!("batch_normalization_{}", i + 1), 3, 1)?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Net::Musicnn {
                    timbral: [0, 1]
                        .into_iter()
                        .map(|i| {
                            let (c, bn) = conv(i, false)?;
                            let f = BandConv::new(&c.w, N_MELS)?;
                            Ok((c, bn, f))
                        })
                        .collect::<Result<Vec<_>>>()?,
                    temporal: vec![conv(2, true)?, conv(3, true)?, conv(4, true)?],
                    mid,
                    bn_flat: Bn::new(&map, "batch_normalization_9", 2, 1)?,
                    dense: Dense::new(&map, "dense")?,
                    bn_dense: Bn::new(&map, "batch_normalization_10", 2, 1)?,
                    out: Dense::new(&map, "dense_1")?,
                }
            }
            Kind::Vgg => Net::Vgg {
                blocks: (1..=5)
                    .map(|i| {
                        Ok((
                            Conv::new(&map, &format!("{i}CNN"), true)?,
                            Bn::new(&map, &format!("batch_normalization_{i}"), 4, 1)?,
                        ))
                    })
                    .collect::<Result<Vec<_>>>()?,
                out: Dense::new(&map, "dense")?,
            },
        };
        Ok(Self {
            kind,
            bn_in,
            net,
            tags,
            front: FeatureExtractor::new(FeatureConfig::musicnn())?,
        })
    }

    /// The architecture.
    pub fn kind(&self) -> Kind {
        self.kind
    }
    /// Tag names in output order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }
    /// The front end (`FeatureConfig::musicnn()`), e.g. to stream frames of a long file.
    pub fn front_end(&self) -> &FeatureExtractor {
        &self.front
    }

    /// The log-mel of 16 kHz mono audio, frames × 96 (musicnn's `audio_rep`).
    pub fn log_mel(&self, audio: &[f32]) -> Result<Tensor> {
        if audio.is_empty() {
            return Err(ModelError::Input("no audio".into()));
        }
        let tf = self.front.compute(audio)?;
        let v = tf.view(); // (96, frames)
        let (rows, frames) = v.dim();
        let data: Vec<f32> = v.t().iter().copied().collect();
        Ok(Tensor::from_vec(data, (frames, rows), &Device::Cpu)?)
    }

    /// Non-overlapping 187-frame patches of a frames × 96 log-mel, `(patches, 187, 96)`; a
    /// trailing remainder is dropped, a log-mel shorter than one patch is repeated to fill
    /// one.
    pub fn patches(&self, log_mel: &Tensor) -> Result<Tensor> {
        let (frames, mels) = log_mel.dims2()?;
        if mels != N_MELS || frames == 0 {
            return Err(ModelError::Input(format!(
                "log-mel of shape ({frames}, {mels}); expected (frames > 0, {N_MELS})"
            )));
        }
        if frames < PATCH_FRAMES {
            let reps = PATCH_FRAMES.div_ceil(frames);
            let rep = Tensor::cat(&vec![log_mel.clone(); reps], 0)?;
            return Ok(rep.narrow(0, 0, PATCH_FRAMES)?.unsqueeze(0)?);
        }
        let n = frames / PATCH_FRAMES;
        Ok(log_mel
            .narrow(0, 0, n * PATCH_FRAMES)?
            .reshape((n, PATCH_FRAMES, N_MELS))?)
    }

    fn check_patches(&self, x: &Tensor) -> Result<()> {
        match (self.kind, x.dims()) {
            (Kind::Musicnn, [b, t, N_MELS]) if *b > 0 && *t > 0 => Ok(()),
            (Kind::Vgg, [b, PATCH_FRAMES, N_MELS]) if *b > 0 => Ok(()),
            (k, d) => Err(ModelError::Input(format!(
                "patches of shape {d:?}; {} expects (batch, {}, {N_MELS})",
                k.as_str(),
                if k == Kind::Vgg { "187" } else { "frames" }
            ))),
        }
    }

    /// Logits of a batch of patches `(batch, frames, 96)` (musicnn accepts any number of
    /// frames; the VGG models need 187).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.run(x, None)
    }

    /// Named intermediate features of a batch of patches, as musicnn's extractor returns
    /// them (batch first, then TensorFlow's time × channel or time × frequency × channel
    /// order): musicnn `timbral` (frames × 408), `temporal` (frames × 153), `cnn1`–`cnn3`
    /// (frames × 64), `mean_pool`, `max_pool` (753), `penultimate` (200); vgg
    /// `pool1`–`pool5` (time × frequency × 128).
    pub fn features(&self, x: &Tensor) -> Result<Vec<(String, Tensor)>> {
        let mut f = Vec::new();
        self.run(x, Some(&mut f))?;
        Ok(f)
    }

    fn run(&self, x: &Tensor, mut feats: Option<&mut Vec<(String, Tensor)>>) -> Result<Tensor> {
        self.check_patches(x)?;
        let x = self.bn_in.forward(&x.unsqueeze(1)?)?; // (B, 1, T, F)
        let mut keep = |name: &str, t: &Tensor| -> Result<()> {
            if let Some(f) = feats.as_deref_mut() {
                f.push((name.to_string(), t.clone()));
            }
            Ok(())
        };
        match &self.net {
            Net::Musicnn {
                timbral,
                temporal,
                mid,
                bn_flat,
                dense,
                bn_dense,
                out,
            } => {
                let xt = x.pad_with_zeros(2, 3, 3)?;
                let mut front = Vec::new();
                for (c, bn, fc) in timbral {
                    let (mx, mn) = fc.max_min(&xt)?;
                    front.push(finish_branch(c, bn, mx, mn)?);
                }
                // bands × frames, so that the max over bands runs down columns
                let xb = x.transpose(2, 3)?.contiguous()?;
                for (c, bn) in temporal {
                    let (mx, mn) = c.max_min_bands(&xb)?;
                    front.push(finish_branch(c, bn, mx, mn)?);
                }
                let front = Tensor::cat(&front, 1)?; // (B, 561, T)
                keep("timbral", &front.narrow(1, 0, 408)?.transpose(1, 2)?)?;
                keep("temporal", &front.narrow(1, 408, 153)?.transpose(1, 2)?)?;
                let c1 = mid[0].1.forward(&mid[0].0.forward(&front)?)?;
                let c2 = (mid[1].1.forward(&mid[1].0.forward(&c1)?)? + &c1)?;
                let c3 = (mid[2].1.forward(&mid[2].0.forward(&c2)?)? + &c2)?;
                keep("cnn1", &c1.transpose(1, 2)?)?;
                keep("cnn2", &c2.transpose(1, 2)?)?;
                keep("cnn3", &c3.transpose(1, 2)?)?;
                let all = Tensor::cat(&[&front, &c1, &c2, &c3], 1)?; // (B, 753, T)
                let mx = all.max(D::Minus1)?;
                let mean = all.mean(D::Minus1)?;
                keep("mean_pool", &mean)?;
                keep("max_pool", &mx)?;
                // TensorFlow flattens (753, 2) [max, mean] row-major: interleaved per channel
                let b = mx.dim(0)?;
                let flat = Tensor::stack(&[&mx, &mean], 2)?.reshape((b, 1506))?;
                let h = bn_flat.forward(&flat)?;
                let h = bn_dense.forward(&dense.forward(&h)?.relu()?)?;
                keep("penultimate", &h)?;
                out.forward(&h)
            }
            Net::Vgg { blocks, out } => {
                let mut h = x;
                for (i, ((c, bn), (k, s))) in blocks.iter().zip(VGG_POOLS).enumerate() {
                    h = c.relu_bn_pool(&h, bn, k, s)?;
                    keep(&format!("pool{}", i + 1), &h.permute((0, 2, 3, 1))?)?;
                }
                let b = h.dim(0)?;
                let flat = h.permute((0, 2, 3, 1))?.reshape((b, ()))?;
                out.forward(&flat)
            }
        }
    }

    /// Sigmoid scores per patch of a batch `(batch, frames, 96)`.
    pub fn tag_patches(&self, x: &Tensor) -> Result<Vec<Vec<f32>>> {
        Ok(candle_nn::ops::sigmoid(&self.forward(x)?)?.to_vec2()?)
    }

    /// The embedding of each patch of a batch: musicnn's `penultimate` features (200
    /// dimensions) or, for VGG, the flattened `pool5` the output layer reads (256).
    pub fn embedding(&self, x: &Tensor) -> Result<Vec<Vec<f32>>> {
        let want = match self.kind {
            Kind::Musicnn => "penultimate",
            Kind::Vgg => "pool5",
        };
        let (_, t) = self
            .features(x)?
            .into_iter()
            .find(|(n, _)| n == want)
            .expect("every model returns its embedding feature");
        let b = t.dim(0)?;
        Ok(t.reshape((b, ()))?.to_vec2()?)
    }

    /// Per-layer pooled features of a batch of patches, for transfer learning (Choi et al.
    /// 2017): each feature averaged over time (and frequency for the VGG pools); musicnn's
    /// `mean_pool`, `max_pool` and `penultimate` are already vectors. One `(name, batch ×
    /// dims)` per feature.
    pub fn pooled_features(&self, x: &Tensor) -> Result<Vec<(String, Tensor)>> {
        self.features(x)?
            .into_iter()
            .map(|(n, t)| {
                let t = match t.rank() {
                    2 => t,
                    3 => t.mean(1)?,
                    _ => t.mean(1)?.mean(1)?,
                };
                Ok((n, t))
            })
            .collect()
    }

    /// The `k` best tags of `scores`, best first.
    pub fn top_k<'a>(&'a self, scores: &[f32], k: usize) -> Vec<(&'a str, f32)> {
        crate::scores::top_k(&self.tags, scores, k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `max |a − b|`.
    fn max_abs_diff(a: Tensor, b: Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// The reduced branch against the direct `max(bn(relu(conv + bias)))`, bit for bit,
    /// with batch-norm scales of both signs and a "same"-padded kernel.
    #[test]
    fn fused_branch_equals_the_direct_one_bit_for_bit() {
        let dev = Device::Cpu;
        let mut rng = mirkit_core::Rng::new(11);
        let mut r = |shape: &[usize], lo: f64, hi: f64| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n).map(|_| rng.range(lo, hi) as f32).collect();
            Tensor::from_vec(v, shape, &dev).unwrap()
        };
        let (out_ch, kh, kw) = (6, 5, 7);
        let mut map = HashMap::new();
        map.insert("c/kernel".to_string(), r(&[kh, kw, 1, out_ch], -1.0, 1.0));
        map.insert("c/bias".to_string(), r(&[out_ch], -0.5, 0.5));
        map.insert("bn/gamma".to_string(), r(&[out_ch], -2.0, 2.0));
        map.insert("bn/beta".to_string(), r(&[out_ch], -1.0, 1.0));
        map.insert("bn/moving_mean".to_string(), r(&[out_ch], -1.0, 1.0));
        map.insert("bn/moving_variance".to_string(), r(&[out_ch], 0.1, 2.0));
        let g: Vec<f32> = map["bn/gamma"].to_vec1().unwrap();
        assert!(g.iter().any(|&v| v < 0.0) && g.iter().any(|&v| v > 0.0));
        let x = r(&[2, 1, 20, 16], -1.0, 1.0);
        for same in [false, true] {
            let c = Conv::new(&map, "c", same).unwrap();
            let bn = Bn::new(&map, "bn", 4, 1).unwrap();
            let want: Vec<f32> = bn
                .forward(&c.forward(&x).unwrap())
                .unwrap()
                .max(D::Minus1)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            let got: Vec<f32> = conv_bn_max(&c, &bn, &x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1()
                .unwrap();
            assert_eq!(got, want, "same padding {same}");
        }
        // the bands-by-frames path of the time-only (temporal) kernels: the same max and
        // min as the convolution in the frames-by-bands layout
        let mut map_t = HashMap::new();
        map_t.insert("t/kernel".to_string(), r(&[9, 1, 1, out_ch], -1.0, 1.0));
        map_t.insert("t/bias".to_string(), r(&[out_ch], -0.5, 0.5));
        let c = Conv::new(&map_t, "t", true).unwrap();
        let raw = c.conv_raw(&x).unwrap();
        let (mx, mn) = c
            .max_min_bands(&x.transpose(2, 3).unwrap().contiguous().unwrap())
            .unwrap();
        for (got, want) in [
            (mx, raw.max_keepdim(D::Minus1).unwrap()),
            (mn, raw.min_keepdim(D::Minus1).unwrap()),
        ] {
            assert_eq!(got.dims(), want.dims());
            let err = max_abs_diff(got, want);
            assert!(err <= 1e-5, "{err}");
        }
    }
}
