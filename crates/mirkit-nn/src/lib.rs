//! # mirkit-nn — what Candle lacks for music models
//!
//! Layers, losses and optimisers for the mirkit model zoo, on Candle, with PyTorch's
//! semantics and numbers: pooling with correct gradients, stable BCE-with-logits and
//! cross-entropy, seeded initialisation and dropout, stacked bidirectional GRU/LSTM under
//! PyTorch's parameter names, SGD (momentum, Nesterov, weight decay), AdamW, LR schedules
//! and gradient-norm clipping, and 1-D/2-D convolutions as im2col + matrix products
//! ([`conv`], [`conv2d`]).
//!
//! ```
//! use candle_core::{Device, Tensor};
//! let x = Tensor::arange(0f32, 16.0, &Device::Cpu).unwrap().reshape((1, 1, 4, 4)).unwrap();
//! let y = mirkit_nn::pool::max_pool2d(&x, (2, 2), (2, 2), (0, 0)).unwrap();
//! assert_eq!(y.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![5.0, 7.0, 13.0, 15.0]);
//! ```
//!
//! ## Design decisions
//! * Parity is tested against PyTorch 2.5.1 fixtures (`tools/make_nn_fixtures.py`) and
//!   gradients against finite differences.
//! * Randomness comes from [`mirkit_core::Rng`], never from Candle's unseedable CPU RNG.
//! * Parameters use PyTorch state-dict names so converted weights load unchanged.
//! * Convolutions do not use Candle 0.11.1's CPU kernels: its `conv1d` kernel gradient is
//!   wrong for batches > 1, and its `conv2d` builds im2col tiles value by value (3.6×
//!   slower forward + backward at a typical layer). [`conv2d`]'s im2col/col2im are custom
//!   ops that are each other's gradient; off the CPU both fall back to Candle.
//! * Speed by fusion (issue #14): in eval mode every conv → bias → batch norm →
//!   activation → max-pool block of the zoo runs as one tiled pass ([`fused`]: no
//!   full-size intermediate, same f32 operations in the same order); in training the
//!   batch norm (+ ReLU) is one op with its own backward ([`batchnorm`]), each conv
//!   block one op ([`trainblock`]) and a whole residual block one op ([`resblock`]):
//!   Candle's backward pays a zero fill and an add per gradient edge over the whole
//!   activation, so fewer graph nodes is fewer full-size passes. All fall back to
//!   Candle's ops off the CPU.
//! * Element-wise loops that a profile found hot are written over fixed lanes and get
//!   an AVX2 variant chosen at run time (the same operations in the same order, so the
//!   same bits on any CPU); the crate itself is built for the baseline x86-64.
//! * Hand-written AVX2/FMA kernels only where a measured profile asked for them, each with
//!   a portable fallback and a test against an `f64` reference: the column FFT that ends
//!   the band-axis DFT of musicnn's timbral filters ([`colfft`]), and valid stride-1 1-D
//!   convolutions computed directly ([`kernels::conv1d_valid_into`]).
//! * Less arithmetic where it pays and rounding allows: stride-1 3×3 convolutions by
//!   Winograd's minimal filtering (Lavin & Gray 2016) — the forward and the training
//!   input gradient by F(2×2, 3×3) ([`winograd`]; 16 multiplications per 2×2 outputs
//!   instead of 36), the training kernel gradient by its transpose F(3×3, 2×2) (16 per
//!   2×2 block of the output gradient), and the eval path's 1-D kernel-3 convolutions
//!   (SampleCNN, ReSE-2) by F(4, 3) (`wino1d`; 2× less, its chunked sums as accurate as
//!   a plain `f32` sum), each tested against `f64` direct sums; the pretrained models'
//!   parity tests hold unchanged. F(4×4, 3×3) (4× less) is opt-in
//!   ([`fused::set_winograd`]): its transforms' larger constants make its f32 rounding
//!   error 2–3× larger (Barabasz et al., "Error analysis and improving the accuracy of
//!   Winograd convolution", 2020). `fused::set_winograd(Winograd::Off)` turns all of
//!   them off.

#![warn(missing_docs)]

pub mod bandconv;
pub mod batchnorm;
pub mod blocks;
pub mod colfft;
pub mod conv;
pub mod conv2d;
pub mod convop;
pub mod dropout;
mod error;
pub mod frontend;
pub mod fused;
pub mod init;
pub mod kernels;
pub mod loss;
pub mod optim;
pub mod pool;
pub mod resblock;
pub mod rnn;
pub mod trainblock;
mod wgrad;
mod wino1d;
pub mod winograd;

pub use error::{NnError, Result};
