//! Analysis windows, as `scipy.signal.get_window` computes them.
//!
//! `periodic = true` is scipy's `fftbins=True` (what librosa and torchaudio use for the
//! STFT); `periodic = false` gives the symmetric window used in filter design.
//! Values are computed in `f64` and rounded once to `f32`.

use crate::error::{invalid, Result};
use std::f64::consts::PI;

/// Window shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowKind {
    /// Hann (raised cosine), `0.5 − 0.5 cos`.
    Hann,
    /// Hamming, `0.54 − 0.46 cos`.
    Hamming,
    /// Blackman, `0.42 − 0.5 cos + 0.08 cos 2`.
    Blackman,
    /// 4-term Blackman–Harris.
    BlackmanHarris,
    /// Rectangular (scipy's `boxcar`, librosa's `"ones"`).
    Rectangular,
}

impl std::str::FromStr for WindowKind {
    type Err = crate::DspError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "hann" | "hanning" => Self::Hann,
            "hamming" => Self::Hamming,
            "blackman" => Self::Blackman,
            "blackmanharris" | "blackman-harris" => Self::BlackmanHarris,
            "rect" | "rectangular" | "boxcar" | "ones" => Self::Rectangular,
            _ => {
                return Err(invalid(
                    "window",
                    s,
                    "one of hann, hamming, blackman, blackmanharris, rectangular",
                ))
            }
        })
    }
}

/// The window of length `n`, periodic (`fftbins=True`) or symmetric.
pub fn get_window(kind: WindowKind, n: usize, periodic: bool) -> Vec<f32> {
    get_window_f64(kind, n, periodic)
        .into_iter()
        .map(|v| v as f32)
        .collect()
}

/// [`get_window`] in double precision.
pub fn get_window_f64(kind: WindowKind, n: usize, periodic: bool) -> Vec<f64> {
    if n == 0 {
        return vec![];
    }
    if n == 1 {
        return vec![1.0];
    }
    let m = if periodic { n as f64 } else { (n - 1) as f64 };
    let cos_sum = |a: &[f64]| -> Vec<f64> {
        (0..n)
            .map(|i| {
                let x = 2.0 * PI * i as f64 / m;
                a.iter()
                    .enumerate()
                    .map(|(k, &ak)| if k % 2 == 0 { ak } else { -ak } * (k as f64 * x).cos())
                    .sum()
            })
            .collect()
    };
    match kind {
        WindowKind::Hann => cos_sum(&[0.5, 0.5]),
        WindowKind::Hamming => cos_sum(&[0.54, 0.46]),
        WindowKind::Blackman => cos_sum(&[0.42, 0.50, 0.08]),
        WindowKind::BlackmanHarris => cos_sum(&[0.35875, 0.48829, 0.14128, 0.01168]),
        WindowKind::Rectangular => vec![1.0; n],
    }
}

/// Centres `w` in a zero vector of length `size` (librosa's `util.pad_center`).
pub fn pad_center(w: &[f32], size: usize) -> Result<Vec<f32>> {
    if w.len() > size {
        return Err(invalid(
            "win_length",
            w.len(),
            format!("must be <= n_fft = {size}"),
        ));
    }
    let lpad = (size - w.len()) / 2;
    let mut out = vec![0.0; size];
    out[lpad..lpad + w.len()].copy_from_slice(w);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn hann_periodic_and_symmetric() {
        let w = get_window(WindowKind::Hann, 4, true);
        assert_eq!(w, vec![0.0, 0.5, 1.0, 0.5]);
        let s = get_window(WindowKind::Hann, 5, false);
        assert!((s[2] - 1.0).abs() < 1e-7 && s[0].abs() < 1e-7 && s[4].abs() < 1e-7);
        let h = get_window(WindowKind::Hamming, 3, false);
        assert!((h[0] - 0.08).abs() < 1e-6 && (h[1] - 1.0).abs() < 1e-6);
    }
    #[test]
    fn pad_center_places_middle() {
        assert_eq!(
            pad_center(&[1.0, 1.0], 6).unwrap(),
            vec![0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        );
        assert!(pad_center(&[1.0; 7], 6).is_err());
    }
}
