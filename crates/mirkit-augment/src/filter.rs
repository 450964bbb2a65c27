//! Biquad filters (Robert Bristow-Johnson's Audio EQ Cookbook) and a feed-forward
//! dynamic-range compressor. Filters run in direct form I in double precision.

use crate::error::{check_signal, invalid, positive, AugmentError, Result};

/// Biquad response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterKind {
    /// Low-pass (−3 dB at `freq` for Q = 1/√2).
    LowPass,
    /// High-pass.
    HighPass,
    /// Band-pass, 0 dB peak.
    BandPass,
    /// Low shelf by `gain_db`.
    LowShelf,
    /// High shelf by `gain_db`.
    HighShelf,
    /// Peaking EQ by `gain_db`.
    Peaking,
}

impl FilterKind {
    /// Name used in records.
    pub fn name(self) -> &'static str {
        match self {
            Self::LowPass => "lowpass",
            Self::HighPass => "highpass",
            Self::BandPass => "bandpass",
            Self::LowShelf => "lowshelf",
            Self::HighShelf => "highshelf",
            Self::Peaking => "peaking",
        }
    }
}

impl std::str::FromStr for FilterKind {
    type Err = AugmentError;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "lowpass" => Self::LowPass,
            "highpass" => Self::HighPass,
            "bandpass" => Self::BandPass,
            "lowshelf" => Self::LowShelf,
            "highshelf" => Self::HighShelf,
            "peaking" => Self::Peaking,
            _ => {
                return Err(invalid(
                    "filter",
                    s,
                    "lowpass, highpass, bandpass, lowshelf, highshelf or peaking",
                ))
            }
        })
    }
}

/// Filters `y` in place.
pub fn biquad(
    y: &mut [f32],
    sr: u32,
    kind: FilterKind,
    freq: f64,
    q: f64,
    gain_db: f64,
) -> Result<()> {
    check_signal(y)?;
    let nyq = sr as f64 / 2.0;
    if !(freq.is_finite() && freq > 0.0 && freq < nyq) {
        return Err(invalid("freq", freq, format!("must be in (0, {nyq}) Hz")));
    }
    positive("q", q)?;
    if !gain_db.is_finite() {
        return Err(invalid("gain_db", gain_db, "must be finite"));
    }
    let w0 = 2.0 * std::f64::consts::PI * freq / sr as f64;
    let (sn, cs) = w0.sin_cos();
    let alpha = sn / (2.0 * q);
    let a = 10f64.powf(gain_db / 40.0);
    let (b0, b1, b2, a0, a1, a2) = match kind {
        FilterKind::LowPass => (
            (1.0 - cs) / 2.0,
            1.0 - cs,
            (1.0 - cs) / 2.0,
            1.0 + alpha,
            -2.0 * cs,
            1.0 - alpha,
        ),
        FilterKind::HighPass => (
            (1.0 + cs) / 2.0,
            -(1.0 + cs),
            (1.0 + cs) / 2.0,
            1.0 + alpha,
            -2.0 * cs,
            1.0 - alpha,
        ),
        FilterKind::BandPass => (alpha, 0.0, -alpha, 1.0 + alpha, -2.0 * cs, 1.0 - alpha),
        FilterKind::Peaking => (
            1.0 + alpha * a,
            -2.0 * cs,
            1.0 - alpha * a,
            1.0 + alpha / a,
            -2.0 * cs,
            1.0 - alpha / a,
        ),
        FilterKind::LowShelf => {
            let s = 2.0 * a.sqrt() * alpha;
            (
                a * ((a + 1.0) - (a - 1.0) * cs + s),
                2.0 * a * ((a - 1.0) - (a + 1.0) * cs),
                a * ((a + 1.0) - (a - 1.0) * cs - s),
                (a + 1.0) + (a - 1.0) * cs + s,
                -2.0 * ((a - 1.0) + (a + 1.0) * cs),
                (a + 1.0) + (a - 1.0) * cs - s,
            )
        }
        FilterKind::HighShelf => {
            let s = 2.0 * a.sqrt() * alpha;
            (
                a * ((a + 1.0) + (a - 1.0) * cs + s),
                -2.0 * a * ((a - 1.0) + (a + 1.0) * cs),
                a * ((a + 1.0) + (a - 1.0) * cs - s),
                (a + 1.0) - (a - 1.0) * cs + s,
                2.0 * ((a - 1.0) - (a + 1.0) * cs),
                (a + 1.0) - (a - 1.0) * cs - s,
            )
        }
    };
    let (b0, b1, b2, a1, a2) = (b0 / a0, b1 / a0, b2 / a0, a1 / a0, a2 / a0);
    let (mut x1, mut x2, mut y1, mut y2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for v in y.iter_mut() {
        let x0 = *v as f64;
        let y0 = b0 * x0 + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2;
        x2 = x1;
        x1 = x0;
        y2 = y1;
        y1 = y0;
        *v = y0 as f32;
    }
    Ok(())
}

/// Compressor settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Compressor {
    /// Level above which gain is reduced, dBFS.
    pub threshold_db: f64,
    /// Input/output slope above the threshold (≥ 1).
    pub ratio: f64,
    /// Attack time constant, ms.
    pub attack_ms: f64,
    /// Release time constant, ms.
    pub release_ms: f64,
    /// Gain added after compression, dB.
    pub makeup_db: f64,
}

impl Default for Compressor {
    fn default() -> Self {
        Self {
            threshold_db: -20.0,
            ratio: 4.0,
            attack_ms: 5.0,
            release_ms: 50.0,
            makeup_db: 0.0,
        }
    }
}

/// Feed-forward compressor with a peak detector and hard knee, gain smoothed in dB.
pub fn compress(y: &mut [f32], sr: u32, c: &Compressor) -> Result<()> {
    check_signal(y)?;
    if !(c.ratio.is_finite() && c.ratio >= 1.0) {
        return Err(invalid("ratio", c.ratio, "must be >= 1"));
    }
    if !c.threshold_db.is_finite() || !c.makeup_db.is_finite() {
        return Err(invalid(
            "threshold_db",
            c.threshold_db,
            "threshold and makeup must be finite",
        ));
    }
    positive("attack_ms", c.attack_ms)?;
    positive("release_ms", c.release_ms)?;
    let aa = (-1.0 / (c.attack_ms * 1e-3 * sr as f64)).exp();
    let ar = (-1.0 / (c.release_ms * 1e-3 * sr as f64)).exp();
    let mut g = 0.0f64; // gain reduction, dB
    for v in y.iter_mut() {
        let level = 20.0 * (v.abs() as f64).max(1e-9).log10();
        let over = level - c.threshold_db;
        let target = if over > 0.0 {
            over * (1.0 - 1.0 / c.ratio)
        } else {
            0.0
        };
        let a = if target > g { aa } else { ar };
        g = a * g + (1.0 - a) * target;
        *v = (*v as f64 * 10f64.powf((c.makeup_db - g) / 20.0)) as f32;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    fn rms_of_tone(f: f64, kind: FilterKind) -> f64 {
        let sr = 22050;
        let mut y: Vec<f32> = (0..sr)
            .map(|i| (2.0 * std::f64::consts::PI * f * i as f64 / sr as f64).sin() as f32)
            .collect();
        biquad(
            &mut y,
            sr as u32,
            kind,
            1000.0,
            std::f64::consts::FRAC_1_SQRT_2,
            6.0,
        )
        .unwrap();
        (y[sr / 2..].iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / (sr / 2) as f64).sqrt()
            * 2f64.sqrt()
    }
    #[test]
    fn responses() {
        assert!(
            (rms_of_tone(1000.0, FilterKind::LowPass) - std::f64::consts::FRAC_1_SQRT_2).abs()
                < 0.01
        );
        assert!(
            rms_of_tone(100.0, FilterKind::LowPass) > 0.99
                && rms_of_tone(8000.0, FilterKind::LowPass) < 0.05
        );
        assert!(
            rms_of_tone(8000.0, FilterKind::HighPass) > 0.99
                && rms_of_tone(100.0, FilterKind::HighPass) < 0.02
        );
        assert!((rms_of_tone(1000.0, FilterKind::Peaking) - 2.0f64).abs() < 0.01); // +6 dB
        assert!((rms_of_tone(1000.0, FilterKind::BandPass) - 1.0).abs() < 0.01);
        let mut y = vec![0.5f32; 100];
        assert!(biquad(&mut y, 22050, FilterKind::LowPass, 20000.0, 0.7, 0.0).is_err());
        assert!(biquad(&mut y, 22050, FilterKind::LowPass, 1000.0, 0.0, 0.0).is_err());
    }
    #[test]
    fn compressor_reduces_loud_parts() {
        let sr = 22050;
        let mut y: Vec<f32> = (0..sr)
            .map(|i| (if i < sr / 2 { 0.9 } else { 0.01 }) * ((i as f32) * 0.1).sin())
            .collect();
        let orig = y.clone();
        compress(&mut y, sr as u32, &Compressor::default()).unwrap();
        let peak = |s: &[f32]| s.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(peak(&y[sr / 4..sr / 2]) < 0.5 * peak(&orig[sr / 4..sr / 2]));
        assert!((peak(&y[3 * sr / 4..]) - peak(&orig[3 * sr / 4..])).abs() < 1e-3);
        assert!(compress(
            &mut y,
            22050,
            &Compressor {
                ratio: 0.5,
                ..Default::default()
            }
        )
        .is_err());
    }
}
