//! Level, noise, mixing, polarity, cropping, shifting and clipping.

use crate::error::{check_signal, invalid, positive, AugmentError, Result};
use mirkit_core::rng::Rng;
use realfft::RealFftPlanner;

/// Noise colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseColor {
    /// Flat spectrum.
    #[default]
    White,
    /// Power falling 3 dB per octave (1/f), shaped in the frequency domain.
    Pink,
}

impl std::str::FromStr for NoiseColor {
    type Err = AugmentError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "white" => Ok(Self::White),
            "pink" => Ok(Self::Pink),
            _ => Err(invalid("noise colour", s, "white or pink")),
        }
    }
}

fn power(y: &[f32]) -> f64 {
    y.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / y.len().max(1) as f64
}

/// Gains beyond this many dB either way are refused: ±120 dB is a factor of 10⁶ in
/// amplitude, past any use on audio (and +300 dB would overflow `f32`).
pub const MAX_GAIN_DB: f64 = 120.0;

/// Signal-to-noise ratios accepted when mixing, dB: from −60 (noise 1,000× louder than
/// the music, amplitude) to 120 (noise below 24-bit resolution).
pub const SNR_DB_RANGE: (f64, f64) = (-60.0, 120.0);

/// Multiplies by `10^(db/20)` (`|db|` ≤ [`MAX_GAIN_DB`]).
pub fn gain(y: &mut [f32], db: f64) -> Result<()> {
    crate::error::within("gain_db", db, -MAX_GAIN_DB, MAX_GAIN_DB)?;
    let g = 10f64.powf(db / 20.0) as f32;
    y.iter_mut().for_each(|v| *v *= g);
    Ok(())
}

/// Inverts the polarity.
pub fn invert_polarity(y: &mut [f32]) {
    y.iter_mut().for_each(|v| *v = -*v);
}

/// Unit-power noise of length `n` from `seed`.
pub fn noise(n: usize, color: NoiseColor, seed: u64) -> Vec<f32> {
    let mut rng = Rng::new(seed);
    let mut w: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
    if color == NoiseColor::Pink && n > 2 {
        let mut planner = RealFftPlanner::<f64>::new();
        let f = planner.plan_fft_forward(n);
        let mut spec = f.make_output_vec();
        f.process(&mut w, &mut spec).expect("sizes from plan");
        spec[0] = realfft::num_complex::Complex64::new(0.0, 0.0);
        for (k, c) in spec.iter_mut().enumerate().skip(1) {
            *c /= (k as f64).sqrt();
        }
        if n.is_multiple_of(2) {
            let last = spec.len() - 1;
            spec[last].im = 0.0;
        }
        let inv = planner.plan_fft_inverse(n);
        inv.process(&mut spec, &mut w).expect("sizes from plan");
    }
    let p = w.iter().map(|v| v * v).sum::<f64>() / n.max(1) as f64;
    let s = if p > 0.0 { 1.0 / p.sqrt() } else { 0.0 };
    w.into_iter().map(|v| (v * s) as f32).collect()
}

/// Adds `noise` scaled so that signal power / noise power is `snr_db` (within
/// [`SNR_DB_RANGE`]).
pub fn add_at_snr(y: &mut [f32], other: &[f32], snr_db: f64) -> Result<()> {
    check_signal(y)?;
    crate::error::within("snr_db", snr_db, SNR_DB_RANGE.0, SNR_DB_RANGE.1)?;
    let ps = power(y);
    if ps == 0.0 {
        return Err(AugmentError::Silent("mixing at an SNR"));
    }
    let pn = power(other);
    if pn == 0.0 {
        return Err(AugmentError::Silent("the background/noise"));
    }
    let scale = (ps / pn / 10f64.powf(snr_db / 10.0)).sqrt() as f32;
    for (v, n) in y.iter_mut().zip(other.iter().cycle()) {
        *v += scale * n;
    }
    Ok(())
}

/// Adds white or pink noise at `snr_db` (noise drawn from `seed`).
pub fn add_noise(y: &mut [f32], snr_db: f64, color: NoiseColor, seed: u64) -> Result<()> {
    check_signal(y)?;
    crate::error::within("snr_db", snr_db, SNR_DB_RANGE.0, SNR_DB_RANGE.1)?;
    let n = noise(y.len(), color, seed);
    add_at_snr(y, &n, snr_db)
}

/// Mixes `background` (looped, starting at `offset`) at `snr_db`.
pub fn mix_background(y: &mut [f32], background: &[f32], offset: usize, snr_db: f64) -> Result<()> {
    if background.is_empty() {
        return Err(invalid("background", "0 samples", "must not be empty"));
    }
    check_signal(background)?;
    let bg: Vec<f32> = background
        .iter()
        .cycle()
        .skip(offset % background.len())
        .take(y.len())
        .copied()
        .collect();
    add_at_snr(y, &bg, snr_db)
}

/// Crops (from `offset`) or zero-pads (placing the signal at `offset`) to `length`.
pub fn crop_or_pad(y: &[f32], length: usize, offset: usize) -> Result<Vec<f32>> {
    if length == 0 {
        return Err(invalid("length", 0, "must be positive"));
    }
    if y.len() >= length {
        let o = offset.min(y.len() - length);
        Ok(y[o..o + length].to_vec())
    } else {
        let o = offset.min(length - y.len());
        let mut v = vec![0.0; length];
        v[o..o + y.len()].copy_from_slice(y);
        Ok(v)
    }
}

/// Shifts by `samples` (positive: later); rolls around or fills with zeros.
pub fn time_shift(y: &mut [f32], samples: i64, rollover: bool) {
    let n = y.len() as i64;
    if n == 0 || samples == 0 {
        return;
    }
    if rollover {
        let s = samples.rem_euclid(n) as usize;
        y.rotate_right(s);
    } else if samples.abs() >= n {
        y.iter_mut().for_each(|v| *v = 0.0);
    } else if samples > 0 {
        let s = samples as usize;
        y.copy_within(..y.len() - s, s);
        y[..s].iter_mut().for_each(|v| *v = 0.0);
    } else {
        let s = (-samples) as usize;
        y.copy_within(s.., 0);
        let l = y.len();
        y[l - s..].iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Hard clipping at `±threshold`.
pub fn clip(y: &mut [f32], threshold: f64) -> Result<()> {
    let t = positive("threshold", threshold)? as f32;
    y.iter_mut().for_each(|v| *v = v.clamp(-t, t));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn snr_is_exact_and_colours_differ() {
        let sig: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.05).sin()).collect();
        for color in [NoiseColor::White, NoiseColor::Pink] {
            let mut y = sig.clone();
            add_noise(&mut y, 10.0, color, 3).unwrap();
            let noise: Vec<f32> = y.iter().zip(&sig).map(|(a, b)| a - b).collect();
            let snr = 10.0 * (power(&sig) / power(&noise)).log10();
            assert!((snr - 10.0).abs() < 1e-3, "{color:?}: {snr}");
        }
        // pink: more energy in the lowest tenth of the band than white
        let w = noise(8192, NoiseColor::White, 1);
        let p = noise(8192, NoiseColor::Pink, 1);
        let low = |x: &[f32]| {
            let mut b: Vec<f64> = x.iter().map(|&v| v as f64).collect();
            let f = RealFftPlanner::<f64>::new().plan_fft_forward(b.len());
            let mut s = f.make_output_vec();
            f.process(&mut b, &mut s).unwrap();
            s[1..410].iter().map(|c| c.norm_sqr()).sum::<f64>()
                / s.iter().map(|c| c.norm_sqr()).sum::<f64>()
        };
        assert!(low(&p) > 3.0 * low(&w));
    }
    #[test]
    fn errors() {
        let mut silent = vec![0.0f32; 100];
        assert!(matches!(
            add_noise(&mut silent, 10.0, NoiseColor::White, 1),
            Err(AugmentError::Silent(_))
        ));
        let mut y = vec![0.1f32; 100];
        assert!(add_noise(&mut y, f64::NAN, NoiseColor::White, 1).is_err());
        assert!(gain(&mut y, f64::INFINITY).is_err());
        assert!(clip(&mut y, 0.0).is_err());
        assert!(crop_or_pad(&y, 0, 0).is_err());
        let mut e: Vec<f32> = vec![];
        assert!(matches!(
            add_noise(&mut e, 1.0, NoiseColor::White, 1),
            Err(AugmentError::Empty)
        ));
    }
    #[test]
    fn shifting_and_cropping() {
        let mut y = vec![1.0, 2.0, 3.0, 4.0];
        time_shift(&mut y, 1, true);
        assert_eq!(y, vec![4.0, 1.0, 2.0, 3.0]);
        time_shift(&mut y, -2, false);
        assert_eq!(y, vec![2.0, 3.0, 0.0, 0.0]);
        assert_eq!(
            crop_or_pad(&[1.0, 2.0], 4, 1).unwrap(),
            vec![0.0, 1.0, 2.0, 0.0]
        );
        assert_eq!(crop_or_pad(&[1.0, 2.0, 3.0], 2, 5).unwrap(), vec![2.0, 3.0]);
    }
}
