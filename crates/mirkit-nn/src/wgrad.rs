//! The kernel gradient of a stride-1 3×3 convolution (padding 1) by Winograd's minimal
//! filtering F(3×3, 2×2), for the training backward ([`crate::convop::backward`]).
//!
//! The kernel gradient is a correlation of the padded input with the output gradient:
//! `dW[o, c, i, j] = Σ_{p,q} dY[o, p, q] · X̄[c, p + i, q + j]`. Cut the output gradient
//! into 2×2 blocks: each block `g` (2×2, the "filter") meets a 4×4 block `d` of the
//! padded input, and adds a 3×3 correlation to `dW` — F(3×3, 2×2), the transpose of the
//! F(2×2, 3×3) of [`crate::winograd`] with the same matrices in other roles
//! (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", CVPR 2016, §4;
//! checked in `numpy` against the direct sums before this was written):
//!
//! `dW_block = Gᵀ [ (A g Aᵀ) ⊙ (Bᵀ d B) ] G`
//!
//! with `Bᵀ`, `G`, `Aᵀ` as in [`crate::winograd`] (`A` is 4×2, `G` 4×3). Summed over
//! the blocks of every item, the element-wise products become 16 matrix products
//! `M_ξ = Σ_blocks U_ξ V_ξᵀ`, `U_ξ` the transformed output gradient `(O, blocks)` and
//! `V_ξ` the transformed input `(C, blocks)`: 16 multiply-adds per block and channel
//! pair instead of im2col's 36 (2.25× less arithmetic), with the blocks as the products'
//! long inner dimension. The output transform `Gᵀ M G` runs once per call, on the summed
//! `M` (it is linear). No im2col matrix and no copy of the output gradient is made.
//!
//! **Numbers.** The transforms add and subtract (and halve, exactly) unit-scale values;
//! the sums over blocks run in `f32` inside the products as im2col's sums over positions
//! do, and the output transform is done in `f64`. Tested against an `f64` direct sum
//! (relative error ~1e-6, the im2col path's order of magnitude) and, through
//! [`crate::convop`]'s tests, against the composed ops and central differences.
//! **Order.** The blocks are visited in a fixed order (item, block row, block column) in
//! chunks of whole block rows; each chunk's products are added to the sums in chunk
//! order. The caller's groups of items and the `gemm` thread split (over blocks of
//! `M`) do not change any sum's order: the same bits on any thread count.

use crate::fused::Geo;
use crate::kernels::{gemm_into_on, MatRef};

/// Whether [`sums`] computes the kernel gradient of `g` for `n` items: a stride-1 3×3
/// convolution with padding 1 on both axes, no pooling, an output the input's size, at
/// least 16 channels each way (below, the transforms are a visible share of thin
/// products), and at least 4096 output positions in all (measured, two threads: 256
/// channels on 8 × 8 at batch 16 or 16 × 16 at batch 4–8 — 1024–2048 positions — were
/// level with im2col or up to 7 % slower, the fixed cost of the 16 `(O, C)` sums
/// weighing on few blocks; 16 × 16 at batch 16 and larger planes gained).
pub(crate) fn applies(n: usize, g: &Geo) -> bool {
    crate::winograd::applies(g)
        && g.pool == (1, 1)
        && (g.poh, g.pow) == (g.h, g.w)
        && n * g.h * g.w >= 4096
}

/// Blocks per chunk: the chunk's transformed input and output gradient
/// (`16 · (C + O) · blocks` values) kept within about 1 MB, so that the products read
/// them from the core's cache (measured, two threads, batch 16: a 128-channel 64 × 64
/// layer's backward 165 → 130 ms with 64-block chunks, 140 ms with 256-block chunks;
/// 256 channels on 16 × 16 best at 32 blocks, slower at 16).
fn chunk_blocks(g: &Geo) -> usize {
    (1 << 14) / (g.c + g.o).max(1)
}

/// The transformed sums `M_ξ` `(16, O, C)` (ξ major, each `(O, C)` row-major) of items
/// `items` of the input `x` `(N, C, H, W)` and the output gradient `dy` `(N, O, H, W)`;
/// [`finish`] turns (the sum over groups of) them into the kernel gradient. The products
/// split over `threads` threads (the same bits on any count).
pub(crate) fn sums(
    x: &[f32],
    dy: &[f32],
    items: std::ops::Range<usize>,
    g: &Geo,
    threads: usize,
) -> Vec<f32> {
    sums_in_chunks(x, dy, items, g, threads, chunk_blocks(g))
}

/// [`sums`] in chunks of about `per_chunk` blocks (whole block rows, at least one).
fn sums_in_chunks(
    x: &[f32],
    dy: &[f32],
    items: std::ops::Range<usize>,
    g: &Geo,
    threads: usize,
    per_chunk: usize,
) -> Vec<f32> {
    let (c, o, h, w) = (g.c, g.o, g.h, g.w);
    let (bh, bw) = (h.div_ceil(2), w.div_ceil(2));
    let rows_per = (per_chunk / bw).max(1);
    let block_rows: Vec<(usize, usize)> =
        items.flat_map(|i| (0..bh).map(move |r| (i, r))).collect();
    let mut m = Vec::with_capacity(16 * o * c);
    m.resize(16 * o * c, 0f32); // overwritten by the first chunk's products
    let (mut u, mut v) = (Vec::new(), Vec::new());
    let mut s = Scratch::default();
    for (ci, chunk) in block_rows.chunks(rows_per).enumerate() {
        let nt = chunk.len() * bw;
        // every element is written by the transforms below
        u.resize(16 * o * nt, 0f32);
        v.resize(16 * c * nt, 0f32);
        transform_chunk((x, dy), g, chunk, &mut s, (&mut u, &mut v));
        add_products((&u, &v), (o, c, nt), &mut m, ci > 0, threads);
    }
    m
}

/// One chunk's products `M_ξ (+)= U_ξ · V_ξᵀ` for every ξ: `u` `(ξs, O, nt)` and `v`
/// `(ξs, C, nt)` the chunk's transformed output gradient and input (`nt` blocks, the
/// products' inner dimension), `m` `(ξs, O, C)` the sums, added to when `accumulate`
/// (else overwritten). Also `crate::wino1d`'s 1-D kernel gradient's.
pub(crate) fn add_products(
    (u, v): (&[f32], &[f32]),
    (o, c, nt): (usize, usize, usize),
    m: &mut [f32],
    accumulate: bool,
    threads: usize,
) {
    for (xi, mx) in m.chunks_exact_mut(o * c).enumerate() {
        let a = MatRef::row_major(&u[xi * o * nt..][..o * nt], o, nt).expect("U_ξ");
        // V_ξ (C, blocks) read transposed
        let b = MatRef::new(&v[xi * c * nt..][..c * nt], nt, c, 1, nt).expect("V_ξᵀ");
        gemm_into_on(a, b, mx, accumulate, threads);
    }
}

/// The kernel gradient `(O, C, 3, 3)` from the transformed sums `m` of [`sums`]:
/// `Gᵀ M_{o,c} G` per channel pair, in `f64`.
pub(crate) fn finish(m: &[f32], o: usize, c: usize) -> Vec<f32> {
    assert_eq!(m.len(), 16 * o * c, "transformed sums");
    // G (4×3): rows (1, 0, 0), (½, ½, ½), (½, −½, ½), (0, 0, 1)
    const G: [[f64; 3]; 4] = [
        [1.0, 0.0, 0.0],
        [0.5, 0.5, 0.5],
        [0.5, -0.5, 0.5],
        [0.0, 0.0, 1.0],
    ];
    let oc = o * c;
    let mut dw = vec![0f32; oc * 9];
    for (p, out) in dw.chunks_exact_mut(9).enumerate() {
        let mv = |x: usize, y: usize| m[(x * 4 + y) * oc + p] as f64;
        // t = M G (4×3), then Gᵀ t (3×3)
        let t: [[f64; 3]; 4] = std::array::from_fn(|x| {
            std::array::from_fn(|j| (0..4).map(|y| mv(x, y) * G[y][j]).sum())
        });
        for i in 0..3 {
            for j in 0..3 {
                out[i * 3 + j] = (0..4).map(|x| G[x][i] * t[x][j]).sum::<f64>() as f32;
            }
        }
    }
    dw
}

/// Buffers of the transforms: the even and odd columns of a padded row, and the row
/// transforms of one block row.
#[derive(Default)]
struct Scratch {
    even: Vec<f32>,
    odd: Vec<f32>,
    e: Vec<f32>,
}

/// The transforms of one chunk's block rows `(item, block row)`: `V` (`v`, `(16, C, nt)`)
/// from the input, `U` (`u`, `(16, O, nt)`) from the output gradient. Compiled for AVX2
/// where the CPU has it (additions and subtractions only, each value on its own: the
/// same bits either way).
fn transform_chunk(
    (x, dy): (&[f32], &[f32]),
    g: &Geo,
    chunk: &[(usize, usize)],
    s: &mut Scratch,
    (u, v): (&mut [f32], &mut [f32]),
) {
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        unsafe { transform_chunk_avx2((x, dy), g, chunk, s, (u, v)) };
        return;
    }
    transform_chunk_any((x, dy), g, chunk, s, (u, v));
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn transform_chunk_avx2(
    (x, dy): (&[f32], &[f32]),
    g: &Geo,
    chunk: &[(usize, usize)],
    s: &mut Scratch,
    (u, v): (&mut [f32], &mut [f32]),
) {
    transform_chunk_any((x, dy), g, chunk, s, (u, v));
}

#[inline(always)]
fn transform_chunk_any(
    (x, dy): (&[f32], &[f32]),
    g: &Geo,
    chunk: &[(usize, usize)],
    s: &mut Scratch,
    (u, v): (&mut [f32], &mut [f32]),
) {
    let (c, o, h, w) = (g.c, g.o, g.h, g.w);
    let bw = w.div_ceil(2);
    let nt = chunk.len() * bw;
    for (k, &(item, br)) in chunk.iter().enumerate() {
        let t0 = k * bw;
        let xi = &x[item * c * h * w..][..c * h * w];
        for (ch, plane) in xi.chunks_exact(h * w).enumerate() {
            input_rows(plane, (h, w), br, s, v, (ch * nt + t0, c * nt));
        }
        let dyi = &dy[item * o * h * w..][..o * h * w];
        for (oc, plane) in dyi.chunks_exact(h * w).enumerate() {
            grad_rows(plane, (h, w), br, s, u, (oc * nt + t0, o * nt));
        }
    }
}

/// `d[i] = f(a[i], b[i])`.
#[inline(always)]
fn zip2(d: &mut [f32], a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) {
    for ((d, &a), &b) in d.iter_mut().zip(a).zip(b) {
        *d = f(a, b);
    }
}

/// `Bᵀ d B` of every 4×4 input block of block row `br` of one channel plane (`h × w`),
/// block columns `0..⌈w/2⌉`: value ξ = 4·a + b of block `t` to `dst[off + ξ·stride + t]`.
/// Block `(br, t)` covers padded rows `2br .. 2br + 4` and columns `2t .. 2t + 4`, i.e.
/// input rows and columns from `2br − 1` and `2t − 1` (zero outside the plane).
#[inline(always)]
fn input_rows(
    plane: &[f32],
    (h, w): (usize, usize),
    br: usize,
    s: &mut Scratch,
    dst: &mut [f32],
    (off, stride): (usize, usize),
) {
    let bw = w.div_ceil(2);
    s.e.resize(16 * bw, 0.0);
    s.even.resize(bw + 1, 0.0);
    s.odd.resize(bw + 1, 0.0);
    for a in 0..4 {
        let r = (2 * br + a) as isize - 1;
        let (ev, od) = (&mut s.even[..bw + 1], &mut s.odd[..bw + 1]);
        if r < 0 || r >= h as isize {
            ev.fill(0.0);
            od.fill(0.0);
        } else {
            // padded column 2k is input column 2k − 1 (even[k]), padded column 2k + 1
            // input column 2k (odd[k])
            let row = &plane[r as usize * w..][..w];
            let pairs = w / 2;
            ev[0] = 0.0;
            for ((o, e), p) in od.iter_mut().zip(&mut ev[1..]).zip(row.chunks_exact(2)) {
                *o = p[0];
                *e = p[1];
            }
            if w % 2 == 1 {
                od[pairs] = row[w - 1];
            }
            ev[pairs + 1..].fill(0.0);
            od[w.div_ceil(2)..].fill(0.0);
        }
        // d·B along the row: block t reads v₀..v₃ = even[t], odd[t], even[t+1], odd[t+1]
        let ea = &mut s.e[a * 4 * bw..][..4 * bw];
        let (e0, rest) = ea.split_at_mut(bw);
        let (e1, rest) = rest.split_at_mut(bw);
        let (e2, e3) = rest.split_at_mut(bw);
        let (ev0, ev1) = (&s.even[..bw], &s.even[1..bw + 1]);
        let (od0, od1) = (&s.odd[..bw], &s.odd[1..bw + 1]);
        zip2(e0, ev0, ev1, |v0, v2| v0 - v2);
        zip2(e1, od0, ev1, |v1, v2| v1 + v2);
        zip2(e2, ev1, od0, |v2, v1| v2 - v1);
        zip2(e3, od0, od1, |v1, v3| v1 - v3);
    }
    // Bᵀ· down the rows, for each column index b
    for b in 0..4 {
        let row = |a: usize| &s.e[(a * 4 + b) * bw..][..bw];
        let (r0, r1, r2, r3) = (row(0), row(1), row(2), row(3));
        let at = |a: usize| off + (a * 4 + b) * stride;
        zip2(&mut dst[at(0)..][..bw], r0, r2, |p, q| p - q);
        zip2(&mut dst[at(1)..][..bw], r1, r2, |p, q| p + q);
        zip2(&mut dst[at(2)..][..bw], r2, r1, |p, q| p - q);
        zip2(&mut dst[at(3)..][..bw], r1, r3, |p, q| p - q);
    }
}

/// `A g Aᵀ` of every 2×2 block of block row `br` of one output-gradient plane (`h × w`;
/// rows `2br, 2br + 1`, zero past the plane's edge): value ξ = 4·a + b of block `t` to
/// `dst[off + ξ·stride + t]`. `A` (4×2) has rows (1, 0), (1, 1), (1, −1), (0, −1).
#[inline(always)]
fn grad_rows(
    plane: &[f32],
    (h, w): (usize, usize),
    br: usize,
    s: &mut Scratch,
    dst: &mut [f32],
    (off, stride): (usize, usize),
) {
    let bw = w.div_ceil(2);
    s.e.resize(16 * bw, 0.0);
    s.even.resize(bw + 1, 0.0);
    s.odd.resize(bw + 1, 0.0);
    for a in 0..2 {
        let r = 2 * br + a;
        let (ev, od) = (&mut s.even[..bw], &mut s.odd[..bw]);
        if r >= h {
            ev.fill(0.0);
            od.fill(0.0);
        } else {
            let row = &plane[r * w..][..w];
            let pairs = w / 2;
            for ((e, o), p) in ev.iter_mut().zip(od.iter_mut()).zip(row.chunks_exact(2)) {
                *e = p[0];
                *o = p[1];
            }
            if w % 2 == 1 {
                ev[pairs] = row[w - 1];
                od[pairs] = 0.0;
            }
        }
        // g·Aᵀ along the row: (g₀, g₀ + g₁, g₀ − g₁, −g₁)
        let ea = &mut s.e[a * 4 * bw..][..4 * bw];
        let (e0, rest) = ea.split_at_mut(bw);
        let (e1, rest) = rest.split_at_mut(bw);
        let (e2, e3) = rest.split_at_mut(bw);
        let (ev, od) = (&s.even[..bw], &s.odd[..bw]);
        e0.copy_from_slice(ev);
        zip2(e1, ev, od, |g0, g1| g0 + g1);
        zip2(e2, ev, od, |g0, g1| g0 - g1);
        zip2(e3, ev, od, |_, g1| -g1);
    }
    // A· down the two rows
    for b in 0..4 {
        let (r0, r1) = (&s.e[b * bw..][..bw], &s.e[(4 + b) * bw..][..bw]);
        let at = |a: usize| off + (a * 4 + b) * stride;
        dst[at(0)..][..bw].copy_from_slice(r0);
        zip2(&mut dst[at(1)..][..bw], r0, r1, |p, q| p + q);
        zip2(&mut dst[at(2)..][..bw], r0, r1, |p, q| p - q);
        zip2(&mut dst[at(3)..][..bw], r0, r1, |_, q| -q);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `dW[o, c, i, j] = Σ dY[o, p, q] · X̄[c, p + i, q + j]` in `f64`.
    fn direct(
        x: &[f32],
        dy: &[f32],
        n: usize,
        (c, h, w, o): (usize, usize, usize, usize),
    ) -> Vec<f64> {
        let mut dw = vec![0f64; o * c * 9];
        for item in 0..n {
            for oc in 0..o {
                for ch in 0..c {
                    for i in 0..3 {
                        for j in 0..3 {
                            let mut acc = 0f64;
                            for p in 0..h {
                                for q in 0..w {
                                    let (r, s) = (p + i, q + j);
                                    if r < 1 || s < 1 || r > h || s > w {
                                        continue;
                                    }
                                    acc += dy[((item * o + oc) * h + p) * w + q] as f64
                                        * x[((item * c + ch) * h + r - 1) * w + s - 1] as f64;
                                }
                            }
                            dw[((oc * c + ch) * 3 + i) * 3 + j] += acc;
                        }
                    }
                }
            }
        }
        dw
    }

    fn geo(c: usize, h: usize, w: usize, o: usize) -> Geo {
        crate::winograd::tests::geo(c, h, w, o, (1, 1))
    }

    /// Against `f64` direct sums: odd and even plane sizes (half-used blocks at the right
    /// and bottom edges), one block column, several chunks per call, items in groups
    /// (the groups' sums added before the output transform); the thread split gives the
    /// same bits.
    #[test]
    fn kernel_gradient_matches_direct_f64_sums() {
        let mut rng = mirkit_core::Rng::new(11);
        for &(n, c, h, w, o) in &[
            (3usize, 16usize, 7usize, 9usize, 16usize),
            (2, 20, 12, 10, 17),
            (4, 16, 5, 2, 24),
            (2, 17, 33, 31, 16),
            (5, 24, 1, 8, 16),
        ] {
            let x: Vec<f32> = (0..n * c * h * w).map(|_| rng.normal() as f32).collect();
            let dy: Vec<f32> = (0..n * o * h * w).map(|_| rng.normal() as f32).collect();
            let g = geo(c, h, w, o);
            let want = direct(&x, &dy, n, (c, h, w, o));
            // two groups of items, summed in order as convop::backward does
            // (chunks of 8 blocks: several per call)
            let split = (n / 2).max(1);
            let mut m = sums_in_chunks(&x, &dy, 0..split, &g, 1, 8);
            if split < n {
                let m2 = sums(&x, &dy, split..n, &g, 1);
                m.iter_mut().zip(&m2).for_each(|(a, b)| *a += b);
            }
            let got = finish(&m, o, c);
            let scale = want.iter().fold(0f64, |a, v| a.max(v.abs()));
            for (i, (&gv, &wv)) in got.iter().zip(&want).enumerate() {
                // sums of n·h·w unit-scale products in f32: ~1e-6 of the largest
                assert!(
                    (gv as f64 - wv).abs() < 2e-6 * (1.0 + scale),
                    "{n} {c} {h} {w} {o} at {i}: {gv} vs {wv} (scale {scale})"
                );
            }
            let m3 = sums_in_chunks(&x, &dy, 0..split, &g, 3, 8);
            let m1 = sums_in_chunks(&x, &dy, 0..split, &g, 1, 8);
            assert!(
                m3.iter().zip(&m1).all(|(a, b)| a.to_bits() == b.to_bits()),
                "same bits on 1 and 3 threads"
            );
        }
    }

    #[test]
    fn chunks_hold_whole_block_rows() {
        // 256 + 256 channels: 32 blocks per chunk, one block row of a 64-wide plane
        let g = geo(256, 64, 64, 256);
        assert_eq!(chunk_blocks(&g), 32);
        assert!(applies(1, &g));
        assert!(!applies(1, &geo(256, 16, 16, 256)), "256 positions");
        assert!(!applies(8, &geo(256, 16, 16, 256)), "2048 positions");
        assert!(applies(16, &geo(256, 16, 16, 256)));
        assert!(!applies(16, &geo(8, 16, 16, 256)), "8 channels");
    }
}
