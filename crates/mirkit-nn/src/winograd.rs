//! Winograd's minimal filtering F(2×2, 3×3) (the default) and F(4×4, 3×3) (opt-in,
//! [`crate::fused::Winograd`]) for the fused eval path's stride-1 3×3 convolutions.
//!
//! A 3×3 convolution (padding 1, stride 1) computes each 2×2 block of outputs from a
//! 4×4 block of inputs. Lavin & Gray ("Fast Algorithms for Convolutional Neural
//! Networks", CVPR 2016, §4.1) write it as
//!
//! `Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A`
//!
//! with
//!
//! ```text
//! Bᵀ = | 1  0 −1  0 |    G = | 1    0    0  |    Aᵀ = | 1  1  1  0 |
//!      | 0  1  1  0 |        | ½    ½    ½  |         | 0  1 −1 −1 |
//!      | 0 −1  1  0 |        | ½   −½    ½  |
//!      | 0  1  0 −1 |        | 0    0    1  |
//! ```
//!
//! Summed over the input channels, the element-wise products become 16 independent
//! matrix products `M_ξ = U_ξ · V_ξ`, `U_ξ` the transformed kernel `(O, C)` and `V_ξ` the
//! transformed input `(C, blocks)`: 16 multiply-adds per 2×2 outputs and channel pair
//! instead of 36, 2.25× less arithmetic; the transforms are additions and cost
//! `O(C·blocks + O·blocks)`, small beside the products' `O(O·C·blocks)` once a layer has
//! a few dozen channels.
//!
//! **Numbers.** The result is the same convolution summed in another order (and with
//! the kernel's transform rounded once, in `f64`, to `f32`): it differs from the im2col
//! product by rounding only — a few 1e-7 relative on the zoo's layers (tested against an
//! `f64` direct convolution and against the im2col path). The pretrained models' tests
//! against their PyTorch and TensorFlow originals hold with their tolerances unchanged.
//! [`crate::fused::set_winograd`]`(false)` restores the im2col sums (e.g. to reproduce
//! outputs of a build before this path).
//!
//! **F(4×4, 3×3)** (`F4`) computes each 4×4 block from a 6×6 input block: 36
//! multiply-adds per 16 outputs and channel pair instead of F(2×2)'s 64 (4× less than
//! im2col). Its transforms are generic code shared with F(2×2) (`Algo`, the tables as
//! constants), run over whole tiles at a time; its products sum the channels in chunks
//! of 16 (an AVX-512 kernel of its own, no packing; elsewhere one `gemm` product per
//! chunk). Even so its rounding error is 2–3× F(2×2)'s: a layer of 64 channels in the
//! fused tests reached 1.6e-5 relative against the composed ops, over the 1e-5 bar the
//! default is held to — hence opt-in. The pretrained models' parity in that mode
//! (measured 2026-12-07): vgg-mtt 1.28e-6 of TensorFlow's scores (F(2×2): 1.16e-6),
//! Won 2020 FCN 1.43e-6 (1.31e-6), all parity tests passing unchanged. Speed, one
//! thread, batch 16: short-chunk CNN forward 0.28 → 0.25 s, ResNet 0.40 → 0.36 s.
//!
//! **Non-finite input.** A NaN or infinity anywhere in a 4×4 input block makes all four
//! outputs of that block NaN (the transforms add and subtract it), where a direct
//! convolution reaches only the outputs whose 3×3 window holds it: NaN still reaches the
//! output (the fused path's contract), over up to one more row and column. mirkit's
//! audio and feature layers refuse non-finite samples before a model sees them.

use crate::fused::{Geo, Tile};
use crate::kernels::{gemm_into_on, MatRef};

/// Input channels (and output channels) from which the transform repays itself; below,
/// the transforms' additions are a visible share of the work and the products are thin.
const MIN_CHANNELS: usize = 16;

/// Whether `g` is a convolution this path computes: 3×3, stride 1, padding 1 on both
/// axes, at least [`MIN_CHANNELS`] input and output channels.
pub(crate) fn applies(g: &Geo) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.ph == 1
        && g.pw == 1
        && g.c >= MIN_CHANNELS
        && g.o >= MIN_CHANNELS
}

/// One of Winograd's minimal filtering algorithms F(m×m, 3×3): each `M × M` block of
/// outputs from an `N × N` block of inputs, `N = M + 2`, as
/// `Y = Aᵀ [ Σ_c (G g_c Gᵀ) ⊙ (Bᵀ d_c B) ] A`.
///
/// The transforms are applied as written, term by term in column order (the first
/// non-zero term, then each further one added), with separate multiplications and
/// additions, so they round the same with or without AVX2.
pub(crate) struct Algo<const M: usize, const N: usize> {
    /// `Bᵀ` (input transform).
    pub(crate) bt: [[f32; N]; N],
    /// `G` (kernel transform), in `f64`.
    pub(crate) g: [[f64; 3]; N],
    /// `Aᵀ` (output transform).
    pub(crate) at: [[f32; N]; M],
    /// Input channels summed in one product before the partial sum is added to the
    /// block's total (0: all at once). See [`F4`].
    pub(crate) chunk: usize,
}

/// F(2×2, 3×3), Lavin & Gray §4.1 (interpolation points 0, 1, −1, ∞).
pub(crate) const F2: Algo<2, 4> = Algo {
    bt: [
        [1.0, 0.0, -1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [0.0, -1.0, 1.0, 0.0],
        [0.0, 1.0, 0.0, -1.0],
    ],
    g: [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ],
    at: [[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]],
    chunk: 0,
};

/// F(4×4, 3×3) with the interpolation points 0, −1, 1, ½, −2, ∞ that Barabasz et al.
/// ("Error analysis and improving the accuracy of Winograd convolution for deep neural
/// networks", ACM TOMS 46(4), 2020, Table 3) found the most accurate for F(4, 3) — a
/// quarter to a half of the max error of Lavin & Gray's 0, ±1, ±2 in our `f32` check
/// (`tools/winograd_points.py`, 128 and 256 channels; chunked sums halve it again).
/// Built by the Toom–Cook construction from those points (`Aᵀ` columns `pᵢ^k`, `G` rows `pᵢ^k / Πⱼ≠ᵢ(pᵢ − pⱼ)`, `Bᵀ` solved from
/// `Σⱼ Aᵀᵢⱼ Gⱼₖ Bᵀⱼₗ = [l = i + k]`), rows of `Bᵀ` scaled by 2 where that makes them
/// integers (the matching rows of `G` by ½: exact in binary).
///
/// **Numbers.** 36 products per 4×4 outputs instead of F(2×2)'s 64, but the products
/// are summed over the input channels in a transformed domain where the values are
/// larger than the outputs (the output transform's coefficients reach 8): summing all
/// channels in one `f32` product made the error ~5× F(2×2)'s. The products are summed in
/// chunks of 16 channels, each chunk's sum added to the total — the same blocked
/// summation that keeps F(2×2)'s and im2col's errors small — which brings it back to
/// within ~2× of theirs (measured in the tests against an `f64` direct convolution).
pub(crate) const F4: Algo<4, 6> = Algo {
    bt: [
        [2.0, -3.0, -4.0, 3.0, 2.0, 0.0],
        [0.0, 2.0, -5.0, 1.0, 2.0, 0.0],
        [0.0, -2.0, 1.0, 5.0, 2.0, 0.0],
        [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
        [0.0, 1.0, -2.0, -1.0, 2.0, 0.0],
        [0.0, 2.0, -3.0, -4.0, 3.0, 2.0],
    ],
    g: [
        [0.5, 0.0, 0.0],
        [-1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0],
        [1.0 / 6.0, 1.0 / 6.0, 1.0 / 6.0],
        [-16.0 / 15.0, -8.0 / 15.0, -4.0 / 15.0],
        [1.0 / 30.0, -1.0 / 15.0, 2.0 / 15.0],
        [0.0, 0.0, 0.5],
    ],
    at: [
        [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
        [0.0, -1.0, 1.0, 0.5, -2.0, 0.0],
        [0.0, 1.0, 1.0, 0.25, 4.0, 0.0],
        [0.0, -1.0, 1.0, 0.125, -8.0, 1.0],
    ],
    chunk: 16,
};

/// An algorithm as a type, so that its tables are constants where its code is
/// compiled (the transforms' zero and ±1 terms then cost nothing).
pub(crate) trait Pick<const M: usize, const N: usize> {
    /// The algorithm.
    const ALG: Algo<M, N>;
}

/// [`F2`] as a type.
pub(crate) struct P2;
impl Pick<2, 4> for P2 {
    const ALG: Algo<2, 4> = F2;
}

/// [`F4`] as a type.
pub(crate) struct P4;
impl Pick<4, 6> for P4 {
    const ALG: Algo<4, 6> = F4;
}

/// `Σ_b coef[b]·v[b]` over the non-zero coefficients in order, starting from the first
/// term (`-0.0 + x` is `x` for every `x`, and multiplying by ±1 is exact, so the terms of
/// F(2×2)'s transforms are plain additions and subtractions).
#[inline(always)]
fn comb<const N: usize>(coef: &[f32; N], v: &[f32; N]) -> f32 {
    let mut acc = -0.0f32;
    for b in 0..N {
        if coef[b] == 1.0 {
            acc += v[b];
        } else if coef[b] == -1.0 {
            acc -= v[b];
        } else if coef[b] != 0.0 {
            acc += coef[b] * v[b];
        }
    }
    acc
}

/// Lanes of the transforms' inner loops (one AVX2 vector).
const L: usize = 8;

/// [`comb`] on `L` block columns at once (written lane-wise, which the compiler turns
/// into vector operations with the same per-lane roundings).
#[inline(always)]
fn comb_lanes<const N: usize>(coef: &[f32; N], v: &[[f32; L]; N]) -> [f32; L] {
    let mut acc = [-0.0f32; L];
    for b in 0..N {
        let c = coef[b];
        if c == 1.0 {
            for l in 0..L {
                acc[l] += v[b][l];
            }
        } else if c == -1.0 {
            for l in 0..L {
                acc[l] -= v[b][l];
            }
        } else if c != 0.0 {
            for l in 0..L {
                acc[l] += c * v[b][l];
            }
        }
    }
    acc
}

/// `outs[a][j] = Σ_b coef[a][b]·ins[b][j]` for every `j < len` (each out at least `len`
/// long): `L` columns at a time, the rest one by one.
#[inline(always)]
pub(crate) fn transform<const N: usize, const K: usize>(
    coef: &[[f32; N]; K],
    ins: [&[f32]; N],
    outs: &mut [&mut [f32]; K],
    len: usize,
) {
    let full = len - len % L;
    assert!(ins.iter().all(|i| i.len() >= len) && outs.iter().all(|o| o.len() >= len));
    let ip: [*const f32; N] = std::array::from_fn(|b| ins[b].as_ptr());
    let op: [*mut f32; K] = std::array::from_fn(|a| outs[a].as_mut_ptr());
    for j0 in (0..full).step_by(L) {
        // SAFETY: j0 + L ≤ len, and every input and output holds at least `len` floats
        // (asserted above); the outputs are distinct `&mut` slices, so no write aliases
        // an input or another output.
        let v: [[f32; L]; N] =
            std::array::from_fn(|b| unsafe { ip[b].add(j0).cast::<[f32; L]>().read_unaligned() });
        for a in 0..K {
            let r = comb_lanes(&coef[a], &v);
            // SAFETY: as above.
            unsafe { op[a].add(j0).cast::<[f32; L]>().write_unaligned(r) };
        }
    }
    for j in full..len {
        let v: [f32; N] = std::array::from_fn(|b| ins[b][j]);
        for a in 0..K {
            outs[a][j] = comb(&coef[a], &v);
        }
    }
}

/// `dst = a · b` for `a` `(o, c)` and `b` `(c, nb)` row-major, the sums over `c` in
/// chunks of `chunk` (0: all at once), each chunk summed from zero and added to the
/// total in order. With chunks and AVX-512F a kernel of its own (8 rows × 32 columns of
/// sums in registers, each chunk's added to `dst`: no packing); else (F(2×2)'s whole
/// sums, or no AVX-512F) one `gemm` product per chunk, accumulated. The kernel's rows are
/// split over `threads` threads (the same sums either way).
pub(crate) fn product(
    a: &[f32],
    b: &[f32],
    (o, c, nb): (usize, usize, usize),
    chunk: usize,
    dst: &mut [f32],
    threads: usize,
) {
    assert!(a.len() >= o * c && b.len() >= c * nb && dst.len() >= o * nb);
    #[cfg(target_arch = "x86_64")]
    if chunk > 0 && is_x86_feature_detected!("avx512f") {
        let per = if threads > 1 {
            o.div_ceil(threads).next_multiple_of(4)
        } else {
            o
        };
        let run = |(i, d): (usize, &mut [f32])| {
            let r0 = i * per;
            let ro = d.len() / nb;
            // SAFETY: the CPU has AVX-512F; rows r0..r0+ro of `a` (c each) and all of `b`
            // (asserted above) are read, `d` is those rows of `dst`.
            unsafe { product512::rows(&a[r0 * c..][..ro * c], b, (ro, c, nb), chunk, d) };
        };
        let dst = &mut dst[..o * nb];
        if threads > 1 && per < o {
            use rayon::prelude::*;
            dst.par_chunks_mut(per * nb).enumerate().for_each(run);
        } else {
            run((0, dst));
        }
        return;
    }
    product_gemm(a, b, (o, c, nb), chunk, dst, threads);
}

/// [`product`] by the `gemm` crate: one product per chunk of `c`, accumulated.
fn product_gemm(
    a: &[f32],
    b: &[f32],
    (o, c, nb): (usize, usize, usize),
    chunk: usize,
    dst: &mut [f32],
    threads: usize,
) {
    let chunk = if chunk == 0 { c } else { chunk };
    for c0 in (0..c).step_by(chunk) {
        let cc = chunk.min(c - c0);
        let am = MatRef::new(&a[c0..], o, cc, c, 1).expect("a chunk");
        let bm = MatRef::row_major(&b[c0 * nb..][..cc * nb], cc, nb).expect("b chunk");
        gemm_into_on(am, bm, &mut dst[..o * nb], c0 > 0, threads);
    }
}

#[cfg(target_arch = "x86_64")]
mod product512 {
    use std::arch::x86_64::*;

    /// Columns of one vector.
    const QB: usize = 16;

    /// All of `dst` (`(o, nb)`): blocks of 8 (then 4, 2, 1) rows × 2 vectors of
    /// columns (one for an odd last vector), the last vector masked where `nb` is not a
    /// multiple of 16.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn rows(
        a: &[f32],
        b: &[f32],
        (o, c, nb): (usize, usize, usize),
        chunk: usize,
        dst: &mut [f32],
    ) {
        let mut r0 = 0;
        while r0 < o {
            let rb = [8, 4, 2, 1]
                .into_iter()
                .find(|&r| r <= o - r0)
                .expect("a row left");
            let mut q = 0;
            while q < nb {
                let left = nb - q;
                let v = left.div_ceil(QB).min(2);
                let last = if left >= v * QB {
                    QB
                } else {
                    left - (v - 1) * QB
                };
                let args = (
                    a.as_ptr().add(r0 * c),
                    b.as_ptr().add(q),
                    dst.as_mut_ptr().add(r0 * nb + q),
                );
                match (rb, v) {
                    (8, 2) => block::<8, 2>(args, (c, nb), chunk, last),
                    (8, _) => block::<8, 1>(args, (c, nb), chunk, last),
                    (4, 2) => block::<4, 2>(args, (c, nb), chunk, last),
                    (4, _) => block::<4, 1>(args, (c, nb), chunk, last),
                    (2, 2) => block::<2, 2>(args, (c, nb), chunk, last),
                    (2, _) => block::<2, 1>(args, (c, nb), chunk, last),
                    (_, 2) => block::<1, 2>(args, (c, nb), chunk, last),
                    (_, _) => block::<1, 1>(args, (c, nb), chunk, last),
                }
                q += v * QB;
            }
            r0 += rb;
        }
    }

    /// `R` rows × `V` vectors of `dst` from `a`'s rows (`c` apart) and `b`'s columns
    /// (rows `nb` apart); the last vector holds `last` columns. Each chunk's sums start
    /// from zero in registers and are then stored (the first chunk) or added to `dst`.
    #[inline(always)]
    unsafe fn block<const R: usize, const V: usize>(
        (ap, bp, dp): (*const f32, *const f32, *mut f32),
        (c, nb): (usize, usize),
        chunk: usize,
        last: usize,
    ) {
        let tail: __mmask16 = if last == QB {
            0xffff
        } else {
            (1u16 << last) - 1
        };
        let masks: [__mmask16; V] = std::array::from_fn(|v| if v == V - 1 { tail } else { 0xffff });
        let mut c0 = 0;
        while c0 < c {
            let c1 = (c0 + chunk).min(c);
            let mut acc = [[_mm512_setzero_ps(); V]; R];
            for ci in c0..c1 {
                let bs: [__m512; V] = std::array::from_fn(|v| {
                    _mm512_maskz_loadu_ps(masks[v], bp.add(ci * nb + QB * v))
                });
                for (r, row) in acc.iter_mut().enumerate() {
                    let x = _mm512_set1_ps(*ap.add(r * c + ci));
                    for v in 0..V {
                        row[v] = _mm512_fmadd_ps(x, bs[v], row[v]);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (v, s) in row.iter().enumerate() {
                    let at = dp.add(r * nb + QB * v);
                    let t = if c0 == 0 {
                        *s
                    } else {
                        _mm512_add_ps(_mm512_maskz_loadu_ps(masks[v], at), *s)
                    };
                    _mm512_mask_storeu_ps(at, masks[v], t);
                }
            }
            c0 = c1;
        }
    }
}

/// `dst.copy_from_slice(src)` for the short runs of the transforms, inline rather than a
/// call to the C library's `memmove` per run of ~16 floats.
#[inline(always)]
pub(crate) fn copy_run(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len());
    let mut d = dst.chunks_exact_mut(L);
    let mut s = src.chunks_exact(L);
    for (d, s) in (&mut d).zip(&mut s) {
        let v: [f32; L] = s.try_into().expect("L floats");
        d.copy_from_slice(&v);
    }
    for (d, s) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *d = *s;
    }
}

/// Which of the algorithms a call uses (see [`crate::fused::Winograd`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    /// [`F2`].
    F2,
    /// [`F4`].
    F4,
}

impl Which {
    /// Transformed elements per block (`N²`).
    pub(crate) fn elems(self) -> usize {
        match self {
            Which::F2 => 16,
            Which::F4 => 36,
        }
    }
    /// Outputs per block side (`M`).
    pub(crate) fn m(self) -> usize {
        match self {
            Which::F2 => 2,
            Which::F4 => 4,
        }
    }
}

/// The transformed kernel `U = G g Gᵀ` of a `(o, c, 3, 3)` kernel (row-major), laid out
/// `(N², o, c)`: `U_ξ` (`ξ = N·a + b` for element `(a, b)` of the `N × N` transform) is
/// the contiguous `(o, c)` matrix starting at `ξ·o·c`. Computed in `f64` and rounded
/// once, eight input channels at a time in vector lanes, blocks of output channels in
/// parallel on the current rayon pool (the same bits on any thread count).
/// Done at every call (weights may change between calls), which [`worth_it`] weighs
/// against the savings.
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
    assert_eq!(kernel.len(), o * c * 9, "kernel (O, C, 3, 3)");
    let nn = N * N;
    let mut by_xi = vec![0f32; nn * o * c];
    if by_xi.is_empty() {
        return by_xi;
    }
    // Each task takes a block of output channels and writes its run of every `U_ξ`:
    // `pieces[block][ξ]` is that block's `(channels, c)` part of `U_ξ`.
    let mut pieces: Vec<Vec<&mut [f32]>> = (0..o.div_ceil(KERNEL_BLOCK))
        .map(|_| Vec::with_capacity(nn))
        .collect();
    for u in by_xi.chunks_exact_mut(o * c) {
        for (p, run) in pieces.iter_mut().zip(u.chunks_mut(KERNEL_BLOCK * c)) {
            p.push(run);
        }
    }
    let task = |(block, mut runs): (usize, Vec<&mut [f32]>)| {
        let first = block * KERNEL_BLOCK;
        let rows = runs[0].len() / c;
        for (oi, ko) in kernel[first * 9 * c..]
            .chunks_exact(9 * c)
            .take(rows)
            .enumerate()
        {
            // LANES input channels at a time, each step over the lanes (vectorises)
            for c0 in (0..c).step_by(LANES) {
                let w = LANES.min(c - c0);
                let mut g = [[0f64; LANES]; 9];
                for (l, gc) in ko[c0 * 9..][..w * 9].chunks_exact(9).enumerate() {
                    for (t, &v) in gc.iter().enumerate() {
                        g[t][l] = v as f64;
                    }
                }
                // G g (N × 3) and (G g) Gᵀ (N × N), each sum in order from its first
                // term (`-0.0 + x` is `x`: the order and bits of an iterator's `sum`)
                let gg: [[[f64; LANES]; 3]; N] = std::array::from_fn(|a| {
                    std::array::from_fn(|j| {
                        std::array::from_fn(|l| {
                            let mut s = -0.0;
                            for i in 0..3 {
                                s += alg.g[a][i] * g[3 * i + j][l];
                            }
                            s
                        })
                    })
                });
                for (a, r) in gg.iter().enumerate() {
                    for b in 0..N {
                        let v: [f64; LANES] = std::array::from_fn(|l| {
                            let mut s = -0.0;
                            for (rj, &gj) in r.iter().zip(&alg.g[b]) {
                                s += rj[l] * gj;
                            }
                            s
                        });
                        let dst = &mut runs[a * N + b][oi * c + c0..][..w];
                        for (d, &v) in dst.iter_mut().zip(&v) {
                            *d = v as f32;
                        }
                    }
                }
            }
        }
    };
    if rayon::current_num_threads() > 1 && o * c >= 4096 {
        use rayon::prelude::*;
        pieces.into_par_iter().enumerate().for_each(task);
    } else {
        pieces.into_iter().enumerate().for_each(task);
    }
    by_xi
}

/// Output channels per task of [`transform_kernel`].
const KERNEL_BLOCK: usize = 8;

/// Input channels per step of [`transform_kernel`]: one AVX-512 vector of `f64`.
const LANES: usize = 8;

/// Whether the transforms repay themselves for `n` items of geometry `g`: the kernel's
/// transform costs about as much as 64 output positions' worth of saved products per
/// kernel element, and a handful of blocks per item make the products too thin; below
/// ~1024 output positions per call (the short-chunk ResNet's 16 × 16 layers at batch 1)
/// im2col is faster.
pub(crate) fn worth_it(n: usize, g: &Geo) -> bool {
    let (oh, ow) = (g.h, g.w); // stride 1, padding 1: the output is the input's size
    n * oh * ow >= 1024
}

/// The algorithm to use for a layer of geometry `g` when `which` is asked for: a tile
/// never spans two items, so an item with fewer than 64 blocks makes thin products.
/// F(4×4, 3×3) falls back to F(2×2, 3×3) below 32 × 32 outputs per item (measured, one
/// thread, batch 16: 256 channels on 16 × 16, 36 vs 25 ms), F(2×2, 3×3) to im2col
/// below 16 × 16 (256 channels on 8 × 8: 13 vs 10 ms).
pub(crate) fn fit(which: Which, g: &Geo) -> Option<Which> {
    let blocks = |m: usize| g.h.div_ceil(m) * g.w.div_ceil(m);
    match which {
        Which::F4 if blocks(4) >= 64 => Some(Which::F4),
        _ if blocks(2) >= 64 => Some(Which::F2),
        _ => None,
    }
}

/// Tiles of output positions for this path: whole `M × M` blocks where the pooling
/// allows (rows and columns in multiples of both `M` and the pooling window), as many
/// blocks per tile as keep the transformed input and the products within `tile_floats`
/// each.
pub(crate) fn tiles(n: usize, g: &Geo, tile_floats: usize, which: Which) -> Vec<Tile> {
    let (rows, cols) = (g.poh * g.pool.0, g.pow * g.pool.1);
    let m = which.m();
    let lcm = |p: usize| {
        (1..=m)
            .map(|i| i * p)
            .find(|v| v.is_multiple_of(m))
            .unwrap_or(m * p)
    };
    let (ur, uc) = (lcm(g.pool.0), lcm(g.pool.1));
    // blocks are the products' vector dimension: a multiple of 16 (one AVX-512 vector)
    let blocks = (tile_floats / (which.elems() * g.c.max(g.o))).next_multiple_of(16);
    let positions = (blocks * m * m).max(ur * uc);
    crate::fused::tile_grid(n, (rows, cols), (ur, uc), positions)
}

/// Reused buffers of one worker.
#[derive(Default)]
pub(crate) struct Scratch {
    /// One padded input row.
    row: Vec<f32>,
    /// Every patch row split into its `M` phases: `phases[q][r·(nbc+1) + k]` is column
    /// `M·k + q` of patch row `r`.
    phases: Vec<f32>,
    /// `d·B` of every patch row: `rows_t[a][r·(nbc+1) + j]`.
    rows_t: Vec<f32>,
    /// The same regrouped by block: `by_block[a][β][bi·nbc + j]` is row `β` of block
    /// row `bi`.
    by_block: Vec<f32>,
    /// The transformed input, `N²` × `(C, blocks)`.
    v: Vec<f32>,
    /// The products, `N²` × `(O, blocks)`.
    m: Vec<f32>,
    /// `Aᵀ·M` of one output channel: `s[a'][b][block]`.
    s: Vec<f32>,
    /// `Aᵀ M A` of one output channel: `y[a'][q][block]`, before it is put in rows.
    y: Vec<f32>,
}

/// The convolution of one tile for each part: `prod` is `(Σ o_i, tr·tw)` row-major, part
/// after part, every element written. `xi` is the item's `(C, H, W)` input; `parts` are
/// the transformed kernels ([`transform_kernel`] with the same `which`) with their
/// output channels.
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
/// additions over contiguous rows of block columns, which the compiler vectorises 8 wide
/// here (4 without). No fused multiply-add is involved, so the bits are the same either
/// way.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
#[allow(clippy::too_many_arguments)]
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

#[inline(always)]
#[allow(clippy::too_many_arguments)]
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
    let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
    let (nbr, nbc) = (tr.div_ceil(M), tw.div_ceil(M));
    let nb = nbr * nbc;
    let nn = N * N;
    let c = g.c;
    // patch rows r0−1 .. r0+M·nbr+1 and columns c0−1 .. c0+M·nbc+1 (zero outside the
    // input), the columns padded to M·(nbc+1); column M·k + q of patch row r is
    // phases[q][r·stride + k], so column b of block column j is
    // phases[b mod M][r·stride + j + b div M]: one run over all patch rows at once
    let (prows, pcols) = (M * nbr + 2, M * (nbc + 1));
    let stride = nbc + 1;
    let plen = prows * stride;
    // one spare element per phase: the last row's unused column reads one past it
    s.phases.resize(M * (plen + 1), 0.0);
    s.rows_t.resize(N * plen, 0.0);
    s.by_block.resize(N * N * nb, 0.0);
    s.v.resize(nn * c * nb, 0.0);
    s.row.resize(pcols, 0.0);
    let x0 = t.c0 as isize - 1;
    let lo = ((-x0).max(0) as usize).min(pcols); // first patch column inside the input
    let hi = ((g.w as isize - x0).max(0) as usize).min(pcols).max(lo);
    for ch in 0..c {
        let plane = &xi[ch * g.h * g.w..][..g.h * g.w];
        for r in 0..prows {
            let y = (t.r0 + r) as isize - 1;
            let row = &mut s.row;
            if y < 0 || y >= g.h as isize {
                row.fill(0.0);
            } else {
                // the padded row (zeros outside the input)
                let src = &plane[y as usize * g.w..][..g.w];
                row[..lo].fill(0.0);
                if lo < hi {
                    let sx = (x0 + lo as isize) as usize;
                    row[lo..hi].copy_from_slice(&src[sx..sx + hi - lo]);
                }
                row[hi..].fill(0.0);
            }
            for (q, ph) in s.phases.chunks_exact_mut(plen + 1).enumerate() {
                for (d, p) in ph[r * stride..][..stride]
                    .iter_mut()
                    .zip(row.chunks_exact(M))
                {
                    *d = p[q];
                }
            }
        }
        // d·B along every patch row: rows_t[a] = Σ_b Bᵀ[a][b]·(column b of each block)
        {
            let cols: [&[f32]; N] =
                std::array::from_fn(|b| &s.phases[(b % M) * (plen + 1) + b / M..][..plen]);
            let mut outs = s.rows_t.chunks_exact_mut(plen);
            let mut outs: [&mut [f32]; N] = std::array::from_fn(|_| outs.next().expect("N rows"));
            transform(&alg.bt, cols, &mut outs, plen);
        }
        // regrouped by block row (rows M·bi .. M·bi+N of each), then Bᵀ·(d·B) down
        // each block's N rows, into V_ξ for ξ = N·α + a
        for a in 0..N {
            let rt = &s.rows_t[a * plen..][..plen];
            let bb = &mut s.by_block[a * N * nb..][..N * nb];
            for (beta, dst) in bb.chunks_exact_mut(nb).enumerate() {
                for (bi, d) in dst.chunks_exact_mut(nbc).enumerate() {
                    copy_run(d, &rt[(M * bi + beta) * stride..][..nbc]);
                }
            }
            let ins: [&[f32]; N] = std::array::from_fn(|beta| &bb[beta * nb..][..nb]);
            // V_ξ rows for ξ = N·α + a, α = 0..N: N·c·nb apart
            let mut outs = s.v[(a * c + ch) * nb..].chunks_mut(N * c * nb);
            let mut outs: [&mut [f32]; N] =
                std::array::from_fn(|_| outs.next().expect("N rows of V"));
            transform(&alg.bt, ins, &mut outs, nb);
        }
    }
    let m = tr * tw;
    s.s.resize(M * N * nb, 0.0);
    s.y.resize(M * M * nb, 0.0);
    let mut rest: &mut [f32] = prod;
    for &(u, o) in parts {
        let (part, tail) = rest.split_at_mut(o * m);
        rest = tail;
        // the products M_ξ = U_ξ · V_ξ, (o, blocks) each, summed over chunks of input
        // channels when the algorithm asks for it (see F4)
        s.m.resize(nn * o * nb, 0.0);
        for k in 0..nn {
            let dst = &mut s.m[k * o * nb..][..o * nb];
            let uk = &u[k * o * c..][..o * c];
            let vk = &s.v[k * c * nb..][..c * nb];
            product(uk, vk, (o, c, nb), alg.chunk, dst, threads);
        }
        // output transform Aᵀ M A, every block of one output channel at a time
        for (oc, dst) in part.chunks_exact_mut(m).enumerate() {
            let mm = &s.m;
            // Aᵀ M: s[a'][b] = Σ_a Aᵀ[a'][a]·M[a][b]
            for b in 0..N {
                let col: [&[f32]; N] =
                    std::array::from_fn(|a| &mm[((a * N + b) * o + oc) * nb..][..nb]);
                let mut outs = s.s[b * nb..].chunks_mut(N * nb);
                let mut outs: [&mut [f32]; M] =
                    std::array::from_fn(|_| outs.next().expect("M rows of s"));
                transform(&alg.at, col, &mut outs, nb);
            }
            // (Aᵀ M) A: y[a'][q] = Σ_b Aᵀ[q][b]·s[a'][b]
            for ap in 0..M {
                let q: [&[f32]; N] = std::array::from_fn(|b| &s.s[(ap * N + b) * nb..][..nb]);
                let mut outs = s.y[ap * M * nb..].chunks_mut(nb);
                let mut outs: [&mut [f32]; M] =
                    std::array::from_fn(|_| outs.next().expect("M rows of y"));
                transform(&alg.at, q, &mut outs, nb);
            }
            // into the tile's rows: output (M·bi + a', M·j + q) is y[a'][q][bi·nbc + j]
            let whole = tw - tw % M;
            for bi in 0..nbr {
                for ap in 0..M {
                    let r = M * bi + ap;
                    if r >= tr {
                        break;
                    }
                    let row = &mut dst[r * tw..][..tw];
                    for q in 0..M {
                        let y = &s.y[(ap * M + q) * nb + bi * nbc..][..nbc];
                        for (p, &y) in row.chunks_exact_mut(M).zip(y) {
                            p[q] = y;
                        }
                        if q < tw - whole {
                            row[whole + q] = y[nbc - 1];
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The direct 3×3 convolution (padding 1) in f64.
    fn direct(x: &[f32], (c, h, w): (usize, usize, usize), k: &[f32], o: usize) -> Vec<f64> {
        let mut y = vec![0f64; o * h * w];
        for oc in 0..o {
            for r in 0..h {
                for q in 0..w {
                    let mut acc = 0f64;
                    for ch in 0..c {
                        for i in 0..3 {
                            for j in 0..3 {
                                let (yy, xx) =
                                    (r as isize + i as isize - 1, q as isize + j as isize - 1);
                                if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                                    continue;
                                }
                                acc += x[(ch * h + yy as usize) * w + xx as usize] as f64
                                    * k[((oc * c + ch) * 3 + i) * 3 + j] as f64;
                            }
                        }
                    }
                    y[(oc * h + r) * w + q] = acc;
                }
            }
        }
        y
    }

    /// A 3×3, stride-1, padding-1 geometry over `(c, h, w)` with `o` outputs, pooled.
    pub(crate) fn geo(c: usize, h: usize, w: usize, o: usize, pool: (usize, usize)) -> Geo {
        Geo {
            c,
            h,
            w,
            o,
            kh: 3,
            kw: 3,
            stride: 1,
            ph: 1,
            pw: 1,
            poh: h / pool.0,
            pow: w / pool.1,
            pool,
        }
    }

    /// The kernel transform written plainly, one (output, input) channel pair at a
    /// time: what [`transform_kernel`] computes, in the same order.
    fn transform_kernel_plain<const M: usize, const N: usize>(
        alg: &Algo<M, N>,
        kernel: &[f32],
        o: usize,
        c: usize,
    ) -> Vec<f32> {
        let mut u = vec![0f32; N * N * o * c];
        for oc in 0..o {
            for ci in 0..c {
                let g = &kernel[(oc * c + ci) * 9..][..9];
                let gg: [[f64; 3]; N] = std::array::from_fn(|a| {
                    std::array::from_fn(|j| (0..3).map(|i| alg.g[a][i] * g[3 * i + j] as f64).sum())
                });
                for (a, r) in gg.iter().enumerate() {
                    for b in 0..N {
                        let v: f64 = (0..3).map(|j| r[j] * alg.g[b][j]).sum();
                        u[((a * N + b) * o + oc) * c + ci] = v as f32;
                    }
                }
            }
        }
        u
    }

    #[test]
    fn kernel_transform_keeps_the_plain_sums_bits() {
        let mut rng = mirkit_core::Rng::new(11);
        // channel counts off the lane and block widths; signed zeros and exact values
        for &(o, c) in &[(1usize, 1usize), (3, 7), (9, 17), (24, 40), (130, 33)] {
            let k: Vec<f32> = (0..o * c * 9)
                .map(|i| match i % 11 {
                    0 => -0.0,
                    1 => 0.0,
                    2 => 1.5,
                    _ => rng.normal() as f32,
                })
                .collect();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let (u2, u4) = pool.install(|| {
                    (
                        transform_kernel(&k, o, c, Which::F2),
                        transform_kernel(&k, o, c, Which::F4),
                    )
                });
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert_eq!(
                    bits(&u2),
                    bits(&transform_kernel_plain(&F2, &k, o, c)),
                    "F2 {o}x{c}"
                );
                assert_eq!(
                    bits(&u4),
                    bits(&transform_kernel_plain(&F4, &k, o, c)),
                    "F4 {o}x{c}"
                );
            }
        }
    }

    #[test]
    fn tiles_match_a_direct_f64_convolution() {
        let mut rng = mirkit_core::Rng::new(7);
        // odd sizes (part-used blocks at the edges), several tile budgets, two parts,
        // more channels than one chunk of F(4×4)'s sums
        for &(c, h, w, o, budget, which) in &[
            (16usize, 7usize, 9usize, 16usize, 1usize << 20, Which::F2),
            (20, 12, 10, 24, 16 * 24 * 6, Which::F2),
            (17, 5, 33, 18, 16 * 18 * 3, Which::F2),
            (16, 7, 9, 16, 1 << 20, Which::F4),
            (20, 29, 30, 24, 36 * 24 * 16, Which::F4),
            (37, 5, 33, 18, 36 * 37 * 3, Which::F4),
            (64, 18, 23, 32, 36 * 64 * 16, Which::F4),
        ] {
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.normal() as f32).collect();
            let k: Vec<f32> = (0..o * c * 9).map(|_| rng.normal() as f32 * 0.2).collect();
            let k2: Vec<f32> = (0..o * c * 9).map(|_| rng.normal() as f32 * 0.2).collect();
            let g = geo(c, h, w, o, (1, 1));
            let (u, u2) = (
                transform_kernel(&k, o, c, which),
                transform_kernel(&k2, o, c, which),
            );
            let want = direct(&x, (c, h, w), &k, o);
            let want2 = direct(&x, (c, h, w), &k2, o);
            let tiles = tiles(1, &g, budget, which);
            assert!(
                budget > 1 << 19 || tiles.len() > 1,
                "{budget}: {} tiles",
                tiles.len()
            );
            let mut covered = vec![0u8; h * w];
            let mut s = Scratch::default();
            for t in &tiles {
                let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
                let mut prod = vec![f32::NAN; 2 * o * tr * tw];
                tile_product(&x, &g, t, &[(&u, o), (&u2, o)], &mut s, &mut prod, 1, which);
                for (part, want) in [(0, &want), (1, &want2)] {
                    for oc in 0..o {
                        for r in 0..tr {
                            for q in 0..tw {
                                let got = prod[((part * o + oc) * tr + r) * tw + q] as f64;
                                let want = want[(oc * h + t.r0 + r) * w + t.c0 + q];
                                // a sum of 9·C products of unit-scale terms: f32
                                // rounding of the transforms and the sums, ~1e-6
                                assert!(
                                    (got - want).abs() < 2e-5 * (1.0 + want.abs()),
                                    "{c} {h} {w}: {got} vs {want}"
                                );
                            }
                        }
                    }
                }
                for r in t.r0..t.r1 {
                    for q in t.c0..t.c1 {
                        covered[r * w + q] += 1;
                    }
                }
            }
            assert!(
                covered.iter().all(|&v| v == 1),
                "tiles partition the output"
            );
        }
    }

    /// The chunked products — the AVX-512 kernel where the CPU has it, and the `gemm`
    /// fallback — against `f64` sums: row blocks of 8, 4 and 1, a masked last vector,
    /// a short last chunk; the kernel's rows split over threads give the same bits.
    #[test]
    fn chunked_products_match_f64() {
        let mut rng = mirkit_core::Rng::new(5);
        let (o, c, nb) = (13usize, 37usize, 45usize);
        let a: Vec<f32> = (0..o * c).map(|_| rng.normal() as f32).collect();
        let b: Vec<f32> = (0..c * nb).map(|_| rng.normal() as f32).collect();
        let want: Vec<f64> = (0..o * nb)
            .map(|i| {
                let (r, q) = (i / nb, i % nb);
                (0..c)
                    .map(|k| a[r * c + k] as f64 * b[k * nb + q] as f64)
                    .sum()
            })
            .collect();
        let close = |got: &[f32], what: &str| {
            for (g, w) in got.iter().zip(&want) {
                // 37 unit-scale products in f32: a few 1e-6 at most
                assert!(
                    (*g as f64 - w).abs() < 2e-5 * (1.0 + w.abs()),
                    "{what}: {g} vs {w}"
                );
            }
        };
        for chunk in [0, 16] {
            let mut got = vec![f32::NAN; o * nb];
            product_gemm(&a, &b, (o, c, nb), chunk, &mut got, 1);
            close(&got, "gemm");
            let mut got = vec![f32::NAN; o * nb];
            product(&a, &b, (o, c, nb), chunk, &mut got, 1);
            close(&got, "product");
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let mut two = vec![f32::NAN; o * nb];
            pool.install(|| product(&a, &b, (o, c, nb), chunk, &mut two, 2));
            assert_eq!(
                got.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                two.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                "chunk {chunk}: threads change the bits"
            );
        }
    }

    #[test]
    fn small_planes_take_the_smaller_algorithm() {
        let g = |h: usize, w: usize| geo(64, h, w, 64, (1, 1));
        assert_eq!(fit(Which::F4, &g(64, 64)), Some(Which::F4));
        assert_eq!(fit(Which::F4, &g(29, 40)), Some(Which::F4)); // 8 × 10 blocks
        assert_eq!(fit(Which::F4, &g(16, 16)), Some(Which::F2));
        assert_eq!(fit(Which::F2, &g(64, 64)), Some(Which::F2));
        assert_eq!(fit(Which::F2, &g(16, 16)), Some(Which::F2));
        assert_eq!(fit(Which::F4, &g(8, 8)), None);
        assert_eq!(fit(Which::F2, &g(8, 8)), None);
    }

    #[test]
    fn tiles_hold_whole_pooling_windows_and_blocks() {
        let g = geo(64, 30, 50, 64, (3, 5));
        for which in [Which::F2, Which::F4] {
            let tiles = tiles(2, &g, which.elems() * 64 * 20, which);
            assert!(tiles.len() > 2, "{which:?}: several tiles per item");
            for t in tiles {
                assert_eq!((t.r1 - t.r0) % 3, 0);
                assert_eq!((t.c1 - t.c0) % 5, 0);
                if t.r1 < 30 {
                    assert_eq!((t.r1 - t.r0) % which.m(), 0);
                }
                if t.c1 < 50 {
                    assert_eq!((t.c1 - t.c0) % which.m(), 0);
                }
            }
        }
    }

    #[test]
    fn only_stride_one_same_padded_3x3_with_channels() {
        let mut g = geo(32, 8, 8, 32, (1, 1));
        assert!(applies(&g));
        g.stride = 2;
        assert!(!applies(&g));
        g.stride = 1;
        g.c = 1;
        assert!(!applies(&g));
        g.c = 32;
        g.pw = 0;
        assert!(!applies(&g));
    }
}
