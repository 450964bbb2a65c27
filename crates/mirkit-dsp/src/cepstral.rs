//! MFCC (DCT-II of a log-mel spectrogram), liftering, deltas and per-band standardisation.
//!
//! * MFCC: `scipy.fftpack.dct(S, type=2, norm="ortho", axis=-2)[:n_mfcc]`, as
//!   `librosa.feature.mfcc` does, optionally liftered by `1 + (L/2) sin(π(n+1)/L)`.
//! * Deltas: `librosa.feature.delta(width, order, mode="interp")`, which is
//!   `scipy.signal.savgol_filter(deriv=order, polyorder=order, mode="interp")`: a
//!   least-squares polynomial derivative in the interior; at the edges the polynomial fitted
//!   to the first/last `width` frames is differentiated (so edges are not zero-padded).

use crate::error::{invalid, DspError, Result};
use ndarray::{Array2, ArrayView2, Axis};

/// The orthonormal DCT-II matrix, `(n_out, n_in)`, in `f64`.
pub fn dct2_ortho(n_out: usize, n_in: usize) -> Array2<f64> {
    let n = n_in as f64;
    Array2::from_shape_fn((n_out, n_in), |(k, i)| {
        let s = if k == 0 {
            (1.0 / n).sqrt()
        } else {
            (2.0 / n).sqrt()
        };
        s * (std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2.0 * n)).cos()
    })
}

/// MFCC from a log-power mel spectrogram `(n_mels, frames)` → `(n_mfcc, frames)`.
pub fn mfcc_from_log_mel(s: ArrayView2<f32>, n_mfcc: usize, lifter: f32) -> Result<Array2<f32>> {
    let n_mels = s.nrows();
    if n_mfcc == 0 {
        return Err(invalid("n_mfcc", 0, "must be positive"));
    }
    if n_mfcc > n_mels {
        return Err(invalid(
            "n_mfcc",
            n_mfcc,
            format!("must not exceed n_mels = {n_mels}"),
        ));
    }
    if !(lifter.is_finite() && lifter >= 0.0) {
        return Err(invalid("lifter", lifter, "must be a non-negative number"));
    }
    Ok(mfcc_basis(n_mfcc, n_mels, lifter).dot(&s))
}

/// The MFCC matrix `(n_mfcc, n_in)`: orthonormal DCT-II rows, each scaled by librosa's
/// lifter `1 + (L/2)·sin(π(k+1)/L)` when `lifter > 0`; computed in `f64`, rounded once.
pub fn mfcc_basis(n_mfcc: usize, n_in: usize, lifter: f32) -> Array2<f32> {
    let mut d = dct2_ortho(n_mfcc, n_in);
    if lifter > 0.0 {
        for k in 0..n_mfcc {
            let w = 1.0
                + (lifter as f64 / 2.0)
                    * (std::f64::consts::PI * (k + 1) as f64 / lifter as f64).sin();
            d.row_mut(k).mapv_inplace(|v| v * w);
        }
    }
    d.mapv(|v| v as f32)
}

/// Precomputed derivative filters for [`delta`].
fn savgol_rows(width: usize, order: usize) -> Vec<Vec<f64>> {
    // rows[t] = coefficients that give the `order`-th derivative at position t (0..width)
    // of the least-squares polynomial of degree `order` through `width` points.
    let p = order + 1;
    // Vandermonde V (width x p) with t centred for conditioning
    let h = (width / 2) as f64;
    let v = Array2::from_shape_fn((width, p), |(i, j)| (i as f64 - h).powi(j as i32));
    let vtv = v.t().dot(&v);
    let inv = invert(&vtv);
    let pinv = inv.dot(&v.t()); // p x width
    let fact = |j: usize| -> f64 { ((j - order + 1)..=j).map(|x| x as f64).product() };
    (0..width)
        .map(|t| {
            let tt = t as f64 - h;
            (0..width)
                .map(|i| {
                    (order..p)
                        .map(|j| fact(j) * tt.powi((j - order) as i32) * pinv[[j, i]])
                        .sum()
                })
                .collect()
        })
        .collect()
}

fn invert(a: &Array2<f64>) -> Array2<f64> {
    let n = a.nrows();
    let mut m = a.clone();
    let mut inv = Array2::<f64>::eye(n);
    for c in 0..n {
        let piv = (c..n)
            .max_by(|&x, &y| m[[x, c]].abs().total_cmp(&m[[y, c]].abs()))
            .unwrap();
        for k in 0..n {
            m.swap([c, k], [piv, k]);
            inv.swap([c, k], [piv, k]);
        }
        let d = m[[c, c]];
        for k in 0..n {
            m[[c, k]] /= d;
            inv[[c, k]] /= d;
        }
        for r in 0..n {
            if r != c {
                let f = m[[r, c]];
                for k in 0..n {
                    m[[r, k]] -= f * m[[c, k]];
                    inv[[r, k]] -= f * inv[[c, k]];
                }
            }
        }
    }
    inv
}

/// `librosa.feature.delta(data, width, order, axis=-1, mode="interp")` along frames.
pub fn delta(data: ArrayView2<f32>, width: usize, order: usize) -> Result<Array2<f32>> {
    if width < 3 || width.is_multiple_of(2) {
        return Err(invalid("width", width, "must be an odd integer >= 3"));
    }
    if order == 0 {
        return Err(invalid("order", 0, "must be a positive integer"));
    }
    if order >= width {
        return Err(invalid(
            "order",
            order,
            format!("must be below width = {width}"),
        ));
    }
    let n = data.ncols();
    if width > n {
        return Err(DspError::InvalidParameter {
            name: "width",
            value: width.to_string(),
            why: format!("cannot exceed the number of frames ({n}) when mode='interp'"),
        });
    }
    let rows = savgol_rows(width, order);
    let h = width / 2;
    let mut out = Array2::<f32>::zeros(data.raw_dim());
    for (r, mut o) in data.axis_iter(Axis(0)).zip(out.axis_iter_mut(Axis(0))) {
        let x: Vec<f64> = r.iter().map(|&v| v as f64).collect();
        for t in 0..n {
            let (start, pos) = if t < h {
                (0, t)
            } else if t + h >= n {
                (n - width, t - (n - width))
            } else {
                (t - h, h)
            };
            let c = &rows[pos];
            o[t] = c
                .iter()
                .zip(&x[start..start + width])
                .map(|(a, b)| a * b)
                .sum::<f64>() as f32;
        }
    }
    Ok(out)
}

/// Per-band standardisation: each row to zero mean and unit (population) variance;
/// rows with standard deviation below `eps` are only centred.
pub fn standardize(data: ArrayView2<f32>, eps: f32) -> Array2<f32> {
    let mut out = data.to_owned();
    for mut row in out.axis_iter_mut(Axis(0)) {
        let n = row.len().max(1) as f64;
        let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt();
        let div = if sd < eps as f64 { 1.0 } else { sd };
        row.mapv_inplace(|v| ((v as f64 - mean) / div) as f32);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    #[test]
    fn dct_is_orthonormal() {
        let d = dct2_ortho(16, 16);
        let i = d.dot(&d.t());
        for r in 0..16 {
            for c in 0..16 {
                assert!((i[[r, c]] - if r == c { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
    }
    #[test]
    fn delta_of_linear_ramp_is_slope() {
        let x = Array2::from_shape_fn((2, 20), |(r, t)| (r as f32 + 1.0) * t as f32 + 3.0);
        let d = delta(x.view(), 9, 1).unwrap();
        for t in 0..20 {
            assert!((d[[0, t]] - 1.0).abs() < 1e-5 && (d[[1, t]] - 2.0).abs() < 1e-5);
        }
        let q = Array2::from_shape_fn((1, 15), |(_, t)| (t * t) as f32);
        let d2 = delta(q.view(), 5, 2).unwrap();
        for t in 0..15 {
            assert!((d2[[0, t]] - 2.0).abs() < 1e-4, "{t}: {}", d2[[0, t]]);
        }
        assert!(delta(array![[1.0f32, 2.0, 3.0]].view(), 9, 1).is_err());
        assert!(delta(q.view(), 4, 1).is_err());
    }
}
