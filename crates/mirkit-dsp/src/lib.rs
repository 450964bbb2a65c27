//! # mirkit-dsp — librosa-exact spectral features, fast
//!
//! Windows, framing and padding, STFT/iSTFT, power spectrograms, mel filterbanks
//! (Slaney and HTK), decibel and `log(1 + C·x)` compression, MFCC, deltas and per-band
//! standardisation — with librosa's parameter names, shapes (`(bins, frames)`) and
//! numbers, and presets for librosa, torchaudio and the pretrained taggers' front ends.
//! This crate never depends on Candle: feature extraction alone builds in seconds.
//!
//! ```
//! use mirkit_dsp::{FeatureConfig, FeatureExtractor, Compression, DbConfig};
//! // librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050), top_db=80)
//! let mut cfg = FeatureConfig::librosa();
//! cfg.compression = Compression::Db(DbConfig::default());
//! let ex = FeatureExtractor::new(cfg).unwrap();
//! let y: Vec<f32> = (0..22050).map(|i| (i as f32 * 0.1).sin()).collect();
//! let logmel = ex.compute(&y).unwrap();
//! assert_eq!(logmel.view().dim(), (128, 1 + 22050 / 512));
//! ```
//!
//! ## Design decisions
//! * **Parity first.** Every formula is librosa 0.11's (or torchaudio's where a preset
//!   says so); filterbanks and windows are computed in `f64` and rounded once. Parity
//!   fixtures come from `tools/make_fixtures.py` and tests state their tolerances.
//! * **One pass, no big temporaries.** [`FeatureExtractor`] windows each frame straight
//!   from the signal (only edge frames see padding) and computes power spectra in `f64`
//!   (librosa's effective precision): for power-of-two `n_fft` four frames at a time, one
//!   per AVX2 lane (`lanes.rs`: a radix-4 FFT of the packed even/odd samples and the real
//!   split, fused multiply-adds, the same bits with or without AVX2), otherwise two frames
//!   per complex FFT (`paired.rs`: both power spectra from `Z[k]` and `Z[N−k]`). Lane `l`
//!   of the batch path walks the `l`-th quarter of the frames, so the signal is read as
//!   four sequential streams that the hardware prefetchers follow. A *sparse* mel
//!   filterbank (≈ 2 multiply-adds per FFT bin instead of `n_mels`) is applied across
//!   16 frames at once with a vectorised `logf`, written straight into the output; the
//!   check for NaN/Inf samples rides along the transform. Log-mel takes ≈ 1.1–1.25× the
//!   time of realfft's `f64` FFTs alone (docs/benchmarks.md).
//! * **Streaming equals batch.** [`FrameStreamer`] produces the same frames
//!   bit-for-bit from blocks, in memory that does not grow with the signal.
//! * **Errors, not panics.** Invalid parameters (`hop_length = 0`, `fmax` above Nyquist,
//!   `n_mels = 0`...), empty or non-finite signals give a [`DspError`] naming the problem;
//!   a signal shorter than `n_fft` is padded when centring (as librosa does) and an
//!   error otherwise (as librosa raises).

#![warn(missing_docs)]

pub mod cepstral;
pub mod db;
mod error;
pub mod features;
mod lanes;
pub mod mel;
mod paired;
pub mod stft;
pub mod window;

pub use cepstral::{dct2_ortho, delta, mfcc_basis, mfcc_from_log_mel, standardize};
pub use db::{amplitude_to_db, db_to_amplitude, db_to_power, power_to_db, DbConfig, DbRef};
pub use error::{check_finite, DspError, Result};
pub use features::{
    Compression, FeatureConfig, FeatureExtractor, FrameStreamer, MelSettings, MfccSettings, Preset,
    Stage2,
};
pub use mel::{
    hz_to_mel, mel_filterbank, mel_frequencies, mel_to_hz, MelArithmetic, MelConfig, MelFilterbank,
    MelNorm, MelScale,
};
pub use realfft::num_complex::Complex32;
pub use stft::{
    istft, istft_frames, pad, padded_segment, stft, OverlapAdd, PadMode, Stft, StftConfig,
};
pub use window::{get_window, WindowKind};
