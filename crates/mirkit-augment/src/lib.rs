//! # mirkit-augment — seeded audio augmentation for music
//!
//! Time-stretch and pitch-shift by phase vocoder (`librosa.effects` equivalents, plus an
//! identity-phase-locked mode with less phasiness), gain, white/pink noise at an SNR,
//! background mixing, polarity, crop/pad, time shift, biquad filters, a compressor and
//! clipping — composed with chains, one-of and random-apply, driven by a seeded RNG,
//! and recorded so that runs replay exactly and labels follow (a pitch shift moves a key,
//! a stretch moves a tempo), as muda's deformation history does.
//!
//! ```
//! use mirkit_augment::{Augment, Range, Rng, PhaseMode, semitones_shifted};
//! let y: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.06).sin() * 0.5).collect();
//! let aug = Augment::Chain(vec![
//!     Augment::PitchShift { steps: Range::new(-2.0, 2.0)?, bins_per_octave: 12, mode: PhaseMode::Librosa },
//!     Augment::Gain { db: Range::new(-6.0, 0.0)? },
//! ]);
//! let (mut a, mut b) = (y.clone(), y.clone());
//! let (mut ra, mut rb) = (Vec::new(), Vec::new());
//! aug.apply(&mut a, 22050, &mut Rng::new(7), &mut ra)?;
//! aug.apply(&mut b, 22050, &mut Rng::new(7), &mut rb)?;
//! assert_eq!(a, b);                       // same seed, same bits
//! assert_eq!(mirkit_augment::replay(&ra, &y, 22050)?, a); // records replay exactly
//! println!("key moved by {:.2} semitones", semitones_shifted(&ra));
//! # Ok::<(), mirkit_augment::AugmentError>(())
//! ```
//!
//! ## Design decisions
//! * The vocoder runs on unit phasors (`X/|X|`) instead of angles: librosa's phase update
//!   `φ_adv + princarg(φ₁ − φ₀ − φ_adv)` equals `φ₁ − φ₀` modulo 2π, so multiplying
//!   phasors computes the same output without any trigonometric call.
//! * A fixed, documented RNG (xoshiro256**) rather than `rand`, so seeds stay valid across
//!   versions; parallel batches derive one generator per item.
//! * Every drawn parameter is recorded, including the seed of generated noise, so a record
//!   is enough to replay a run bit for bit.
//! * Mono `f32` signals in, same out; invalid parameters, empty, silent or non-finite
//!   audio are typed errors and leave the input unchanged.

#![warn(missing_docs)]

mod compose;
mod error;
pub mod filter;
pub mod simple;
pub mod stretch;

pub use compose::{
    apply_batch, records_from_json, records_to_json, replay, semitones_shifted, shift_key,
    tempo_factor, Applied, Augment, Range,
};
pub use error::{AugmentError, Result};
pub use filter::{biquad, compress, Compressor, FilterKind};
pub use mirkit_core::rng::{self, Rng};
pub use simple::{
    add_noise, clip, crop_or_pad, gain, invert_polarity, mix_background, time_shift, NoiseColor,
    MAX_GAIN_DB, SNR_DB_RANGE,
};
pub use stretch::{
    phase_vocoder, pitch_shift, resample_ratio, spectral_inconsistency, time_stretch, PhaseMode,
};
