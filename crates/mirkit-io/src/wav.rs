//! WAV writing with hound (16-bit PCM or 32-bit float), atomic.

use crate::error::{IoError, Result};
use mirkit_core::AudioBuffer;
use std::path::Path;

/// Sample format of a written WAV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WavFormat {
    /// 16-bit integer PCM (values clipped to [-1, 1) and rounded).
    Pcm16,
    /// 32-bit IEEE float (lossless for `f32` audio).
    #[default]
    Float32,
}

/// Writes `audio` to `path`. The data go to a temporary sibling renamed into place on
/// success, so a failure never leaves a partial file under `path` (flushed to disk as
/// [`mirkit_core::npy::Durability::Default`] says).
///
/// ```
/// use mirkit_core::AudioBuffer;
/// use mirkit_io::{load, write_wav, LoadOptions, WavFormat};
/// let tone: Vec<f32> = (0..8000).map(|i| 0.5 * (i as f32 * 0.1).sin()).collect();
/// let path = std::env::temp_dir().join(format!("mirkit-doc-wav-{}.wav", std::process::id()));
/// write_wav(&path, &AudioBuffer::from_mono(tone.clone(), 8000)?, WavFormat::Pcm16)?;
/// let back = load(&path, &LoadOptions { sr: None, ..Default::default() })?;
/// assert!(back.samples().iter().zip(&tone).all(|(a, b)| (a - b).abs() <= 1.0 / 32768.0));
/// # std::fs::remove_file(&path).ok();
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_wav(path: impl AsRef<Path>, audio: &AudioBuffer, format: WavFormat) -> Result<()> {
    let path = path.as_ref();
    mirkit_core::npy::check_output(path)?;
    let tmp = mirkit_core::npy::temp_path(path);
    let werr = |e: &dyn std::fmt::Display| IoError::Write {
        path: path.display().to_string(),
        reason: e.to_string(),
    };
    let spec = hound::WavSpec {
        channels: audio.channels() as u16,
        sample_rate: audio.sample_rate(),
        bits_per_sample: if format == WavFormat::Pcm16 { 16 } else { 32 },
        sample_format: if format == WavFormat::Pcm16 {
            hound::SampleFormat::Int
        } else {
            hound::SampleFormat::Float
        },
    };
    let res = (|| -> std::result::Result<(), hound::Error> {
        let mut w = hound::WavWriter::create(&tmp, spec)?;
        let a = audio.view();
        for i in 0..audio.len() {
            for c in 0..audio.channels() {
                let v = a[[c, i]];
                match format {
                    WavFormat::Pcm16 => {
                        w.write_sample((v * 32768.0).round().clamp(-32768.0, 32767.0) as i16)?
                    }
                    WavFormat::Float32 => w.write_sample(v)?,
                }
            }
        }
        w.finalize()
    })();
    if let Err(e) = res {
        mirkit_core::npy::remove_temp(&tmp);
        return Err(werr(&e));
    }
    std::fs::File::open(&tmp)
        .and_then(|f| {
            mirkit_core::npy::commit(&tmp, path, &f, mirkit_core::npy::Durability::Default)
        })
        .map_err(|e| {
            mirkit_core::npy::remove_temp(&tmp);
            werr(&e)
        })
}
