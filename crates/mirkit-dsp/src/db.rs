//! Logarithmic compression: decibels (`power_to_db`, `amplitude_to_db` and inverses) and
//! `log10(1 + C·x)`.
//!
//! Semantics are librosa 0.11's: `power_to_db(S) = 10·log10(max(amin, S)) −
//! 10·log10(max(amin, ref))`, then, if `top_db` is set, values are floored at
//! `max − top_db`. The logarithm is a branch-free, vectorisable port of Cephes' `logf`
//! (≤ 2 ulp), which keeps the log from dominating the log-mel time; inputs below the
//! smallest normal `f32` fall back to the standard library.

use crate::error::{invalid, Result};

/// The reference value for dB conversion.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DbRef {
    /// A fixed reference (librosa `ref=1.0` default).
    Value(f32),
    /// The maximum of the input (librosa `ref=np.max`).
    Max,
}

/// dB conversion settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DbConfig {
    /// Reference.
    pub reference: DbRef,
    /// Floor applied before the log (power: 1e-10 default; amplitude: 1e-5).
    pub amin: f32,
    /// Dynamic range kept below the maximum (librosa default 80 dB), or none.
    pub top_db: Option<f32>,
}

impl Default for DbConfig {
    fn default() -> Self {
        Self {
            reference: DbRef::Value(1.0),
            amin: 1e-10,
            top_db: Some(80.0),
        }
    }
}

impl DbConfig {
    /// Checks `amin > 0`, `top_db >= 0`, a positive finite fixed reference.
    pub fn validate(&self) -> Result<()> {
        if !(self.amin.is_finite() && self.amin > 0.0) {
            return Err(invalid("amin", self.amin, "must be strictly positive"));
        }
        if let Some(t) = self.top_db {
            if !(t.is_finite() && t >= 0.0) {
                return Err(invalid("top_db", t, "must be non-negative"));
            }
        }
        if let DbRef::Value(r) = self.reference {
            if !(r.is_finite() && r >= 0.0) {
                return Err(invalid("ref", r, "must be a finite non-negative number"));
            }
        }
        Ok(())
    }
}

const SQRTHF: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// Natural log of a positive normal `f32`, branch free.
///
/// Range reduction as in Cephes `logf` (`x = m·2^e`, `m ∈ [√½, √2)`, `ln 2` split in
/// two so `e·ln 2` adds exactly), then `ln m = 2·atanh(u)` with `u = (m − 1)/(m + 1)`,
/// `|u| ≤ 0.1716`, summed to the `u⁹` term: the first term left out, `2u¹¹/11`, is below
/// 6e-10, so the error is rounding only (within 3e-7 of `max(1, |ln x|)`, tested). Five
/// multiply-adds and a division instead of Cephes' degree-9 polynomial: the log of
/// every log-mel value is a visible share of the feature time.
#[inline(always)]
pub fn ln_fast(x: f32) -> f32 {
    let bits = x.to_bits();
    // exponent and mantissa in [0.5, 1); all further steps are plain float arithmetic
    // (no branches, no integer-to-float selects) so loops over slices vectorise
    let e0 = ((bits >> 23) & 0xff) as i32 as f32 - 126.0;
    let m0 = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let lt = if m0 < SQRTHF { 1.0f32 } else { 0.0 };
    let ef = e0 - lt;
    let m = m0 + m0 * lt; // [√½, √2); m − 1 below is exact (Sterbenz)
    let u = (m - 1.0) / (m + 1.0);
    let u2 = u * u;
    let q = u2 * (((u2 * (1.0 / 9.0) + 1.0 / 7.0) * u2 + 0.2) * u2 + 1.0 / 3.0);
    let lnm = 2.0 * (u + u * q);
    (lnm + -2.121_944_4e-4 * ef) + 0.693_359_4 * ef
}

/// `scale·log10(max(x, floor)) − offset` in place over a slice; vectorises.
pub fn log10_scaled_inplace(x: &mut [f32], floor: f32, scale: f32, offset: f32) {
    let k = scale * std::f32::consts::LOG10_E;
    if floor >= f32::MIN_POSITIVE {
        for v in x.iter_mut() {
            *v = k * ln_fast(v.max(floor)) - offset;
        }
    } else {
        for v in x.iter_mut() {
            *v = scale * v.max(floor).log10() - offset;
        }
    }
}

fn ref_value(s: &[f32], r: DbRef) -> f32 {
    match r {
        DbRef::Value(v) => v,
        DbRef::Max => s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)),
    }
}

/// Applies `top_db` flooring in place.
pub fn apply_top_db(s: &mut [f32], top_db: Option<f32>) {
    if let Some(t) = top_db {
        let mx = s.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let lo = mx - t;
        for v in s.iter_mut() {
            *v = v.max(lo);
        }
    }
}

/// `librosa.power_to_db`, in place.
pub fn power_to_db_inplace(s: &mut [f32], cfg: &DbConfig) -> Result<()> {
    cfg.validate()?;
    let r = ref_value(s, cfg.reference);
    let offset = 10.0 * (cfg.amin.max(r) as f64).log10() as f32;
    log10_scaled_inplace(s, cfg.amin, 10.0, offset);
    apply_top_db(s, cfg.top_db);
    Ok(())
}

/// `librosa.power_to_db`.
///
/// ```
/// use mirkit_dsp::{power_to_db, DbConfig, DbRef};
/// let s = [1.0f32, 0.1, 1e-12];
/// // librosa.power_to_db(s, ref=np.max, top_db=None): amin 1e-10 floors the last value
/// let db = power_to_db(&s, &DbConfig { reference: DbRef::Max, top_db: None, ..Default::default() })?;
/// assert!((db[1] + 10.0).abs() < 1e-5 && (db[2] + 100.0).abs() < 1e-4);
/// # Ok::<(), mirkit_dsp::DspError>(())
/// ```
pub fn power_to_db(s: &[f32], cfg: &DbConfig) -> Result<Vec<f32>> {
    let mut v = s.to_vec();
    power_to_db_inplace(&mut v, cfg)?;
    Ok(v)
}

/// `librosa.amplitude_to_db` (`cfg.amin` is the amplitude floor, default 1e-5).
pub fn amplitude_to_db(s: &[f32], cfg: &DbConfig) -> Result<Vec<f32>> {
    cfg.validate()?;
    let mag: Vec<f32> = s.iter().map(|v| v.abs()).collect();
    let r = ref_value(&mag, cfg.reference).abs();
    let mut p: Vec<f32> = mag.iter().map(|v| v * v).collect();
    power_to_db_inplace(
        &mut p,
        &DbConfig {
            reference: DbRef::Value(r * r),
            amin: cfg.amin * cfg.amin,
            top_db: cfg.top_db,
        },
    )?;
    Ok(p)
}

/// `librosa.db_to_power`: `ref · 10^(S/10)`.
pub fn db_to_power(s: &[f32], reference: f32) -> Vec<f32> {
    s.iter().map(|&v| reference * 10f32.powf(0.1 * v)).collect()
}

/// `librosa.db_to_amplitude`: `ref · 10^(S/20)`.
pub fn db_to_amplitude(s: &[f32], reference: f32) -> Vec<f32> {
    s.iter()
        .map(|&v| reference * 10f32.powf(0.05 * v))
        .collect()
}

/// `log10(1 + c·x)` in place (musicnn's compression with `c = 10000`).
pub fn log1p_compress_inplace(s: &mut [f32], c: f32) -> Result<()> {
    if !(c.is_finite() && c > 0.0) {
        return Err(invalid("C", c, "must be positive and finite"));
    }
    for v in s.iter_mut() {
        *v = std::f32::consts::LOG10_E * ln_fast(1.0 + c * v.max(0.0));
    }
    Ok(())
}

/// Rounds an `f32` to the nearest IEEE half-precision value (ties to even), returned as
/// `f32`: what `numpy.astype(np.float16)` does (musicnn casts its mel to float16).
#[inline]
pub fn round_to_f16(x: f32) -> f32 {
    let bits = x.to_bits();
    let sign = bits & 0x8000_0000;
    let abs = f32::from_bits(bits & 0x7fff_ffff);
    if abs.is_nan() {
        return x;
    }
    if abs >= 65520.0 {
        return f32::from_bits(sign | 0x7f80_0000); // overflow to inf
    }
    if abs < 6.103_515_6e-5 {
        // subnormal half: quantum 2^-24
        let q = 5.960_464_5e-8f32;
        let r = (abs / q).round_ties_even() * q;
        return f32::from_bits(sign | r.to_bits());
    }
    // normal half: 10 mantissa bits, drop 13 with round-to-nearest-even
    let b = abs.to_bits();
    let lsb = (b >> 13) & 1;
    let rounded = (b + 0x0fff + lsb) & !0x1fff;
    f32::from_bits(sign | rounded)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn fast_log_is_accurate() {
        let mut worst = 0.0f64;
        let mut x = 1e-30f32;
        while x < 1e30 {
            let a = ln_fast(x) as f64;
            let b = (x as f64).ln();
            worst = worst.max((a - b).abs() / b.abs().max(1.0));
            x *= 1.0137;
        }
        assert!(worst < 3e-7, "worst relative error {worst}");
    }
    #[test]
    fn power_to_db_semantics() {
        let s = [1.0, 0.1, 1e-12, 100.0];
        let d = power_to_db(
            &s,
            &DbConfig {
                reference: DbRef::Value(1.0),
                amin: 1e-10,
                top_db: None,
            },
        )
        .unwrap();
        let e = [0.0, -10.0, -100.0, 20.0];
        for (a, b) in d.iter().zip(e) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        let d = power_to_db(
            &s,
            &DbConfig {
                reference: DbRef::Max,
                amin: 1e-10,
                top_db: Some(80.0),
            },
        )
        .unwrap();
        assert!((d[3]).abs() < 1e-5 && (d[2] + 80.0).abs() < 1e-4);
        assert!(power_to_db(
            &s,
            &DbConfig {
                top_db: Some(-1.0),
                ..Default::default()
            }
        )
        .is_err());
        assert!(power_to_db(
            &s,
            &DbConfig {
                amin: 0.0,
                ..Default::default()
            }
        )
        .is_err());
    }
    #[test]
    fn half_rounding() {
        assert_eq!(round_to_f16(1.0), 1.0);
        assert_eq!(round_to_f16(1.0 + 1.0 / 2048.0), 1.0); // tie -> even
        assert_eq!(round_to_f16(1.0 + 3.0 / 2048.0), 1.0 + 2.0 / 1024.0);
        assert_eq!(round_to_f16(65504.0), 65504.0);
        assert!(round_to_f16(70000.0).is_infinite());
        assert_eq!(round_to_f16(1e-8), 0.0);
        assert_eq!(round_to_f16(-0.333333), -0.33325195);
    }
}
