//! Slice-level kernels for fused inference operations.
//!
//! Candle composes operations through whole tensors: every intermediate is allocated
//! (zero-filled), written to memory and read back. Where a model reduces a large
//! intermediate right away (a convolution followed by a max over one axis), doing the
//! product in cache-sized pieces and reducing each piece at once avoids that traffic.
//! These are the pieces: a matrix product on strided views of plain slices (the `gemm`
//! crate that Candle itself uses, single-threaded so callers parallelise over pieces;
//! strided outputs too), a column-wise max/min, and a 1-D convolution of many rows reduced
//! to its max and min over the rows without writing the convolution out
//! ([`rows_conv_max_min`], musicnn's temporal filters).

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
    assert!(n > 0 && !x.is_empty() && x.len() % n == 0, "shape");
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
