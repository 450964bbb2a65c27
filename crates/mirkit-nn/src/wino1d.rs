//! Winograd's minimal filtering F(4, 3) and F(2, 3) for the fused eval path's 1-D
//! convolutions of kernel 3, stride 1, padding 1 — the blocks of SampleCNN, SampleCNN+SE
//! and ReSE-2, nearly all of their arithmetic.
//!
//! Each block of `M` outputs comes from `N = M + 2` inputs `d` as
//! `y = Aᵀ [ Σ_c (G g_c) ⊙ (Bᵀ d_c) ]` (Lavin & Gray, "Fast Algorithms for Convolutional
//! Neural Networks", CVPR 2016, §4: the 1-D algorithms that their 2-D ones nest), with
//! the tables of [`crate::winograd::F2`] and [`crate::winograd::F4`]. F(2, 3):
//!
//! ```text
//! Bᵀ d = (d₀ − d₂, d₁ + d₂, d₂ − d₁, d₁ − d₃)
//! G g  = (g₀, (g₀ + g₁ + g₂)/2, (g₀ − g₁ + g₂)/2, g₂)
//! y₀ = M₀ + M₁ + M₂,  y₁ = M₁ − M₂ − M₃
//! ```
//!
//! Summed over the input channels, the `N` element-wise products are `N` matrix
//! products `M_ξ = U_ξ · V_ξ` (`U_ξ` the transformed kernel `(O, C)`, `V_ξ` the
//! transformed input `(C, blocks)`): F(4, 3) makes 6 multiply-adds per 4 outputs and
//! channel pair, F(2, 3) 4 per 2, against im2col's 3 per output — 2× and 1.5× less
//! arithmetic. The transforms cost `O(C·blocks + O·blocks)`.
//!
//! **Which.** F(4, 3) wherever an item has 256 outputs or more (64 blocks), F(2, 3) from
//! 128, the tap products below ([`fit`]): a tile never spans items, and thinner products
//! run the kernels' edge cases. Unlike the 2-D F(4×4, 3×3), which stays opt-in, the 1-D
//! F(4, 3) is the default: its transforms are applied along one axis only, and with the
//! channels summed in chunks of 16 (as [`crate::winograd::F4`]) its error against an `f64`
//! convolution is that of the plain `f32` sum over channels and taps — 0.5–1.15× of it in
//! the tests, F(2, 3) 0.5–0.8× — where F(4×4, 3×3)'s was 2–3× F(2×2, 3×3)'s.
//!
//! **Numbers.** The same convolution summed in another order, the kernel's transform
//! computed in `f64` and rounded once; within the fused path's 1e-5 relative bar against
//! the composed ops. `fused::set_winograd(Winograd::Off)` restores the tap products' sums.
//!
//! **Non-finite input.** A NaN or infinity in a block's inputs reaches all of its
//! outputs (up to three more than a direct convolution reaches at a block's edge); NaN
//! still reaches the output, the fused path's contract.

use crate::fused::{Geo, Tile};
use crate::winograd::{product, transform, Algo, Pick, Which, F2, F4, P2, P4};

/// Input and output channels from which the path is used (the tap products' own floor:
/// thinner layers are a few percent of any zoo model's work).
const MIN_CHANNELS: usize = 32;

/// Output positions per call from which the kernel's transform (done at every call)
/// repays itself: the 2-D path's floor. At batch 1 this leaves ReSE-2's and SampleCNN's
/// layers of 729 positions and fewer to the tap products.
const MIN_POSITIONS: usize = 1024;

/// Whether `g` is a convolution this path computes: 1-D, kernel 3, stride 1, padding 1,
/// at least [`MIN_CHANNELS`] channels each way.
pub(crate) fn applies(g: &Geo) -> bool {
    g.h == 1
        && g.kh == 1
        && g.kw == 3
        && g.stride == 1
        && g.ph == 0
        && g.pw == 1
        && g.c >= MIN_CHANNELS
        && g.o >= MIN_CHANNELS
}

/// The algorithm for a layer of geometry `g`: a tile never spans two items, so an item
/// of fewer than 64 blocks makes thin products — F(4, 3) from 256 outputs per item,
/// F(2, 3) from 128, the tap products below.
pub(crate) fn fit(g: &Geo) -> Option<Which> {
    match g.w {
        w if w >= 4 * 64 => Some(Which::F4),
        w if w >= 2 * 64 => Some(Which::F2),
        _ => None,
    }
}

/// Whether the transforms repay themselves for `n` items of geometry `g` (the kernel's
/// transform is done at every call).
pub(crate) fn worth_it(n: usize, g: &Geo) -> bool {
    n * g.w >= MIN_POSITIONS
}

/// The transformed kernel `U = G g` of a `(o, c, 3)` kernel (row-major), laid out
/// `(N, o, c)`: `U_ξ` is the contiguous `(o, c)` matrix at `ξ·o·c`. Each value is
/// computed in `f64` from the kernel's three taps and rounded once.
pub(crate) fn transform_kernel(kernel: &[f32], o: usize, c: usize, which: Which) -> Vec<f32> {
    match which {
        Which::F2 => transform_kernel_with(&F2, kernel, o, c),
        Which::F4 => transform_kernel_with(&F4, kernel, o, c),
    }
}

fn transform_kernel_with<const M: usize, const N: usize>(
    alg: &Algo<M, N>,
    kernel: &[f32],
    o: usize,
    c: usize,
) -> Vec<f32> {
    assert_eq!(kernel.len(), o * c * 3, "kernel (O, C, 3)");
    let oc = o * c;
    let mut u = vec![0f32; N * oc];
    for (i, k) in kernel.chunks_exact(3).enumerate() {
        for (a, gr) in alg.g.iter().enumerate() {
            // Σ_j G[a][j]·g[j] from its first term (`-0.0 + x` is `x`)
            let mut s = -0.0f64;
            for (&gj, &kj) in gr.iter().zip(k) {
                s += gj * kj as f64;
            }
            u[a * oc + i] = s as f32;
        }
    }
    u
}

/// Tiles of output positions for this path: whole blocks of `M` outputs where the
/// pooling allows (columns in multiples of both `M` and the pooling window), as many
/// blocks per tile as keep the transformed input and the products within `tile_floats`
/// each.
pub(crate) fn tiles(n: usize, g: &Geo, tile_floats: usize, which: Which) -> Vec<Tile> {
    let cols = g.pow * g.pool.1;
    let (m, p) = (which.m(), g.pool.1.max(1));
    let unit = (1..=m)
        .map(|i| i * p)
        .find(|v| v.is_multiple_of(m))
        .unwrap_or(m * p);
    // blocks are the products' vector dimension: a multiple of 16 (one AVX-512 vector)
    let blocks = (tile_floats / ((m + 2) * g.c.max(g.o))).next_multiple_of(16);
    crate::fused::tile_grid(n, (1, cols), (1, unit), (m * blocks).max(unit))
}

/// Reused buffers of one worker.
#[derive(Default)]
pub(crate) struct Scratch {
    /// One channel's padded input run, where the tile reaches past the input's ends.
    row: Vec<f32>,
    /// The run split into its `M` phases: `phases[q·(blocks + 1) + k]` is position
    /// `M·k + q` of the run.
    phases: Vec<f32>,
    /// The transformed input, `N` × `(C, blocks)`.
    v: Vec<f32>,
    /// The products, `N` × `(O, blocks)`.
    m: Vec<f32>,
    /// One output channel's outputs `y[q·blocks + b]` (output `M·b + q`).
    y: Vec<f32>,
}

/// The convolution of one tile for each part: `prod` is `(Σ o_i, tile columns)`
/// row-major, part after part, every element written. `xi` is the item's `(C, W)` input;
/// `parts` are the transformed kernels ([`transform_kernel`] with the same `which`) with
/// their output channels.
#[allow(clippy::too_many_arguments)]
pub(crate) fn tile_product(
    xi: &[f32],
    g: &Geo,
    t: &Tile,
    parts: &[(&[f32], usize)],
    s: &mut Scratch,
    prod: &mut [f32],
    threads: usize,
    which: Which,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe {
            match which {
                Which::F2 => tile_product_avx2::<2, 4, P2>(xi, g, t, parts, s, prod, threads),
                Which::F4 => tile_product_avx2::<4, 6, P4>(xi, g, t, parts, s, prod, threads),
            }
        };
        return;
    }
    match which {
        Which::F2 => tile_product_any::<2, 4, P2>(xi, g, t, parts, s, prod, threads),
        Which::F4 => tile_product_any::<4, 6, P4>(xi, g, t, parts, s, prod, threads),
    }
}

/// [`tile_product_any`] compiled for AVX2: the transforms are multiplications and
/// additions over contiguous runs of blocks, vectorised 8 wide here (4 without); no fused
/// multiply-add is involved, so the bits are the same either way.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_product_avx2<const M: usize, const N: usize, A: Pick<M, N>>(
    xi: &[f32],
    g: &Geo,
    t: &Tile,
    parts: &[(&[f32], usize)],
    s: &mut Scratch,
    prod: &mut [f32],
    threads: usize,
) {
    tile_product_any::<M, N, A>(xi, g, t, parts, s, prod, threads);
}

/// `V = Bᵀ d` of `nb` blocks of `M` outputs from output `q0` on, every channel of the
/// item's input `xi` `(c, w)`, into `s.v` `(N, c, nb)`: block `b` reads the padded
/// input's positions `q0 + M·b .. q0 + M·b + N`, i.e. the input from `q0 + M·b − 1`
/// (zero outside it).
#[inline(always)]
fn transform_input<const M: usize, const N: usize, A: Pick<M, N>>(
    xi: &[f32],
    (c, w): (usize, usize),
    q0: usize,
    nb: usize,
    s: &mut Scratch,
) {
    // the run of inputs q0 − 1 .. q0 − 1 + M·(nb + 1) (zero outside the input): block b
    // reads its positions M·b .. M·b + N, and its position M·k + q is phase q's k-th
    let run = M * (nb + 1);
    let inside = q0 >= 1 && q0 - 1 + run <= w;
    s.phases.resize(M * (nb + 1), 0.0);
    s.v.resize(N * c * nb, 0.0);
    if !inside {
        s.row.resize(run, 0.0);
    }
    let x0 = q0 as isize - 1;
    let lo = ((-x0).max(0) as usize).min(run); // first position of the run inside the input
    let hi = ((w as isize - x0).max(0) as usize).min(run).max(lo);
    for ch in 0..c {
        let plane = &xi[ch * w..][..w];
        let src: &[f32] = if inside {
            &plane[q0 - 1..][..run]
        } else {
            let row = &mut s.row;
            row[..lo].fill(0.0);
            if lo < hi {
                let sx = (x0 + lo as isize) as usize;
                row[lo..hi].copy_from_slice(&plane[sx..sx + hi - lo]);
            }
            row[hi..].fill(0.0);
            row
        };
        split_phases::<M>(src, nb + 1, &mut s.phases);
        let ins: [&[f32]; N] =
            std::array::from_fn(|j| &s.phases[(j % M) * (nb + 1) + j / M..][..nb]);
        // V_ξ's row `ch`, ξ = 0..N: c·nb apart
        let mut outs = s.v[ch * nb..].chunks_mut(c * nb);
        let mut outs: [&mut [f32]; N] = std::array::from_fn(|_| outs.next().expect("N rows"));
        transform(&A::ALG.bt, ins, &mut outs, nb);
    }
}

/// `src` (`M·len` values) split into its `M` phases, `len` apart in `phases`: position
/// `M·k + q` to `phases[q·len + k]`.
#[inline(always)]
fn split_phases<const M: usize>(src: &[f32], len: usize, phases: &mut [f32]) {
    let mut ph = phases.chunks_exact_mut(len);
    let ph: [&mut [f32]; M] = std::array::from_fn(|_| ph.next().expect("M phases"));
    for (k, p) in src.chunks_exact(M).take(len).enumerate() {
        for (q, &v) in p.iter().enumerate() {
            ph[q][k] = v;
        }
    }
}

#[inline(always)]
fn tile_product_any<const M: usize, const N: usize, A: Pick<M, N>>(
    xi: &[f32],
    g: &Geo,
    t: &Tile,
    parts: &[(&[f32], usize)],
    s: &mut Scratch,
    prod: &mut [f32],
    threads: usize,
) {
    let alg = &A::ALG;
    let m = t.c1 - t.c0;
    let nb = m.div_ceil(M);
    let c = g.c;
    transform_input::<M, N, A>(xi, (c, g.w), t.c0, nb, s);
    s.y.resize(M * nb, 0.0);
    let mut rest: &mut [f32] = prod;
    for &(u, o) in parts {
        let (part, tail) = rest.split_at_mut(o * m);
        rest = tail;
        // the products M_ξ = U_ξ · V_ξ, (o, blocks) each, summed over chunks of input
        // channels where the algorithm asks for it (F(4, 3): see winograd::F4)
        s.m.resize(N * o * nb, 0.0);
        for k in 0..N {
            product(
                &u[k * o * c..][..o * c],
                &s.v[k * c * nb..][..c * nb],
                (o, c, nb),
                alg.chunk,
                &mut s.m[k * o * nb..][..o * nb],
                threads,
            );
        }
        for (oc, dst) in part.chunks_exact_mut(m).enumerate() {
            let ms: [&[f32]; N] = std::array::from_fn(|k| &s.m[(k * o + oc) * nb..][..nb]);
            {
                let mut ys = s.y.chunks_exact_mut(nb);
                let mut ys: [&mut [f32]; M] = std::array::from_fn(|_| ys.next().expect("M"));
                transform(&alg.at, ms, &mut ys, nb);
            }
            // output M·b + q is y[q][b]
            let ys: [&[f32]; M] = std::array::from_fn(|q| &s.y[q * nb..][..nb]);
            let mut blocks = dst.chunks_exact_mut(M);
            for (b, p) in (&mut blocks).enumerate() {
                for (v, y) in p.iter_mut().zip(&ys) {
                    *v = y[b];
                }
            }
            // a last, partial block
            for (v, y) in blocks.into_remainder().iter_mut().zip(&ys) {
                *v = y[nb - 1];
            }
        }
    }
}

/// Whether [`grad_sums`] computes the kernel gradient of `g` for `n` items: a layer of
/// this path ([`applies`]) without pooling, its output the input's length, at least 128
/// outputs per item (64 blocks; [`fit`]) and 4096 in all (the 2-D kernel gradient's
/// floor, `crate::wgrad`).
pub(crate) fn grad_applies(n: usize, g: &Geo) -> bool {
    applies(g) && g.pool == (1, 1) && g.pow == g.w && fit(g).is_some() && n * g.w >= 4096
}

/// The transformed sums `M_ξ = Σ_blocks U_ξ V_ξᵀ` `(N, O, C)` of items `items` of the
/// input `x` `(N, C, W)` and the output gradient `dy` `(N, O, W)`: `V = Bᵀ d` of the
/// padded input's blocks as in the forward, `U = A g` of the output gradient's blocks of
/// `M` (`A = (Aᵀ)ᵀ`), 4 multiply-adds per block and channel pair instead of 6 (Lavin &
/// Gray §4: F(3, 2) is the transpose of F(2, 3), the tables in other roles).
/// [`grad_finish`] turns (the sum over groups of) them into the kernel gradient. The
/// blocks are visited in a fixed order (item, block) in chunks, each chunk's products
/// added to the sums in order; the products split over `threads` threads by output
/// blocks: the same bits on any count. (Not the transpose of F(4, 3): its output
/// gradient's transform has coefficients up to 8, summed over every block of the batch
/// without the forward's chunks of channels.)
pub(crate) fn grad_sums(
    x: &[f32],
    dy: &[f32],
    items: std::ops::Range<usize>,
    g: &Geo,
    threads: usize,
) -> Vec<f32> {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { grad_sums_avx2(x, dy, items, g, threads, grad_chunk(g)) };
    }
    grad_sums_any::<2, 4, P2>(x, dy, items, g, threads, grad_chunk(g))
}

/// Blocks per chunk of [`grad_sums`]: the chunk's transforms (F(2, 3)'s 4 values per
/// block and channel, `4·(C + O)` per block) within about 1 MB, so that the products
/// read them from the core's cache (as `crate::wgrad`'s).
fn grad_chunk(g: &Geo) -> usize {
    ((1 << 18) / 4 / (g.c + g.o).max(1)).max(16)
}

/// [`grad_sums_any`] compiled for AVX2 (the transforms vectorise 8 wide; no fused
/// multiply-add: the same bits either way).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn grad_sums_avx2(
    x: &[f32],
    dy: &[f32],
    items: std::ops::Range<usize>,
    g: &Geo,
    threads: usize,
    per: usize,
) -> Vec<f32> {
    grad_sums_any::<2, 4, P2>(x, dy, items, g, threads, per)
}

#[inline(always)]
fn grad_sums_any<const M: usize, const N: usize, A: Pick<M, N>>(
    x: &[f32],
    dy: &[f32],
    items: std::ops::Range<usize>,
    g: &Geo,
    threads: usize,
    per: usize,
) -> Vec<f32> {
    let (c, o, w) = (g.c, g.o, g.w);
    let alg = &A::ALG;
    // A = (Aᵀ)ᵀ: U_ξ = Σ_i Aᵀ[i][ξ]·g_i
    let a: [[f32; M]; N] = std::array::from_fn(|xi| std::array::from_fn(|i| alg.at[i][xi]));
    let nb = w.div_ceil(M);
    let per = per.clamp(1, nb);
    let mut m = Vec::with_capacity(N * o * c);
    m.resize(N * o * c, 0f32); // overwritten by the first chunk's products
    let mut s = Scratch::default();
    let (mut u, mut grow, mut gph) = (Vec::new(), Vec::new(), Vec::new());
    let mut first = true;
    for item in items {
        let xi = &x[item * c * w..][..c * w];
        let dyi = &dy[item * o * w..][..o * w];
        for b0 in (0..nb).step_by(per) {
            let nt = per.min(nb - b0);
            let q0 = M * b0;
            transform_input::<M, N, A>(xi, (c, w), q0, nt, &mut s);
            // U of the output gradient's blocks: positions q0 .. q0 + M·nt (zero past w)
            u.resize(N * o * nt, 0f32); // every element written below
            grow.resize(M * nt, 0f32);
            gph.resize(M * nt, 0f32);
            let valid = (w - q0).min(M * nt);
            for oc in 0..o {
                let src: &[f32] = if valid == M * nt {
                    &dyi[oc * w + q0..][..M * nt]
                } else {
                    grow[..valid].copy_from_slice(&dyi[oc * w + q0..][..valid]);
                    grow[valid..].fill(0.0);
                    &grow
                };
                split_phases::<M>(src, nt, &mut gph);
                let ins: [&[f32]; M] = std::array::from_fn(|i| &gph[i * nt..][..nt]);
                let mut outs = u[oc * nt..].chunks_mut(o * nt);
                let mut outs: [&mut [f32]; N] =
                    std::array::from_fn(|_| outs.next().expect("N rows"));
                transform(&a, ins, &mut outs, nt);
            }
            crate::wgrad::add_products((&u, &s.v), (o, c, nt), &mut m, !first, threads);
            first = false;
        }
    }
    if first {
        m.fill(0.0); // no items: no blocks
    }
    m
}

/// The kernel gradient `(O, C, 3)` from the transformed sums `m` of [`grad_sums`]:
/// `dW[o, c, j] = Σ_ξ G[ξ][j]·M_ξ[o, c]`, in `f64`.
pub(crate) fn grad_finish(m: &[f32], o: usize, c: usize) -> Vec<f32> {
    grad_finish_with(&F2, m, o, c)
}

fn grad_finish_with<const M: usize, const N: usize>(
    alg: &Algo<M, N>,
    m: &[f32],
    o: usize,
    c: usize,
) -> Vec<f32> {
    let oc = o * c;
    assert_eq!(m.len(), N * oc, "transformed sums");
    let mut dw = vec![0f32; oc * 3];
    for (p, out) in dw.chunks_exact_mut(3).enumerate() {
        for (j, d) in out.iter_mut().enumerate() {
            *d = (0..N)
                .map(|xi| alg.g[xi][j] * m[xi * oc + p] as f64)
                .sum::<f64>() as f32;
        }
    }
    dw
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct convolution (kernel 3, padding 1) in f64.
    fn direct(x: &[f32], (c, w): (usize, usize), k: &[f32], o: usize) -> Vec<f64> {
        let mut y = vec![0f64; o * w];
        for oc in 0..o {
            for q in 0..w {
                let mut acc = 0f64;
                for ch in 0..c {
                    for j in 0..3 {
                        let at = q as isize + j as isize - 1;
                        if at < 0 || at >= w as isize {
                            continue;
                        }
                        acc += x[ch * w + at as usize] as f64 * k[(oc * c + ch) * 3 + j] as f64;
                    }
                }
                y[oc * w + q] = acc;
            }
        }
        y
    }

    fn geo(c: usize, w: usize, o: usize, pool: usize) -> Geo {
        Geo {
            c,
            h: 1,
            w,
            o,
            kh: 1,
            kw: 3,
            stride: 1,
            ph: 0,
            pw: 1,
            poh: 1,
            pow: w / pool,
            pool: (1, pool),
        }
    }

    /// The worst error of `got` (`(o, w)`) against the f64 sums `want`, relative to the
    /// sums' scale (`c·3` products of inputs in ±1 and taps in ±½).
    fn worst(got: impl Iterator<Item = f32>, want: &[f64], c: usize) -> f64 {
        got.zip(want)
            .map(|(g, w)| (g as f64 - w).abs() / (c as f64 * 1.5))
            .fold(0.0, f64::max)
    }

    /// Every tile of several geometries (odd and even widths, tiles inside the input and
    /// at both ends, one tile and several, pooling windows of 2 and 3, two parts) by both
    /// algorithms against the f64 direct convolution, each no less accurate than the
    /// plain `f32` sum over channels and taps (fused multiply-adds in order, as an im2col
    /// product's inner loop) within 1.5× — measured: F(2, 3) 0.5–0.8× of it, F(4, 3)
    /// 0.5–1.15× (its chunked sums pay for larger transform constants).
    #[test]
    fn tiles_match_direct_f64_sums() {
        let mut rng = mirkit_core::Rng::new(31);
        // (c, w, o, pool, tile budget, second part's o)
        for (c, w, o, pool, tile_floats, o2) in [
            (32, 101, 40, 1, 4096, 0),
            (48, 64, 32, 1, 1 << 18, 32),
            (64, 300, 33, 3, 8192, 0),
            (32, 7, 32, 1, 4096, 40),
            (40, 250, 64, 2, 6000, 0),
            (128, 600, 128, 1, 1 << 18, 0),
            (256, 600, 256, 1, 1 << 18, 0),
        ] {
            let g = geo(c, w, o.max(o2), pool);
            let x: Vec<f32> = (0..c * w).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            let ks: Vec<(Vec<f32>, usize)> = [o, o2]
                .into_iter()
                .filter(|&n| n > 0)
                .map(|n| {
                    let k = (0..n * c * 3).map(|_| rng.range(-0.5, 0.5) as f32);
                    (k.collect(), n)
                })
                .collect();
            let want: Vec<Vec<f64>> = ks.iter().map(|(k, n)| direct(&x, (c, w), k, *n)).collect();
            // the plain f32 sums' worst error
            let plain = ks
                .iter()
                .zip(&want)
                .map(|((k, n), want)| {
                    let sums = (0..n * w).map(|i| {
                        let (oc, q) = (i / w, i % w);
                        let mut acc = 0f32;
                        for ch in 0..c {
                            for j in 0..3 {
                                if let Some(&v) = (q + j)
                                    .checked_sub(1)
                                    .and_then(|a| (a < w).then(|| &x[ch * w + a]))
                                {
                                    acc = v.mul_add(k[(oc * c + ch) * 3 + j], acc);
                                }
                            }
                        }
                        acc
                    });
                    worst(sums, want, c)
                })
                .fold(0.0, f64::max);
            let total: usize = ks.iter().map(|k| k.1).sum();
            for which in [Which::F2, Which::F4] {
                let us: Vec<Vec<f32>> = ks
                    .iter()
                    .map(|(k, n)| transform_kernel(k, *n, c, which))
                    .collect();
                let parts: Vec<(&[f32], usize)> =
                    us.iter().zip(&ks).map(|(u, (_, n))| (&u[..], *n)).collect();
                let tiles = tiles(1, &g, tile_floats, which);
                assert!(tiles
                    .iter()
                    .all(|t| t.c0 % which.m() == 0 && t.c0 % pool == 0));
                // the whole output, assembled from the tiles (NaN where none wrote)
                let mut out = [vec![f32::NAN; o * w], vec![f32::NAN; o2 * w]];
                let mut s = Scratch::default();
                for t in &tiles {
                    let m = t.c1 - t.c0;
                    let mut prod = vec![f32::NAN; total * m];
                    tile_product(&x, &g, t, &parts, &mut s, &mut prod, 1, which);
                    let mut rows = prod.chunks_exact(m);
                    for (oc, row) in out
                        .iter_mut()
                        .flat_map(|p| p.chunks_exact_mut(w))
                        .enumerate()
                    {
                        let r = rows.next().unwrap_or_else(|| panic!("row {oc}"));
                        row[t.c0..t.c1].copy_from_slice(r);
                    }
                }
                let e = out
                    .iter()
                    .zip(&want)
                    .map(|(got, want)| worst(got.iter().copied(), want, c))
                    .fold(0.0, f64::max);
                // NaN (a position no tile wrote) fails this too
                assert!(
                    e <= 1.5 * plain,
                    "{which:?} ({c}, {w}, {o}, {o2}): {e:.3e} against the f32 sum's {plain:.3e}"
                );
                assert!(e < 1e-6, "{which:?} ({c}, {w}, {o}, {o2}): {e:.3e}");
                // one tile where the budget holds the whole width, several where not
                let blocks = tile_floats / ((which.m() + 2) * c.max(o.max(o2)));
                let per_tile = which.m() * blocks.next_multiple_of(16);
                assert_eq!(tiles.len() == 1, per_tile >= w, "tiles of ({c}, {w})");
            }
        }
    }

    /// The kernel gradient by F(3, 2) against the f64 sums
    /// `dW[o, c, j] = Σ_{item, q} dY[o, q] · x[c, q + j − 1]`: odd and even widths (a
    /// last block half outside), one chunk and several (a chunk smaller than an item,
    /// and items of several chunks), every item or a range of them; and the same bits on
    /// 1 and 3 threads.
    #[test]
    fn kernel_gradient_matches_direct_f64_sums() {
        let mut rng = mirkit_core::Rng::new(37);
        // (n, c, o, w, blocks per chunk, items)
        for (n, c, o, w, per, items) in [
            (2, 32, 40, 131, 1000, 0..2),
            (3, 48, 32, 130, 16, 0..3),
            (4, 32, 32, 257, 7, 1..3),
        ] {
            let g = geo(c, w, o, 1);
            let x: Vec<f32> = (0..n * c * w)
                .map(|_| rng.range(-1.0, 1.0) as f32)
                .collect();
            let dy: Vec<f32> = (0..n * o * w)
                .map(|_| rng.range(-1.0, 1.0) as f32)
                .collect();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                pool.install(|| {
                    let m = grad_sums_any::<2, 4, P2>(&x, &dy, items.clone(), &g, threads, per);
                    grad_finish(&m, o, c)
                })
            };
            let got = run(1);
            assert_eq!(got, run(3), "threads ({n}, {c}, {o}, {w})");
            let positions = (items.len() * w) as f64;
            for oc in 0..o {
                for ch in 0..c {
                    for j in 0..3 {
                        let mut want = 0f64;
                        for item in items.clone() {
                            for q in 0..w {
                                let Some(at) = (q + j).checked_sub(1).filter(|&a| a < w) else {
                                    continue;
                                };
                                want += dy[(item * o + oc) * w + q] as f64
                                    * x[(item * c + ch) * w + at] as f64;
                            }
                        }
                        let e = (got[(oc * c + ch) * 3 + j] as f64 - want).abs();
                        // sums of ±1 products over the positions, rounded in f32
                        assert!(
                            e <= 2e-6 * positions,
                            "{e} at ({oc}, {ch}, {j}) of ({n}, {c}, {o}, {w})"
                        );
                    }
                }
            }
        }
    }

    /// Only kernel-3, stride-1, padding-1 1-D layers with enough channels.
    #[test]
    fn applies_only_to_its_geometry() {
        assert!(applies(&geo(32, 100, 32, 1)));
        assert!(!applies(&geo(16, 100, 32, 1)));
        assert!(!applies(&geo(32, 100, 16, 1)));
        assert!(!applies(&Geo {
            pw: 0,
            ..geo(32, 100, 32, 1)
        }));
        assert!(!applies(&Geo {
            stride: 3,
            ..geo(32, 100, 32, 1)
        }));
        assert!(!applies(&Geo {
            kw: 5,
            ..geo(32, 100, 32, 1)
        }));
    }
}
