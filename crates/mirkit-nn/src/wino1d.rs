//! Winograd's minimal filtering F(2, 3) for the fused eval path's 1-D convolutions of
//! kernel 3, stride 1, padding 1 — the blocks of SampleCNN, SampleCNN+SE and ReSE-2,
//! nearly all of their arithmetic.
//!
//! Each pair of outputs `y₀, y₁` comes from four inputs `d₀ … d₃` (Lavin & Gray, "Fast
//! Algorithms for Convolutional Neural Networks", CVPR 2016, §4: the 1-D F(2, 3) that
//! their F(2×2, 3×3) nests) as `y = Aᵀ [ Σ_c (G g_c) ⊙ (Bᵀ d_c) ]` with the tables of
//! [`crate::winograd::F2`]:
//!
//! ```text
//! Bᵀ d = (d₀ − d₂, d₁ + d₂, d₂ − d₁, d₁ − d₃)
//! G g  = (g₀, (g₀ + g₁ + g₂)/2, (g₀ − g₁ + g₂)/2, g₂)
//! y₀ = M₀ + M₁ + M₂,  y₁ = M₁ − M₂ − M₃
//! ```
//!
//! Summed over the input channels, the four element-wise products are four matrix
//! products `M_ξ = U_ξ · V_ξ` (`U_ξ` the transformed kernel `(O, C)`, `V_ξ` the
//! transformed input `(C, blocks)`): 4 multiply-adds per pair of outputs and channel pair
//! instead of im2col's 6, 1.5× less arithmetic; the transforms are additions over
//! `O(C·blocks + O·blocks)` values.
//!
//! **Numbers.** The same convolution summed in another order, the kernel's transform
//! computed in `f64` and rounded once: the transformed inputs are sums of two inputs and
//! the outputs sums of three products, so the rounding error is that of the 2-D
//! F(2×2, 3×3)'s one axis — within the fused path's 1e-5 relative bar against the
//! composed ops, tested here against an `f64` direct convolution. `fused::set_winograd
//! (Winograd::Off)` restores the tap products' sums.
//!
//! **Non-finite input.** A NaN or infinity in a block's four inputs reaches both of its
//! outputs (one more output than a direct convolution reaches at a block's edge); NaN
//! still reaches the output, the fused path's contract.

use crate::fused::{Geo, Tile};
use crate::winograd::{product, transform, F2};

/// Input and output channels from which the path is used (the tap products' own floor:
/// thinner layers are a few percent of any zoo model's work).
const MIN_CHANNELS: usize = 32;

/// Output positions per call from which the transforms repay themselves (measured with
/// ReSE-2's and SampleCNN's layers; below, the late layers at batch 1, the tap products
/// are as fast).
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

/// Whether the transforms repay themselves for `n` items of geometry `g` (the kernel's
/// transform is done at every call).
pub(crate) fn worth_it(n: usize, g: &Geo) -> bool {
    n * g.w >= MIN_POSITIONS
}

/// The transformed kernel `U = G g` of a `(o, c, 3)` kernel (row-major), laid out
/// `(4, o, c)`: `U_ξ` is the contiguous `(o, c)` matrix at `ξ·o·c`. Each value is
/// computed in `f64` from the kernel's three taps and rounded once.
pub(crate) fn transform_kernel(kernel: &[f32], o: usize, c: usize) -> Vec<f32> {
    assert_eq!(kernel.len(), o * c * 3, "kernel (O, C, 3)");
    let oc = o * c;
    let mut u = vec![0f32; 4 * oc];
    for (i, k) in kernel.chunks_exact(3).enumerate() {
        for (a, gr) in F2.g.iter().enumerate() {
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

/// Tiles of output positions for this path: whole pairs where the pooling allows
/// (columns in multiples of both 2 and the pooling window), as many pairs per tile as
/// keep the transformed input and the products within `tile_floats` each.
pub(crate) fn tiles(n: usize, g: &Geo, tile_floats: usize) -> Vec<Tile> {
    let cols = g.pow * g.pool.1;
    let p = g.pool.1.max(1);
    let unit = if p.is_multiple_of(2) { p } else { 2 * p };
    // pairs are the products' vector dimension: a multiple of 16 (one AVX-512 vector)
    let pairs = (tile_floats / (4 * g.c.max(g.o))).next_multiple_of(16);
    crate::fused::tile_grid(n, (1, cols), (1, unit), (2 * pairs).max(unit))
}

/// Reused buffers of one worker.
#[derive(Default)]
pub(crate) struct Scratch {
    /// One channel's padded input run, where the tile reaches past the input's ends.
    row: Vec<f32>,
    /// Even inputs of the tile's run: `even[b]` is `d₀` of pair `b` (and `d₂` of `b − 1`).
    even: Vec<f32>,
    /// Odd inputs: `odd[b]` is `d₁` of pair `b` (and `d₃` of `b − 1`).
    odd: Vec<f32>,
    /// The transformed input, 4 × `(C, pairs)`.
    v: Vec<f32>,
    /// The products, 4 × `(O, pairs)`.
    m: Vec<f32>,
    /// One output channel's `y₀` and `y₁` of every pair.
    y: Vec<f32>,
}

/// The convolution of one tile for each part: `prod` is `(Σ o_i, tile columns)`
/// row-major, part after part, every element written. `xi` is the item's `(C, W)` input;
/// `parts` are the transformed kernels ([`transform_kernel`]) with their output channels.
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

/// [`tile_product_any`] compiled for AVX2: the transforms are additions over contiguous
/// runs of pairs, vectorised 8 wide here (4 without); no fused multiply-add is involved,
/// so the bits are the same either way.
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
    let m = t.c1 - t.c0;
    let nb = m.div_ceil(2);
    let c = g.c;
    // the run of inputs c0 − 1 .. c0 + 2·nb + 1 (zero outside the input): pair b reads
    // its positions 2b .. 2b + 4
    let run = 2 * nb + 2;
    let inside = t.c0 >= 1 && t.c0 - 1 + run <= g.w;
    s.even.resize(nb + 1, 0.0);
    s.odd.resize(nb + 1, 0.0);
    s.v.resize(4 * c * nb, 0.0);
    if !inside {
        s.row.resize(run, 0.0);
    }
    let x0 = t.c0 as isize - 1;
    let lo = ((-x0).max(0) as usize).min(run); // first position of the run inside the input
    let hi = ((g.w as isize - x0).max(0) as usize).min(run).max(lo);
    for ch in 0..c {
        let plane = &xi[ch * g.w..][..g.w];
        let src: &[f32] = if inside {
            &plane[t.c0 - 1..][..run]
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
        for ((e, o), p) in s
            .even
            .iter_mut()
            .zip(s.odd.iter_mut())
            .zip(src.chunks_exact(2))
        {
            *e = p[0];
            *o = p[1];
        }
        let ins: [&[f32]; 4] = [&s.even[..nb], &s.odd[..nb], &s.even[1..], &s.odd[1..]];
        // V_ξ's row `ch`, ξ = 0..4: c·nb apart
        let mut outs = s.v[ch * nb..].chunks_mut(c * nb);
        let mut outs: [&mut [f32]; 4] = std::array::from_fn(|_| outs.next().expect("4 rows"));
        transform(&F2.bt, ins, &mut outs, nb);
    }
    s.y.resize(2 * nb, 0.0);
    let mut rest: &mut [f32] = prod;
    for &(u, o) in parts {
        let (part, tail) = rest.split_at_mut(o * m);
        rest = tail;
        s.m.resize(4 * o * nb, 0.0);
        for xi_ in 0..4 {
            product(
                &u[xi_ * o * c..][..o * c],
                &s.v[xi_ * c * nb..][..c * nb],
                (o, c, nb),
                0,
                &mut s.m[xi_ * o * nb..][..o * nb],
                threads,
            );
        }
        for (oc, dst) in part.chunks_exact_mut(m).enumerate() {
            let ms: [&[f32]; 4] = std::array::from_fn(|k| &s.m[(k * o + oc) * nb..][..nb]);
            let (y0, y1) = s.y.split_at_mut(nb);
            transform(&F2.at, ms, &mut [y0, y1], nb);
            let (y0, y1) = s.y.split_at(nb);
            for ((p, &a), &b) in dst.chunks_exact_mut(2).zip(y0).zip(y1) {
                p[0] = a;
                p[1] = b;
            }
            if m % 2 == 1 {
                dst[m - 1] = y0[nb - 1];
            }
        }
    }
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

    /// Every tile of several geometries (odd and even widths, tiles inside the input and
    /// at both ends, one tile of an odd number of columns, two parts) against the f64
    /// direct convolution: within a few f32 roundings of the sums' magnitude.
    #[test]
    fn tiles_match_direct_f64_sums() {
        let mut rng = mirkit_core::Rng::new(31);
        for (c, w, o, pool, tile_floats, o2) in [
            (32, 101, 40, 1, 4096, 0),
            (48, 64, 32, 1, 1 << 18, 32),
            (64, 300, 33, 3, 8192, 0),
            (32, 7, 32, 1, 4096, 40),
            (40, 250, 64, 2, 6000, 0),
        ] {
            let g = geo(c, w, o.max(o2), pool);
            let x: Vec<f32> = (0..c * w).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            let ks: Vec<(Vec<f32>, usize)> = [o, o2]
                .into_iter()
                .filter(|&n| n > 0)
                .map(|n| {
                    (
                        (0..n * c * 3)
                            .map(|_| rng.range(-0.5, 0.5) as f32)
                            .collect(),
                        n,
                    )
                })
                .collect();
            let us: Vec<Vec<f32>> = ks.iter().map(|(k, n)| transform_kernel(k, *n, c)).collect();
            let parts: Vec<(&[f32], usize)> =
                us.iter().zip(&ks).map(|(u, (_, n))| (&u[..], *n)).collect();
            let total: usize = ks.iter().map(|k| k.1).sum();
            let want: Vec<Vec<f64>> = ks.iter().map(|(k, n)| direct(&x, (c, w), k, *n)).collect();
            let tiles = tiles(1, &g, tile_floats);
            assert!(tiles.iter().all(|t| t.c0 % 2 == 0 && t.c0 % pool == 0));
            let mut s = Scratch::default();
            let mut seen = vec![false; w];
            for t in &tiles {
                let m = t.c1 - t.c0;
                let mut prod = vec![f32::NAN; total * m];
                tile_product(&x, &g, t, &parts, &mut s, &mut prod, 1);
                let mut row0 = 0;
                for (want, (_, n)) in want.iter().zip(&ks) {
                    for oc in 0..*n {
                        for q in 0..m {
                            let got = prod[(row0 + oc) * m + q] as f64;
                            let exp = want[oc * w + t.c0 + q];
                            // c·3 products of magnitude ≤ 0.5, rounded a few times
                            let tol = 1e-6 * (c as f64 * 3.0 * 0.5);
                            assert!(
                                (got - exp).abs() <= tol,
                                "{got} vs {exp} at {oc}, {} ({c}, {w}, {o}, {o2})",
                                t.c0 + q
                            );
                        }
                    }
                    row0 += n;
                }
                seen[t.c0..t.c1].iter_mut().for_each(|v| *v = true);
            }
            assert!(seen.iter().all(|&v| v), "the tiles cover every output");
            // one tile where the budget holds the whole width, several where not
            let one = 2 * (tile_floats / (4 * c.max(o.max(o2)))).next_multiple_of(16) >= w;
            assert_eq!(tiles.len() == 1, one, "tiles for ({c}, {w})");
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
