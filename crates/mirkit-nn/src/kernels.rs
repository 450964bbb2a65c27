//! Slice-level kernels for fused inference operations.
//!
//! Candle composes operations through whole tensors: every intermediate is allocated
//! (zero-filled), written to memory and read back. Where a model reduces a large
//! intermediate right away (a convolution followed by a max over one axis), doing the
//! product in cache-sized pieces and reducing each piece at once avoids that traffic.
//! These are the pieces: a matrix product on strided views of plain slices (the `gemm`
//! crate that Candle itself uses, single-threaded so callers parallelise over pieces;
//! strided outputs too), a column-wise max/min, a 1-D convolution of many rows reduced
//! to its max and min over the rows without writing the convolution out
//! ([`rows_conv_max_min`], musicnn's temporal filters), and a direct valid 1-D
//! convolution for layers whose products are too small to repay packing
//! ([`conv1d_valid_into`]).

/// A read-only strided matrix view: element `(i, j)` is `data[i·rs + j·cs]`.
///
/// Strides may overlap (`rs = cs = 1` views a signal as the Toeplitz matrix of its
/// sliding windows, i.e. im2col without a copy).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// A view, or `None` when an element would lie outside `data` or a side is 0.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: usize, cs: usize) -> Option<Self> {
        if rows == 0 || cols == 0 {
            return None;
        }
        let last = (rows - 1)
            .checked_mul(rs)?
            .checked_add((cols - 1).checked_mul(cs)?)?;
        (last < data.len()).then_some(Self {
            data,
            rows,
            cols,
            rs,
            cs,
        })
    }
    /// A contiguous row-major `(rows, cols)` view.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Option<Self> {
        Self::new(data, rows, cols, cols, 1)
    }
    /// Rows.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// Columns.
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Whether the CPU has AVX2 and FMA (the standard library caches the answer): the
/// condition of the element-wise loops' `#[target_feature(enable = "avx2,fma")]`
/// variants, which the compiler turns into 256-bit vector code instead of the
/// baseline's 128-bit. Those variants run the same operations in the same order (Rust
/// does not contract `a·b + c` into an FMA by itself), so the results do not depend on
/// which one runs.
#[cfg(target_arch = "x86_64")]
#[inline]
pub(crate) fn avx2_fma() -> bool {
    is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
}

/// `c = a · b` (or `c += a · b` with `accumulate`), `c` row-major `(a.rows, b.cols)`, on
/// this thread.
///
/// # Panics
/// If the inner dimensions differ or `c` has the wrong length.
pub fn gemm_into(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool) {
    gemm_into_on(a, b, c, accumulate, 1);
}

/// [`gemm_into`] split over `threads` threads of the current rayon pool (1: this thread).
/// The split is over blocks of `c`, each element's sum keeps its order, so the bits do
/// not depend on `threads`.
///
/// # Panics
/// As [`gemm_into`].
pub fn gemm_into_on(a: MatRef<'_>, b: MatRef<'_>, c: &mut [f32], accumulate: bool, threads: usize) {
    assert_eq!(c.len(), a.rows * b.cols, "output length");
    gemm_into_strided(a, b, c, (b.cols, 1), accumulate, threads);
}

/// [`gemm_into_on`] into a strided view of `c`: element `(i, j)` of the product goes to
/// `c[i·rs + j·cs]` for `(rs, cs) = c_strides` (a block of columns of a wider matrix, a
/// transposed layout, every `cs`-th element of rows); other elements are left alone.
///
/// # Panics
/// If the inner dimensions differ, two elements of the view would coincide (`cs = 0`,
/// or `rs < cols·cs` for more than one row), or `c` is too short.
pub fn gemm_into_strided(
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    c_strides: (usize, usize),
    accumulate: bool,
    threads: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    let (rs, cs) = c_strides;
    assert_eq!(b.rows, k, "inner dimensions");
    // distinct elements: each row's elements (cs ≥ 1 apart) end before the next row
    // starts, or each column's before the next column starts
    let row_wise = (cs >= 1 || n == 1) && (m == 1 || rs > (n - 1) * cs);
    let column_wise = (rs >= 1 || m == 1) && (n == 1 || cs > (m - 1) * rs);
    assert!(row_wise || column_wise, "output strides");
    assert!(c.len() > (m - 1) * rs + (n - 1) * cs, "output length");
    // SAFETY: `MatRef::new` checked that every element of both views lies inside its
    // slice (and that no side is 0); the last element written, `(m−1)·rs + (n−1)·cs`,
    // is inside `c`, and the strides make every written element distinct.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            cs as isize,
            rs as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            if threads > 1 {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            },
        )
    }
}

/// Max and min down the columns of a row-major `(rows, n)` matrix, written to `hi` and
/// `lo` (length `n`). Row by row, element-wise, so it vectorises. NaN-free input is
/// assumed (a NaN never replaces a value here).
///
/// # Panics
/// If `x.len() != rows·n`, `rows == 0`, or `hi`/`lo` are not `n` long.
pub fn column_max_min(x: &[f32], n: usize, hi: &mut [f32], lo: &mut [f32]) {
    assert!(n > 0 && !x.is_empty() && x.len().is_multiple_of(n), "shape");
    assert!(hi.len() == n && lo.len() == n, "output length");
    hi.copy_from_slice(&x[..n]);
    lo.copy_from_slice(&x[..n]);
    for row in x.chunks_exact(n).skip(1) {
        fold_max_min(row, hi, lo);
    }
}

/// Running element-wise max/min: `hi = max(hi, x)`, `lo = min(lo, x)`.
pub fn fold_max_min(x: &[f32], hi: &mut [f32], lo: &mut [f32]) {
    for ((h, l), &v) in hi.iter_mut().zip(lo.iter_mut()).zip(x) {
        *h = if v > *h { v } else { *h };
        *l = if v < *l { v } else { *l };
    }
}

/// For each item of `x` `(n, rows, width)` (rows already padded as the convolution
/// pads them), the valid 1-D correlation of every row with each of the `o` kernels `w`
/// `(o, k)`, reduced to its max and min over the rows: `(hi, lo)`, each
/// `(n, o, width − k + 1)`. One product per row, `W · T_row` with `T_row` the row's
/// sliding windows read in place (a Toeplitz view, `rs = cs = 1`: no im2col), folded into
/// the running max and min while it is in cache — the full `(o, rows, columns)`
/// convolution output is never written. Items run in parallel. NaN-free input is assumed
/// ([`fold_max_min`]).
///
/// # Panics
/// If `x` is not `n·rows·width` long, `w` not `o·k`, or a side is 0 or `k > width`.
pub fn rows_conv_max_min(
    x: &[f32],
    (n, rows, width): (usize, usize, usize),
    w: &[f32],
    (o, k): (usize, usize),
) -> (Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    assert_eq!(x.len(), n * rows * width, "input length");
    assert_eq!(w.len(), o * k, "kernel length");
    assert!(n > 0 && rows > 0 && o > 0 && k > 0 && k <= width, "shape");
    let t = width - k + 1;
    let (mut hi, mut lo) = (vec![0f32; n * o * t], vec![0f32; n * o * t]);
    let a = MatRef::row_major(w, o, k).expect("kernels (o, k)");
    hi.par_chunks_mut(o * t)
        .zip(lo.par_chunks_mut(o * t))
        .zip(x.par_chunks(rows * width))
        .for_each(|((hi, lo), xi)| {
            let mut prod = vec![0f32; o * t];
            for (r, row) in xi.chunks_exact(width).enumerate() {
                let b = MatRef::new(row, k, t, 1, 1).expect("sliding windows (k, t)");
                if r == 0 {
                    gemm_into(a, b, hi, false);
                    lo.copy_from_slice(hi);
                } else {
                    gemm_into(a, b, &mut prod, false);
                    fold_max_min(&prod, hi, lo);
                }
            }
        });
    (hi, lo)
}

/// Output channels per register block of [`conv1d_valid_into`].
#[cfg(target_arch = "x86_64")]
const DIRECT_OB: usize = 6;

/// A valid, stride-1 1-D convolution of one item computed directly, without a matrix
/// product: `out[o, q] = Σ_c Σ_j w[o·C·kw + c·kw + j] · x[c·len + q0 + q + j]` for
/// `o < out.len()/m`, `q < m` (columns `q0..q0 + m` of the output), `out` `(O, m)`
/// row-major and overwritten. Sums run over `c`, then `j`, the same order for every
/// output whichever block computes it, so any split of the columns gives the same bits.
/// Blocks of 6 output channels × 16 columns live in 12 AVX registers (8 channels × 48
/// columns in 24 registers where the CPU has AVX-512F and `m ≥ 16`; the same bits), with
/// the input read in place (rows of the item) and the weights broadcast from their own
/// layout —
/// nothing is packed, which is what a matrix product spends most of its time on at the
/// 1-D CNN's sizes (32 channels out, 128 in, 8 taps, 87 columns; see docs/models.md).
/// `threads > 1` splits the channel blocks over the current pool. Returns `false` (and
/// leaves `out` alone) without AVX2 and FMA: the caller keeps its matrix products.
///
/// # Panics
/// If `x` is not `C·len` long, `w` not `O·C·kw`, `m` is 0 or `q0 + m + kw − 1 > len`.
#[allow(clippy::too_many_arguments)]
pub fn conv1d_valid_into(
    x: &[f32],
    (c, len): (usize, usize),
    w: &[f32],
    kw: usize,
    q0: usize,
    m: usize,
    out: &mut [f32],
    threads: usize,
) -> bool {
    conv1d_valid_with(x, (c, len), w, kw, (q0, m), out, threads, true)
}

/// [`conv1d_valid_into`], with the AVX-512 blocks allowed (`wide`) or not (tests compare
/// both).
#[allow(clippy::too_many_arguments)]
fn conv1d_valid_with(
    x: &[f32],
    (c, len): (usize, usize),
    w: &[f32],
    kw: usize,
    (q0, m): (usize, usize),
    out: &mut [f32],
    threads: usize,
    wide: bool,
) -> bool {
    assert!(
        m > 0 && kw > 0 && c > 0 && out.len().is_multiple_of(m),
        "shape"
    );
    let o = out.len() / m;
    assert!(
        x.len() == c * len && w.len() == o * c * kw,
        "input or kernel length"
    );
    assert!(q0 + m + kw - 1 <= len, "columns beyond the input");
    #[cfg(target_arch = "x86_64")]
    if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        use rayon::prelude::*;
        let wide = wide && m >= direct512::QB && direct512::available();
        let run = |o0: usize, part: &mut [f32]| {
            let w = &w[o0 * c * kw..];
            if wide {
                // SAFETY: AVX-512F is present, m ≥ 16; shapes are asserted above.
                unsafe { direct512::blocks(x, (c, len), w, kw, q0, m, part) }
            } else {
                // SAFETY: AVX2 and FMA are present; shapes are asserted above.
                unsafe { direct::blocks(x, (c, len), w, kw, q0, m, part) }
            }
        };
        // channel blocks of the wider kernel when it runs (a split inside a block would
        // change nothing but the work per task)
        let ob = if wide { direct512::OB } else { DIRECT_OB };
        if threads > 1 && o > ob {
            out.par_chunks_mut(ob * m)
                .enumerate()
                .for_each(|(i, part)| run(i * ob, part));
        } else {
            run(0, out);
        }
        return true;
    }
    let _ = (threads, wide); // used on x86-64 only
    false
}

/// One kernel tap of a 1-D convolution's kernel gradient for [`conv1d_tap_grads_into`]:
/// the tap `j`, the output columns `q0..q1` whose input column lies inside the input,
/// and `x0`, the input column of `q0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TapRange {
    /// The kernel tap.
    pub j: usize,
    /// First output column read.
    pub q0: usize,
    /// One past the last output column read.
    pub q1: usize,
    /// Input column (row of the transposed input) of output column `q0`.
    pub x0: usize,
}

/// The kernel gradient of one item of a 1-D convolution, added to `dwt`, computed
/// directly from the transposed input: `dwt[(j·O + o)·C + c] += Σ_q dy[o·ow + q] ·
/// xt[(x0 + (q − q0)·s)·C + c]` over each tap's columns ([`TapRange`]), with `xt` the item
/// `(len, C)` (input columns as rows), `dy` `(O, ow)` and `dwt` `(taps, O, C)`. Blocks of 8
/// kernel rows × 48 channels stay in 24 AVX-512 registers over 128 columns at a time;
/// the input rows are read in place and the output gradient broadcast from its own
/// layout, so nothing is packed — the matrix products spent more time packing than
/// multiplying at the 1-D CNN's sizes (32 × 87 by 87 × 128 per tap and item). Each
/// element's sum runs over `q` in order, from the value already in `dwt`. Returns
/// `false` (and leaves `dwt` alone) without AVX-512F or when `C` is not a multiple of 16:
/// the caller keeps its matrix products.
///
/// # Panics
/// If a tap reads outside `xt` or `dy`, `dwt` is shorter than `(max j + 1)·O·C`, or `O`,
/// `C` or `s` is 0.
pub fn conv1d_tap_grads_into(
    xt: &[f32],
    c: usize,
    dy: &[f32],
    (o, ow): (usize, usize),
    taps: &[TapRange],
    s: usize,
    dwt: &mut [f32],
) -> bool {
    assert!(o > 0 && c > 0 && s > 0, "shape");
    assert!(dy.len() >= o * ow, "output gradient length");
    for t in taps {
        assert!(t.q0 <= t.q1 && t.q1 <= ow, "tap columns");
        if t.q1 > t.q0 {
            assert!(
                (t.x0 + (t.q1 - 1 - t.q0) * s + 1) * c <= xt.len(),
                "tap reads beyond the input"
            );
        }
        assert!((t.j + 1) * o * c <= dwt.len(), "kernel gradient length");
    }
    #[cfg(target_arch = "x86_64")]
    if tap_grads_direct(c) {
        // SAFETY: AVX-512F is present, C a multiple of 16; bounds asserted above.
        unsafe { direct512::tap_grads(xt, c, dy, (o, ow), taps, s, dwt) };
        return true;
    }
    let _ = (xt, dy, ow, taps, dwt);
    false
}

/// Whether [`conv1d_tap_grads_into`] computes gradients for `c` input channels on this
/// CPU (AVX-512F, `c` a multiple of 16).
pub fn tap_grads_direct(c: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        c.is_multiple_of(direct512::QB) && direct512::available()
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = c;
        false
    }
}

/// The AVX-512 form of [`direct`]: blocks of 8 output channels × 48 columns (three
/// 16-wide vectors) in 24 of the 32 vector registers, so twice the multiply-adds per
/// instruction of the AVX2 blocks. Each output is the same chain of fused multiply-adds
/// (over `c`, then `j`, from zero) as in [`direct`] and its scalar columns, so both give
/// the same bits and the choice between them is only a matter of speed.
#[cfg(target_arch = "x86_64")]
mod direct512 {
    use std::arch::x86_64::*;

    /// Columns of one vector.
    pub(super) const QB: usize = 16;
    /// Output channels per full block.
    pub(super) const OB: usize = 8;

    /// Whether the CPU has AVX-512F.
    pub(super) fn available() -> bool {
        is_x86_feature_detected!("avx512f")
    }

    /// Rows of the next register block when `left` rows remain: 8, 4, 2 or 1.
    fn row_block(left: usize) -> usize {
        [OB, 4, 2, 1]
            .into_iter()
            .find(|&b| b <= left)
            .expect("at least one row left")
    }

    /// `$f::<B, V>($args)` for a block of `B` = `$b` rows (8, 4, 2, else 1) × `V` = `$v`
    /// 16-wide vectors (3, 2, else 1): the register blocks are const generics, the shape
    /// of the next block is known only at run time.
    macro_rules! by_shape {
        ($f:ident, $b:expr, $v:expr, $($a:expr),*) => {
            match ($b, $v) {
                (8, 3) => $f::<8, 3>($($a),*),
                (8, 2) => $f::<8, 2>($($a),*),
                (8, _) => $f::<8, 1>($($a),*),
                (4, 3) => $f::<4, 3>($($a),*),
                (4, 2) => $f::<4, 2>($($a),*),
                (4, _) => $f::<4, 1>($($a),*),
                (2, 3) => $f::<2, 3>($($a),*),
                (2, 2) => $f::<2, 2>($($a),*),
                (2, _) => $f::<2, 1>($($a),*),
                (_, 3) => $f::<1, 3>($($a),*),
                (_, 2) => $f::<1, 2>($($a),*),
                (_, _) => $f::<1, 1>($($a),*),
            }
        };
    }

    /// All output channels of `out` (`(O, m)`, `m ≥ 16`): blocks of 8, 4, 2, 1 channels
    /// × 48 columns while they fit, the rest of the columns as one block of the smallest
    /// width (16, 32 or 48) that covers it, recomputed from `m − width` (the same sums,
    /// the same bits).
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn blocks(
        x: &[f32],
        (c, len): (usize, usize),
        w: &[f32],
        kw: usize,
        q0: usize,
        m: usize,
        out: &mut [f32],
    ) {
        let o = out.len() / m;
        let widths = [3 * QB, 2 * QB, QB];
        let main = widths.into_iter().find(|&b| b <= m).expect("m ≥ 16");
        let mut oc = 0;
        while oc < o {
            let ob = row_block(o - oc);
            let g = Geo {
                xp: x.as_ptr().add(q0),
                len,
                wp: w.as_ptr().add(oc * c * kw),
                k: c * kw,
                c,
                kw,
            };
            let rows = out.as_mut_ptr().add(oc * m);
            let mut q = 0;
            while q + main <= m {
                step(&g, ob, q, main / QB, rows, m);
                q += main;
            }
            if q < m {
                let width = widths
                    .into_iter()
                    .rev()
                    .find(|&b| b >= m - q)
                    .expect("the main width covers the rest");
                step(&g, ob, m - width, width / QB, rows, m);
            }
            oc += ob;
        }
    }

    /// Output columns per pass of [`tap_grads`]: the pass's input rows (128 × 48
    /// channels, 24 KiB) stay in the L1 cache across the kernel-row blocks.
    const QCHUNK: usize = 128;

    /// [`super::conv1d_tap_grads_into`] (`c` a multiple of 16): for each chunk of
    /// columns, tap, block of 48/32/16 channels and block of 8/4/2/1 kernel rows, the
    /// block's sums in registers over the chunk's columns.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn tap_grads(
        xt: &[f32],
        c: usize,
        dy: &[f32],
        (o, ow): (usize, usize),
        taps: &[super::TapRange],
        s: usize,
        dwt: &mut [f32],
    ) {
        let cv = c / QB;
        for chunk in (0..ow).step_by(QCHUNK) {
            for t in taps {
                let (q0, q1) = (t.q0.max(chunk), t.q1.min(chunk + QCHUNK));
                if q0 >= q1 {
                    continue;
                }
                let g = Grad {
                    xp: xt.as_ptr().add((t.x0 + (q0 - t.q0) * s) * c),
                    xstep: s * c,
                    dp: dy.as_ptr().add(q0),
                    ow,
                    n: q1 - q0,
                    c,
                };
                let dwj = dwt.as_mut_ptr().add(t.j * o * c);
                let mut v0 = 0;
                while v0 < cv {
                    let v = (cv - v0).min(3);
                    let mut r0 = 0;
                    while r0 < o {
                        let b = row_block(o - r0);
                        by_shape!(grad_block, b, v, &g, (r0, v0 * QB), dwj);
                        r0 += b;
                    }
                    v0 += v;
                }
            }
        }
    }

    /// One tap's pass over a chunk of columns: the input row of the first column and the
    /// step between rows, the output gradient from the first column (rows `ow` apart),
    /// the chunk's columns `n`, the channels `c`.
    struct Grad {
        xp: *const f32,
        xstep: usize,
        dp: *const f32,
        ow: usize,
        n: usize,
        c: usize,
    }

    /// Kernel rows `r0..r0 + B` × channels `c0..c0 + 16·V` of one tap's gradient `dwj`
    /// (`(O, C)`): loaded, the chunk's columns added in order, stored.
    #[inline(always)]
    unsafe fn grad_block<const B: usize, const V: usize>(
        g: &Grad,
        (r0, c0): (usize, usize),
        dwj: *mut f32,
    ) {
        let at = |r: usize, v: usize| dwj.add((r0 + r) * g.c + c0 + QB * v);
        let mut acc: [[__m512; V]; B] =
            std::array::from_fn(|r| std::array::from_fn(|v| _mm512_loadu_ps(at(r, v))));
        let dp = g.dp.add(r0 * g.ow);
        for q in 0..g.n {
            // SAFETY: rows and columns inside xt and dy (asserted by the caller)
            let xp = g.xp.add(q * g.xstep + c0);
            let xs: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(xp.add(QB * v)));
            for (r, row) in acc.iter_mut().enumerate() {
                let d = _mm512_set1_ps(*dp.add(r * g.ow + q));
                for v in 0..V {
                    row[v] = _mm512_fmadd_ps(d, xs[v], row[v]);
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                _mm512_storeu_ps(at(r, v), *a);
            }
        }
    }

    /// One channel block's operands: its input from the first output column, the input
    /// row length, its kernel rows (`k = c·kw` apart).
    struct Geo {
        xp: *const f32,
        len: usize,
        wp: *const f32,
        k: usize,
        c: usize,
        kw: usize,
    }

    /// `ob` channels × `tv` vectors of columns from column `q`.
    #[inline(always)]
    unsafe fn step(g: &Geo, ob: usize, q: usize, tv: usize, out: *mut f32, m: usize) {
        by_shape!(block, ob, tv, g, q, out, m)
    }

    /// `B` channels × `V`·16 columns from column `q`, in registers.
    #[inline(always)]
    unsafe fn block<const B: usize, const V: usize>(g: &Geo, q: usize, out: *mut f32, m: usize) {
        let mut acc = [[_mm512_setzero_ps(); V]; B];
        let xp = g.xp.add(q);
        for ci in 0..g.c {
            let xc = xp.add(ci * g.len);
            let wc = g.wp.add(ci * g.kw);
            for j in 0..g.kw {
                // SAFETY: column q0 + q + j + 16·V − 1 < len (asserted by the caller and
                // the block bounds), channel ci < c, kernel row < B
                let xs: [__m512; V] = std::array::from_fn(|v| _mm512_loadu_ps(xc.add(j + QB * v)));
                for (r, row) in acc.iter_mut().enumerate() {
                    let wv = _mm512_set1_ps(*wc.add(r * g.k + j));
                    for v in 0..V {
                        row[v] = _mm512_fmadd_ps(wv, xs[v], row[v]);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                _mm512_storeu_ps(out.add(r * m + q + QB * v), *a);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod direct {
    use super::DIRECT_OB;
    use std::arch::x86_64::*;

    /// Columns per register block: two 8-wide vectors.
    const QB: usize = 16;

    /// All output channels of `out` (`(O, m)`), in blocks of [`DIRECT_OB`] channels (then
    /// single ones) × [`QB`] columns (then 8, then single columns); a last partial block is
    /// recomputed from `m − width` (same sums, same bits).
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn blocks(
        x: &[f32],
        (c, len): (usize, usize),
        w: &[f32],
        kw: usize,
        q0: usize,
        m: usize,
        out: &mut [f32],
    ) {
        let o = out.len() / m;
        let mut oc = 0;
        while oc < o {
            let ob = [DIRECT_OB, 4, 2, 1]
                .into_iter()
                .find(|&b| b <= o - oc)
                .expect("1 fits");
            let wo = &w[oc * c * kw..];
            let rows = &mut out[oc * m..(oc + ob) * m];
            let geo = Geo {
                x,
                c,
                len,
                w: wo,
                kw,
                q0,
                m,
            };
            let mut q = 0;
            while q + QB <= m {
                step(&geo, ob, q, QB, rows);
                q += QB;
            }
            if q < m && m >= QB {
                step(&geo, ob, m - QB, QB, rows);
            } else {
                while q + 8 <= m {
                    step(&geo, ob, q, 8, rows);
                    q += 8;
                }
                if q < m && m >= 8 {
                    step(&geo, ob, m - 8, 8, rows);
                } else {
                    for qq in q..m {
                        step(&geo, ob, qq, 1, rows);
                    }
                }
            }
            oc += ob;
        }
    }

    /// The operands of one channel block: the item's input `(c, len)`, the block's kernel
    /// rows (from its first channel, rows of `c·kw`), the first output column `q0` and the
    /// output width `m`.
    #[derive(Clone, Copy)]
    struct Geo<'a> {
        x: &'a [f32],
        c: usize,
        len: usize,
        w: &'a [f32],
        kw: usize,
        q0: usize,
        m: usize,
    }

    /// `ob` channels × `width` columns from column `q` (`width` [`QB`], 8 or 1).
    #[inline(always)]
    unsafe fn step(g: &Geo<'_>, ob: usize, q: usize, width: usize, out: &mut [f32]) {
        match (ob, width) {
            (DIRECT_OB, QB) => block::<DIRECT_OB, 2>(g, q, out),
            (DIRECT_OB, 8) => block::<DIRECT_OB, 1>(g, q, out),
            (4, QB) => block::<4, 2>(g, q, out),
            (4, 8) => block::<4, 1>(g, q, out),
            (2, QB) => block::<2, 2>(g, q, out),
            (2, 8) => block::<2, 1>(g, q, out),
            (1, QB) => block::<1, 2>(g, q, out),
            (1, 8) => block::<1, 1>(g, q, out),
            _ => single(g, q, out, ob),
        }
    }

    /// `OB` channels × `TV`·8 columns from column `q`, in registers.
    #[inline(always)]
    unsafe fn block<const OB: usize, const TV: usize>(g: &Geo<'_>, q: usize, out: &mut [f32]) {
        let Geo {
            x,
            c,
            len,
            w,
            kw,
            q0,
            m,
        } = *g;
        let k = c * kw;
        let mut acc = [[_mm256_setzero_ps(); TV]; OB];
        let xp = x.as_ptr().add(q0 + q);
        let wp = w.as_ptr();
        for ci in 0..c {
            for j in 0..kw {
                // SAFETY: column q0 + q + j + 8·TV − 1 < len (asserted by the caller and
                // the block bounds), channel ci < c, kernel row < OB
                let xs: [__m256; TV] =
                    std::array::from_fn(|v| _mm256_loadu_ps(xp.add(ci * len + j + 8 * v)));
                for (r, row) in acc.iter_mut().enumerate() {
                    let wv = _mm256_broadcast_ss(&*wp.add(r * k + ci * kw + j));
                    for v in 0..TV {
                        row[v] = _mm256_fmadd_ps(wv, xs[v], row[v]);
                    }
                }
            }
        }
        for (r, row) in acc.iter().enumerate() {
            for (v, a) in row.iter().enumerate() {
                _mm256_storeu_ps(out.as_mut_ptr().add(r * m + q + 8 * v), *a);
            }
        }
    }

    /// One column `q` of `ob` channels, scalar, with the same fused multiply-adds in the
    /// same order as [`block`].
    #[inline(always)]
    unsafe fn single(g: &Geo<'_>, q: usize, out: &mut [f32], ob: usize) {
        let (x, c, len, w, kw) = (g.x, g.c, g.len, g.w, g.kw);
        let (q0, m, k) = (g.q0, g.m, g.c * g.kw);
        for r in 0..ob {
            let mut a = 0f32;
            for ci in 0..c {
                for j in 0..kw {
                    a = w[r * k + ci * kw + j].mul_add(x[ci * len + q0 + q + j], a);
                }
            }
            out[r * m + q] = a;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &MatRef, b: &MatRef) -> Vec<f32> {
        let mut c = vec![0f32; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                let mut s = 0f64;
                for p in 0..a.cols {
                    s += a.data[i * a.rs + p * a.cs] as f64 * b.data[p * b.rs + j * b.cs] as f64;
                }
                c[i * b.cols + j] = s as f32;
            }
        }
        c
    }

    /// Row-major, transposed and overlapping (Toeplitz) views against a naive product,
    /// within f32 round-off (2e-6 of the values' scale).
    #[test]
    fn strided_products_match_naive() {
        let mut rng = mirkit_core::Rng::new(5);
        let v: Vec<f32> = (0..4000).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        let a = MatRef::row_major(&v[..35 * 17], 35, 17).unwrap();
        let at = MatRef::new(&v[..17 * 35], 35, 17, 1, 35).unwrap(); // transposed storage
        let toeplitz = MatRef::new(&v[1000..], 17, 300, 1, 1).unwrap(); // sliding windows
        let b = MatRef::row_major(&v[2000..2000 + 17 * 41], 17, 41).unwrap();
        for (x, y) in [(a, b), (at, b), (a, toeplitz), (at, toeplitz)] {
            let want = naive(&x, &y);
            let mut got = vec![0f32; want.len()];
            gemm_into(x, y, &mut got, false);
            let err = got
                .iter()
                .zip(&want)
                .map(|(p, q)| (p - q).abs())
                .fold(0f32, f32::max);
            assert!(err < 2e-6 * 17.0, "{err}");
            // accumulate adds to what is there
            gemm_into(x, y, &mut got, true);
            let err = got
                .iter()
                .zip(&want)
                .map(|(p, q)| (p - 2.0 * q).abs())
                .fold(0f32, f32::max);
            assert!(err < 4e-6 * 17.0, "{err}");
        }
    }

    /// The direct 1-D convolution against an `f64` sum (within f32's bound for a dot
    /// product of `C·kw` terms), for channel counts that use every register block (AVX2:
    /// 6, 4, 2, 1 — 13 = 6 + 6 + 1, 7 = 6 + 1, 4, 2; AVX-512: 8, 4, 2, 1 — 13, 15, 9, 32)
    /// and widths that use every column block (AVX2: 16, 8, single columns; AVX-512: 48,
    /// 32, 16) and the recomputed last block; any split of the columns, a split of the
    /// channel blocks over threads and the AVX2 blocks alone give the same bits.
    #[test]
    fn direct_conv1d_matches_f64_and_any_split() {
        let mut rng = mirkit_core::Rng::new(21);
        for (o, c, kw, len) in [
            (13, 5, 3, 60),
            (7, 32, 8, 94),
            (4, 3, 1, 9),
            (2, 4, 5, 11),
            (32, 16, 8, 94),
            (15, 3, 2, 40),
            (9, 2, 4, 23),
        ] {
            let x: Vec<f32> = (0..c * len).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            let w: Vec<f32> = (0..o * c * kw)
                .map(|_| rng.range(-1.0, 1.0) as f32)
                .collect();
            let m = len - kw + 1;
            let mut whole = vec![0f32; o * m];
            if !conv1d_valid_into(&x, (c, len), &w, kw, 0, m, &mut whole, 1) {
                eprintln!("no AVX2/FMA: the direct convolution is not used or tested");
                return;
            }
            for oc in 0..o {
                for q in 0..m {
                    let (mut s, mut bound) = (0f64, 0f64);
                    for ci in 0..c {
                        for j in 0..kw {
                            let p = w[(oc * c + ci) * kw + j] as f64 * x[ci * len + q + j] as f64;
                            s += p;
                            bound += p.abs();
                        }
                    }
                    let tol = (c * kw) as f64 * f32::EPSILON as f64 * bound;
                    let got = whole[oc * m + q] as f64;
                    assert!((got - s).abs() <= tol, "o {oc} q {q}: {got} vs {s}");
                }
            }
            // columns in pieces (each piece's own block layout) and channels over threads
            for cut in [1, 7, 8, 17, m / 2] {
                let cut = cut.min(m - 1).max(1);
                let mut parts = vec![0f32; o * m];
                for (q0, mm) in [(0, cut), (cut, m - cut)] {
                    let mut part = vec![0f32; o * mm];
                    conv1d_valid_into(&x, (c, len), &w, kw, q0, mm, &mut part, 1);
                    for r in 0..o {
                        parts[r * m + q0..r * m + q0 + mm]
                            .copy_from_slice(&part[r * mm..(r + 1) * mm]);
                    }
                }
                assert_eq!(parts, whole, "columns cut at {cut}");
            }
            let mut threaded = vec![0f32; o * m];
            conv1d_valid_into(&x, (c, len), &w, kw, 0, m, &mut threaded, 4);
            assert_eq!(threaded, whole, "channel blocks over threads");
            // the AVX2 blocks alone (the AVX-512 ones, where the CPU has them, run the
            // same chains of multiply-adds)
            let mut narrow = vec![0f32; o * m];
            conv1d_valid_with(&x, (c, len), &w, kw, (0, m), &mut narrow, 1, false);
            assert_eq!(narrow, whole, "AVX2 and AVX-512 blocks");
        }
    }

    /// The direct kernel gradient against an `f64` sum of the same terms (within f32's
    /// bound for the running sum of `columns + 1` terms, the first the value already in
    /// the gradient): kernel-row counts that use every block (15 = 8 + 4 + 2 + 1, 8),
    /// channel counts that use the 48-, 32- and 16-channel blocks (96, 80, 64, 16),
    /// stride 1 and 2, taps cut short by padding, more columns than one pass (300).
    #[test]
    fn direct_tap_grads_match_f64() {
        let mut rng = mirkit_core::Rng::new(23);
        for (o, c, ow, s) in [
            (15, 96, 300, 1),
            (8, 80, 40, 2),
            (3, 64, 129, 1),
            (2, 16, 7, 3),
        ] {
            if !tap_grads_direct(c) {
                eprintln!("no AVX-512F: the direct kernel gradient is not used or tested");
                return;
            }
            let len = ow * s + 3;
            let xt: Vec<f32> = (0..len * c).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            let dy: Vec<f32> = (0..o * ow).map(|_| rng.range(-1.0, 1.0) as f32).collect();
            let taps = [
                TapRange {
                    j: 0,
                    q0: 1,
                    q1: ow,
                    x0: 0,
                },
                TapRange {
                    j: 1,
                    q0: 0,
                    q1: ow,
                    x0: 1,
                },
                TapRange {
                    j: 2,
                    q0: 0,
                    q1: ow - 1,
                    x0: 2,
                },
            ];
            let start: Vec<f32> = (0..3 * o * c)
                .map(|_| rng.range(-1.0, 1.0) as f32)
                .collect();
            let mut dwt = start.clone();
            assert!(conv1d_tap_grads_into(
                &xt,
                c,
                &dy,
                (o, ow),
                &taps,
                s,
                &mut dwt
            ));
            for t in &taps {
                for r in 0..o {
                    for ci in 0..c {
                        let at = (t.j * o + r) * c + ci;
                        let (mut sum, mut bound) = (start[at] as f64, start[at].abs() as f64);
                        for q in t.q0..t.q1 {
                            let p =
                                dy[r * ow + q] as f64 * xt[(t.x0 + (q - t.q0) * s) * c + ci] as f64;
                            sum += p;
                            bound += p.abs();
                        }
                        let tol = (t.q1 - t.q0 + 1) as f64 * f32::EPSILON as f64 * bound;
                        let got = dwt[at] as f64;
                        assert!(
                            (got - sum).abs() <= tol,
                            "tap {} o {r} c {ci}: {got} vs {sum}",
                            t.j
                        );
                    }
                }
            }
        }
    }

    /// A product split over threads has the bits of the one-thread product (a layer's
    /// shape from the short-chunk ResNet at batch 1: 256 × 2304 by 2304 × 64).
    #[test]
    fn threads_do_not_change_the_bits() {
        let mut rng = mirkit_core::Rng::new(9);
        let (m, k, n) = (256, 2304, 64);
        let av: Vec<f32> = (0..m * k).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        let bv: Vec<f32> = (0..k * n).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        let (a, b) = (
            MatRef::row_major(&av, m, k).unwrap(),
            MatRef::row_major(&bv, k, n).unwrap(),
        );
        let mut one = vec![0f32; m * n];
        gemm_into(a, b, &mut one, false);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(4)
            .build()
            .unwrap();
        let mut four = vec![0f32; m * n];
        pool.install(|| gemm_into_on(a, b, &mut four, false, 4));
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&four), bits(&one));
    }

    /// A product into a block of columns of a wider matrix writes that block (the naive
    /// product, accumulated or not) and leaves the other columns alone.
    #[test]
    fn strided_destination_writes_its_block_only() {
        let mut rng = mirkit_core::Rng::new(6);
        let v: Vec<f32> = (0..2000).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        let a = MatRef::row_major(&v[..9 * 13], 9, 13).unwrap();
        let b = MatRef::new(&v[500..], 13, 7, 40, 2).unwrap();
        let want = naive(&a, &b);
        let (rs, at) = (20, 5);
        let mut c = vec![0.5f32; at + 8 * rs + 7 + 3];
        gemm_into_strided(a, b, &mut c[at..], (rs, 1), true, 1);
        for (idx, &got) in c.iter().enumerate() {
            let (i, j) = ((idx.wrapping_sub(at)) / rs, (idx.wrapping_sub(at)) % rs);
            let expect = if idx >= at && i < 9 && j < 7 {
                0.5 + want[i * 7 + j] as f64
            } else {
                0.5
            };
            assert!(
                (got as f64 - expect).abs() < 1e-5,
                "{idx}: {got} vs {expect}"
            );
        }
    }

    /// The rows' convolution max and min equal the direct sums' (f64), for two items.
    #[test]
    fn rows_conv_max_min_matches_direct_sums() {
        let mut rng = mirkit_core::Rng::new(7);
        let (n, rows, width, o, k) = (2, 5, 30, 3, 7);
        let x: Vec<f32> = (0..n * rows * width)
            .map(|_| rng.range(-1.0, 1.0) as f32)
            .collect();
        let w: Vec<f32> = (0..o * k).map(|_| rng.range(-1.0, 1.0) as f32).collect();
        let (hi, lo) = rows_conv_max_min(&x, (n, rows, width), &w, (o, k));
        let t = width - k + 1;
        for i in 0..n {
            for oc in 0..o {
                for q in 0..t {
                    let vals: Vec<f64> = (0..rows)
                        .map(|r| {
                            (0..k)
                                .map(|j| {
                                    x[(i * rows + r) * width + q + j] as f64 * w[oc * k + j] as f64
                                })
                                .sum()
                        })
                        .collect();
                    let mx = vals.iter().cloned().fold(f64::MIN, f64::max);
                    let mn = vals.iter().cloned().fold(f64::MAX, f64::min);
                    let at = (i * o + oc) * t + q;
                    assert!((hi[at] as f64 - mx).abs() < 1e-5, "max {at}");
                    assert!((lo[at] as f64 - mn).abs() < 1e-5, "min {at}");
                }
            }
        }
    }

    #[test]
    fn views_outside_the_slice_are_refused() {
        let v = vec![0f32; 10];
        assert!(MatRef::new(&v, 2, 5, 5, 1).is_some());
        assert!(MatRef::new(&v, 2, 6, 5, 1).is_none());
        assert!(MatRef::new(&v, 0, 5, 5, 1).is_none());
        assert!(MatRef::new(&v, 3, 8, 1, 1).is_some()); // last = 2 + 7 = 9
        assert!(MatRef::new(&v, 3, 9, 1, 1).is_none());
        assert!(MatRef::new(&v, usize::MAX, 2, usize::MAX, 1).is_none());
    }

    #[test]
    fn column_reductions() {
        let x = [1.0, 5.0, -2.0, 3.0, 0.0, 7.0];
        let (mut hi, mut lo) = ([0f32; 3], [0f32; 3]);
        column_max_min(&x, 3, &mut hi, &mut lo);
        assert_eq!((hi, lo), ([3.0, 5.0, 7.0], [1.0, 0.0, -2.0]));
        fold_max_min(&[4.0, -1.0, 0.0], &mut hi, &mut lo);
        assert_eq!((hi, lo), ([4.0, 5.0, 7.0], [1.0, -1.0, -2.0]));
    }
}
