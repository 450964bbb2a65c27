//! A small, fully specified random generator, so a seed gives the same augmentation,
//! initialisation or dropout mask on every platform and every version of mirkit (no
//! dependence on `rand`'s algorithms). Shared by mirkit-augment and mirkit-nn.
//!
//! xoshiro256** (Blackman & Vigna 2018) seeded through SplitMix64; uniform doubles from the
//! top 53 bits; normals by Box–Muller.

/// Seeded generator.
///
/// ```
/// use mirkit_core::Rng;
/// let (mut a, mut b) = (Rng::new(42), Rng::new(42));
/// let draws: Vec<f64> = (0..3).map(|_| a.range(-1.0, 1.0)).collect();
/// assert_eq!(draws, (0..3).map(|_| b.range(-1.0, 1.0)).collect::<Vec<_>>()); // same seed, same draws
/// // one independent stream per item of a batch: the same whatever the thread order
/// let x = Rng::for_item(42, 7).uniform();
/// assert_eq!(x, Rng::for_item(42, 7).uniform());
/// assert!((0.0..1.0).contains(&x));
/// let mut v = vec![1, 2, 3, 4, 5];
/// Rng::new(1).shuffle(&mut v);
/// assert_eq!(v.len(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rng {
    s: [u64; 4],
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        Self {
            s: [
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x),
                splitmix(&mut x),
            ],
        }
    }
    /// The generator for item `index` of a batch seeded with `seed` (independent of
    /// scheduling, so parallel batches are reproducible).
    pub fn for_item(seed: u64, index: u64) -> Self {
        let mut x = seed ^ index.wrapping_mul(0xD6E8_FEB8_6659_FD93);
        Self::new(splitmix(&mut x))
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let r = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        r
    }
    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
    /// Uniform in [lo, hi] (`lo` when they are equal).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        if hi <= lo {
            lo
        } else {
            lo + (hi - lo) * self.uniform()
        }
    }
    /// Uniform integer in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    /// Shuffles `v` in place (Fisher–Yates from the last element down).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn reproducible_and_well_spread() {
        let a: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(42);
                move |_| r.next_u64()
            })
            .collect();
        let b: Vec<u64> = (0..5)
            .map({
                let mut r = Rng::new(42);
                move |_| r.next_u64()
            })
            .collect();
        assert_eq!(a, b);
        let mut r = Rng::new(1);
        let n = 100_000;
        let (mut s, mut s2) = (0.0, 0.0);
        for _ in 0..n {
            let v = r.normal();
            s += v;
            s2 += v * v;
        }
        assert!((s / n as f64).abs() < 0.02 && ((s2 / n as f64) - 1.0).abs() < 0.02);
        assert_ne!(Rng::for_item(7, 0), Rng::for_item(7, 1));
    }
}
