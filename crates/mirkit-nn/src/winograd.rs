//! Winograd's minimal filtering F(2×2, 3×3) for the fused eval path's stride-1 3×3
//! convolutions.
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

/// The transformed kernel `U = G g Gᵀ` of a `(o, c, 3, 3)` kernel (row-major), laid out
/// `(o, 16, c)`: `U_ξ` (`ξ = 4a + b` for element `(a, b)` of the 4×4 transform) is the
/// `(o, c)` matrix with row stride `16·c` starting at `ξ·c` ([`u_matrix`]). Computed in
/// `f64` and rounded once, output channels in parallel on the current rayon pool. Done
/// at every call (weights may change between calls); ~30 operations per 3×3 kernel,
/// which [`worth_it`] weighs against the savings.
pub(crate) fn transform_kernel(kernel: &[f32], o: usize, c: usize) -> Vec<f32> {
    assert_eq!(kernel.len(), o * c * 9, "kernel (O, C, 3, 3)");
    let mut u = vec![0f32; 16 * o * c];
    let row = |(uo, ko): (&mut [f32], &[f32])| {
        for (ci, g) in ko.chunks_exact(9).enumerate() {
            let g: [f64; 9] = std::array::from_fn(|i| g[i] as f64);
            // G g: rows g0, (g0 + g1 + g2)/2, (g0 − g1 + g2)/2, g2 of the kernel's rows
            let mut gg = [[0f64; 3]; 4];
            for j in 0..3 {
                let (r0, r1, r2) = (g[j], g[3 + j], g[6 + j]);
                gg[0][j] = r0;
                gg[1][j] = 0.5 * (r0 + r1 + r2);
                gg[2][j] = 0.5 * (r0 - r1 + r2);
                gg[3][j] = r2;
            }
            // (G g) Gᵀ: the same combination of each row's three columns
            for (a, r) in gg.iter().enumerate() {
                let [c0, c1, c2] = *r;
                let out = [c0, 0.5 * (c0 + c1 + c2), 0.5 * (c0 - c1 + c2), c2];
                for (b, v) in out.into_iter().enumerate() {
                    uo[(a * 4 + b) * c + ci] = v as f32;
                }
            }
        }
    };
    if rayon::current_num_threads() > 1 && o * c >= 4096 {
        use rayon::prelude::*;
        u.par_chunks_exact_mut(16 * c)
            .zip(kernel.par_chunks_exact(9 * c))
            .for_each(row);
    } else {
        u.chunks_exact_mut(16 * c)
            .zip(kernel.chunks_exact(9 * c))
            .for_each(row);
    }
    u
}

/// `U_ξ` of a kernel transformed by [`transform_kernel`], as an `(o, c)` view.
pub(crate) fn u_matrix(u: &[f32], o: usize, c: usize, xi: usize) -> MatRef<'_> {
    MatRef::new(&u[xi * c..], o, c, 16 * c, 1).expect("U_ξ inside the transformed kernel")
}

/// Whether the transforms repay themselves for `n` items of geometry `g`: the kernel's
/// transform costs about as much as 64 output positions' worth of saved products per
/// kernel element, and a handful of blocks per item make the products too thin; below
/// ~1024 output positions per call (the short-chunk ResNet's 16 × 16 layers at batch 1)
/// im2col is faster.
pub(crate) fn worth_it(n: usize, g: &Geo) -> bool {
    let (oh, ow) = (g.h, g.w); // stride 1, padding 1: the output is the input's size
    n * oh * ow >= 1024
}

/// Tiles of output positions for this path: whole 2×2 blocks where the pooling allows
/// (rows and columns in multiples of both 2 and the pooling window), as many blocks per
/// tile as keep the transformed input and the 16 products within `tile_floats` each.
pub(crate) fn tiles(n: usize, g: &Geo, tile_floats: usize) -> Vec<Tile> {
    let (rows, cols) = (g.poh * g.pool.0, g.pow * g.pool.1);
    let lcm2 = |p: usize| if p.is_multiple_of(2) { p } else { 2 * p };
    let (ur, uc) = (lcm2(g.pool.0), lcm2(g.pool.1));
    // 2×2 blocks per tile: 16 values per channel and block in each buffer
    let blocks = (tile_floats / (16 * g.c.max(g.o))).max(1);
    let positions = (blocks * 4).max(ur * uc);
    crate::fused::tile_grid(n, (rows, cols), (ur, uc), positions)
}

/// Reused buffers of one worker.
#[derive(Default)]
pub(crate) struct Scratch {
    /// One padded input row, and the same split into its even and odd columns.
    row: Vec<f32>,
    even: Vec<f32>,
    odd: Vec<f32>,
    /// `d·B` of every patch row: 4 rows of block columns each.
    rows_t: Vec<f32>,
    /// The transformed input, 16 × `(C, blocks)`.
    v: Vec<f32>,
    /// The 16 products, 16 × `(O, blocks)`.
    m: Vec<f32>,
    /// `Aᵀ·M` of one block row: 2 × 4 rows of block columns.
    s: Vec<f32>,
}

/// The convolution of one tile for each part: `prod` is `(Σ o_i, tr·tw)` row-major, part
/// after part, every element written. `xi` is the item's `(C, H, W)` input; `parts` are
/// the transformed kernels ([`transform_kernel`]) with their output channels.
pub(crate) fn tile_product(
    xi: &[f32],
    g: &Geo,
    t: &Tile,
    parts: &[(&[f32], usize)],
    s: &mut Scratch,
    prod: &mut [f32],
    threads: usize,
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { tile_product_avx2(xi, g, t, parts, s, prod, threads) };
        return;
    }
    tile_product_any(xi, g, t, parts, s, prod, threads);
}

/// [`tile_product_any`] compiled for AVX2: the transforms are additions and subtractions
/// over contiguous rows, which the compiler vectorises 8 wide here (4 without). No fused
/// multiply-add is involved, so the bits are the same either way.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn tile_product_avx2(
    xi: &[f32],
    g: &Geo,
    t: &Tile,
    parts: &[(&[f32], usize)],
    s: &mut Scratch,
    prod: &mut [f32],
    threads: usize,
) {
    tile_product_any(xi, g, t, parts, s, prod, threads);
}

#[inline(always)]
fn tile_product_any(
    xi: &[f32],
    g: &Geo,
    t: &Tile,
    parts: &[(&[f32], usize)],
    s: &mut Scratch,
    prod: &mut [f32],
    threads: usize,
) {
    let (tr, tw) = (t.r1 - t.r0, t.c1 - t.c0);
    let (nbr, nbc) = (tr.div_ceil(2), tw.div_ceil(2));
    let nb = nbr * nbc;
    let c = g.c;
    // patch rows r0−1 .. r0+2·nbr+1 and columns c0−1 .. c0+2·nbc+1 (zero outside the
    // input); column 2k of the patch is even[k], column 2k+1 odd[k]
    let (prows, pcols) = (2 * nbr + 2, 2 * nbc + 2);
    s.even.resize(nbc + 1, 0.0);
    s.odd.resize(nbc + 1, 0.0);
    s.rows_t.resize(prows * 4 * nbc, 0.0);
    s.v.resize(16 * c * nb, 0.0);
    let x0 = t.c0 as isize - 1;
    for ch in 0..c {
        let plane = &xi[ch * g.h * g.w..][..g.h * g.w];
        // d·B along each patch row: t0 = d0 − d2, t1 = d1 + d2, t2 = d2 − d1, t3 = d1 − d3
        // for the block starting at patch column 2j (d0 = even[j], d1 = odd[j],
        // d2 = even[j+1], d3 = odd[j+1])
        for (pi, trow) in s.rows_t.chunks_exact_mut(4 * nbc).enumerate() {
            let y = (t.r0 + pi) as isize - 1;
            if y < 0 || y >= g.h as isize {
                trow.fill(0.0);
                continue;
            }
            // the padded row (zeros outside the input), then split into even and odd
            // columns
            let src = &plane[y as usize * g.w..][..g.w];
            let lo = (-x0).max(0) as usize; // first patch column inside the input
            let hi = ((g.w as isize - x0).max(0) as usize).min(pcols);
            s.row.resize(pcols, 0.0);
            s.row[..lo.min(pcols)].fill(0.0);
            if lo < hi {
                let sx = (x0 + lo as isize) as usize;
                s.row[lo..hi].copy_from_slice(&src[sx..sx + hi - lo]);
            }
            s.row[hi.max(lo)..].fill(0.0);
            for ((p, e), o) in s.row.chunks_exact(2).zip(&mut s.even).zip(&mut s.odd) {
                *e = p[0];
                *o = p[1];
            }
            let (e0, e1) = (&s.even[..nbc], &s.even[1..]);
            let (o0, o1) = (&s.odd[..nbc], &s.odd[1..]);
            let (t0, rest) = trow.split_at_mut(nbc);
            let (t1, rest) = rest.split_at_mut(nbc);
            let (t2, t3) = rest.split_at_mut(nbc);
            for j in 0..nbc {
                t0[j] = e0[j] - e1[j];
                t1[j] = o0[j] + e1[j];
                t2[j] = e1[j] - o0[j];
                t3[j] = o0[j] - o1[j];
            }
        }
        // Bᵀ·(d·B) down each block's four rows: r0 − r2, r1 + r2, r2 − r1, r1 − r3
        for bi in 0..nbr {
            let four = &s.rows_t[2 * bi * 4 * nbc..][..4 * 4 * nbc];
            for b in 0..4 {
                let r = |k: usize| &four[(k * 4 + b) * nbc..][..nbc];
                let (r0, r1, r2, r3) = (r(0), r(1), r(2), r(3));
                let at = |a: usize| ((a * 4 + b) * c + ch) * nb + bi * nbc;
                let v = &mut s.v;
                let d = &mut v[at(0)..][..nbc];
                for j in 0..nbc {
                    d[j] = r0[j] - r2[j];
                }
                let d = &mut v[at(1)..][..nbc];
                for j in 0..nbc {
                    d[j] = r1[j] + r2[j];
                }
                let d = &mut v[at(2)..][..nbc];
                for j in 0..nbc {
                    d[j] = r2[j] - r1[j];
                }
                let d = &mut v[at(3)..][..nbc];
                for j in 0..nbc {
                    d[j] = r1[j] - r3[j];
                }
            }
        }
    }
    let m = tr * tw;
    let mut rest: &mut [f32] = prod;
    for &(u, o) in parts {
        let (part, tail) = rest.split_at_mut(o * m);
        rest = tail;
        // the 16 products M_ξ = U_ξ · V_ξ, (o, blocks) each
        s.m.resize(16 * o * nb, 0.0);
        for k in 0..16 {
            let a = u_matrix(u, o, c, k);
            let b = MatRef::row_major(&s.v[k * c * nb..][..c * nb], c, nb).expect("V_ξ");
            gemm_into_on(a, b, &mut s.m[k * o * nb..][..o * nb], false, threads);
        }
        // output transform Aᵀ M A: rows of Aᵀ are (1, 1, 1, 0) and (0, 1, −1, −1)
        s.s.resize(8 * nbc, 0.0);
        let mm = &s.m;
        for (oc, dst) in part.chunks_exact_mut(m).enumerate() {
            for bi in 0..nbr {
                let mq = |a: usize, b: usize| &mm[((a * 4 + b) * o + oc) * nb + bi * nbc..][..nbc];
                // Aᵀ M, for each column b: s0 = m0 + m1 + m2, s1 = m1 − m2 − m3
                let (s0, s1) = s.s.split_at_mut(4 * nbc);
                for b in 0..4 {
                    let (m0, m1, m2, m3) = (mq(0, b), mq(1, b), mq(2, b), mq(3, b));
                    let d0 = &mut s0[b * nbc..][..nbc];
                    for j in 0..nbc {
                        d0[j] = m0[j] + m1[j] + m2[j];
                    }
                    let d1 = &mut s1[b * nbc..][..nbc];
                    for j in 0..nbc {
                        d1[j] = m1[j] - m2[j] - m3[j];
                    }
                }
                // (Aᵀ M) A: output columns 2j and 2j+1 of the block's two rows
                for (dr, sr) in [&*s0, &*s1].into_iter().enumerate() {
                    let r = 2 * bi + dr;
                    if r >= tr {
                        break;
                    }
                    let row = &mut dst[r * tw..][..tw];
                    let (q0, q1, q2, q3) = (
                        &sr[..nbc],
                        &sr[nbc..2 * nbc],
                        &sr[2 * nbc..3 * nbc],
                        &sr[3 * nbc..4 * nbc],
                    );
                    let mut pairs = row.chunks_exact_mut(2);
                    for (j, p) in (&mut pairs).enumerate() {
                        p[0] = q0[j] + q1[j] + q2[j];
                        p[1] = q1[j] - q2[j] - q3[j];
                    }
                    if let [last] = pairs.into_remainder() {
                        let j = nbc - 1;
                        *last = q0[j] + q1[j] + q2[j];
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
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

    fn geo(c: usize, h: usize, w: usize, o: usize, pool: (usize, usize)) -> Geo {
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

    #[test]
    fn tiles_match_a_direct_f64_convolution() {
        let mut rng = mirkit_core::Rng::new(7);
        // odd sizes (half-used blocks at the edges), several tile budgets, two parts
        for &(c, h, w, o, budget) in &[
            (16usize, 7usize, 9usize, 16usize, 1usize << 20),
            (20, 12, 10, 24, 16 * 24 * 6),
            (17, 5, 33, 18, 16 * 18 * 3),
        ] {
            let x: Vec<f32> = (0..c * h * w).map(|_| rng.normal() as f32).collect();
            let k: Vec<f32> = (0..o * c * 9).map(|_| rng.normal() as f32 * 0.2).collect();
            let k2: Vec<f32> = (0..o * c * 9).map(|_| rng.normal() as f32 * 0.2).collect();
            let g = geo(c, h, w, o, (1, 1));
            let (u, u2) = (transform_kernel(&k, o, c), transform_kernel(&k2, o, c));
            let want = direct(&x, (c, h, w), &k, o);
            let want2 = direct(&x, (c, h, w), &k2, o);
            let tiles = tiles(1, &g, budget);
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
                tile_product(&x, &g, t, &[(&u, o), (&u2, o)], &mut s, &mut prod, 1);
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

    #[test]
    fn tiles_hold_whole_pooling_windows_and_blocks() {
        let g = geo(64, 30, 50, 64, (3, 5));
        for t in tiles(2, &g, 16 * 64 * 20) {
            assert_eq!((t.r1 - t.r0) % 3, 0);
            assert_eq!((t.c1 - t.c0) % 5, 0);
            if t.r1 < 30 {
                assert_eq!((t.r1 - t.r0) % 2, 0);
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
