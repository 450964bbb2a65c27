//! `librosa.load`-style loading and block streaming.

use crate::decode::{path_str, Decoded};
use crate::error::{invalid, IoError, Result};
use crate::resample::{ResampleQuality, StreamResampler};
use mirkit_core::AudioBuffer;
use ndarray::Array2;
use std::path::Path;

/// Options of [`load`], named after `librosa.load`'s arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadOptions {
    /// Target sample rate; `None` keeps the file's native rate (`sr=None`).
    pub sr: Option<u32>,
    /// Average the channels (`mono=True`, the default).
    pub mono: bool,
    /// Start reading this many seconds in (seeks; does not decode what it skips where
    /// the container has an index).
    pub offset: f64,
    /// Read at most this many seconds.
    pub duration: Option<f64>,
    /// Resampler preset.
    pub quality: ResampleQuality,
}

impl Default for LoadOptions {
    /// librosa's defaults: 22050 Hz, mono, whole file, high quality.
    fn default() -> Self {
        Self {
            sr: Some(22050),
            mono: true,
            offset: 0.0,
            duration: None,
            quality: ResampleQuality::High,
        }
    }
}

impl LoadOptions {
    /// Native rate, mono.
    pub fn native() -> Self {
        Self {
            sr: None,
            ..Default::default()
        }
    }
    /// Mono at `sr` Hz.
    pub fn at(sr: u32) -> Self {
        Self {
            sr: Some(sr),
            ..Default::default()
        }
    }
    fn validate(&self) -> Result<()> {
        if let Some(sr) = self
            .sr
            .filter(|r| !(crate::MIN_RATE..=crate::MAX_RATE).contains(r))
        {
            return Err(invalid(
                "sr",
                sr,
                format!(
                    "must be within {}–{} Hz, the rates accepted in headers (or None for the native rate)",
                    crate::MIN_RATE,
                    crate::MAX_RATE
                ),
            ));
        }
        if !(self.offset.is_finite() && self.offset >= 0.0) {
            return Err(invalid(
                "offset",
                self.offset,
                "must be a finite number >= 0",
            ));
        }
        if let Some(d) = self.duration {
            if !(d.is_finite() && d > 0.0) {
                return Err(invalid("duration", d, "must be a finite number > 0"));
            }
        }
        Ok(())
    }
}

fn open_at(path: &Path, opts: &LoadOptions) -> Result<(Decoded, Option<u64>)> {
    opts.validate()?;
    let mut d = Decoded::open(path)?;
    let sr = d.sample_rate as f64;
    // librosa (soundfile backend): start = round(sr * offset), frames = round(sr * duration)
    let start = (opts.offset * sr).round() as u64;
    let limit = opts.duration.map(|t| (t * sr).round() as u64);
    if let Some(n) = d.n_frames {
        if start >= n && n > 0 {
            return Err(invalid(
                "offset",
                opts.offset,
                format!(
                    "is past the end of {} ({:.3} s)",
                    path_str(path),
                    n as f64 / sr
                ),
            ));
        }
    }
    d.seek_frame(start)?;
    Ok((d, limit))
}

/// Loads a file as `librosa.load` does: decode, optional offset/duration, mono mean,
/// resample (mono first, then resample, as librosa).
///
/// ```
/// use mirkit_io::{load, LoadOptions};
/// // y, sr = librosa.load(path, sr=16000, offset=5.0, duration=3.0)
/// let path = "../../data/clips/brahms_hungarian_dance_5.hq.ogg"; // a clip of the repository, 44.1 kHz stereo Ogg Vorbis
/// let opts = LoadOptions { sr: Some(16000), offset: 5.0, duration: Some(3.0), ..Default::default() };
/// let y = load(path, &opts)?;
/// assert_eq!((y.channels(), y.sample_rate(), y.len()), (1, 16000, 48000));
/// // the defaults are librosa's: 22050 Hz, mono
/// assert_eq!(load(path, &LoadOptions::default())?.sample_rate(), 22050);
/// // no file, not audio: a typed error naming the file
/// let e = load("no-such-file.wav", &LoadOptions::default()).unwrap_err();
/// assert!(e.to_string().contains("no-such-file.wav"));
/// # Ok::<(), mirkit_io::IoError>(())
/// ```
pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<AudioBuffer> {
    let path = path.as_ref();
    let (mut d, limit) = open_at(path, opts)?;
    let native = d.sample_rate;
    if opts.mono {
        return load_mono(path, d, limit, opts);
    }
    let mut inter: Vec<f32> = Vec::new();
    let mut ch = d.channels.max(1);
    let mut frames = 0u64;
    while let Some((block, c)) = d.next_block()? {
        ch = c.max(1);
        let n = (block.len() / ch) as u64;
        let take = match limit {
            Some(l) => n.min(l - frames) as usize,
            None => n as usize,
        };
        inter.extend_from_slice(&block[..take * ch]);
        frames += take as u64;
        if limit.is_some_and(|l| frames >= l) {
            break;
        }
    }
    if frames == 0 {
        return Err(IoError::NoSamples {
            path: path_str(path),
        });
    }
    let n = frames as usize;
    let mut planar = Array2::<f32>::zeros((ch, n));
    for (i, fr) in inter.chunks_exact(ch).enumerate() {
        for (c, &v) in fr.iter().enumerate() {
            planar[[c, i]] = v;
        }
    }
    drop(inter);
    let mut buf = AudioBuffer::new(planar, native)?;
    if opts.mono {
        buf = buf.to_mono();
    }
    match opts.sr {
        Some(sr) if sr != native => {
            let mut rows = Vec::with_capacity(buf.channels());
            for c in 0..buf.channels() {
                let x = buf.channel(c).to_vec();
                rows.push(crate::resample::resample(&x, native, sr, opts.quality)?);
            }
            let m = rows[0].len();
            let flat: Vec<f32> = rows.into_iter().flatten().collect();
            Ok(AudioBuffer::new(
                Array2::from_shape_vec((buf.channels(), m), flat).expect("sizes"),
                sr,
            )?)
        }
        _ => Ok(buf),
    }
}

/// [`load`] with `mono`: the decoder's mono blocks (planar downmix, or the direct WAV
/// path) appended to one vector, then resampled in one call — no interleaved copy, no
/// transpose, no second mono pass. The mean is the same as [`AudioBuffer::to_mono`]'s but
/// for the sign of zero (`−0.0` where every channel is `−0.0`; tested).
fn load_mono(
    path: &Path,
    mut d: Decoded,
    limit: Option<u64>,
    opts: &LoadOptions,
) -> Result<AudioBuffer> {
    let native = d.sample_rate;
    // a hint only (headers can lie, #19): at most 2^24 samples reserved up front
    let announced = d.n_frames.map(|n| n.saturating_sub(d.position()));
    let hint = match (announced, limit) {
        (Some(n), Some(l)) => n.min(l),
        (Some(n), None) => n,
        (None, Some(l)) => l,
        (None, None) => 0,
    };
    let mut y: Vec<f32> = Vec::with_capacity(hint.min(1 << 24) as usize);
    let mut frames = 0u64;
    while let Some(n) = d.next_mono_block(&mut y)? {
        let take = limit.map_or(n as u64, |l| (n as u64).min(l - frames));
        frames += take;
        y.truncate(frames as usize);
        if limit.is_some_and(|l| frames >= l) {
            break;
        }
    }
    if frames == 0 {
        return Err(IoError::NoSamples {
            path: path_str(path),
        });
    }
    let y = match opts.sr {
        Some(sr) if sr != native => {
            let out = crate::resample::resample(&y, native, sr, opts.quality)?;
            return Ok(AudioBuffer::from_mono(out, sr)?);
        }
        _ => y,
    };
    Ok(AudioBuffer::from_mono(y, native)?)
}

/// Streams a file as mono blocks at a target rate, in memory that does not grow with the
/// file's length. Iterate to get `Result<Vec<f32>>` blocks; the concatenation equals
/// [`load`] with the same options (mono).
///
/// ```
/// use mirkit_io::{AudioStream, LoadOptions};
/// let opts = LoadOptions { sr: Some(16000), ..Default::default() };
/// let mut peak = 0f32;
/// for block in AudioStream::open("../../data/clips/brahms_hungarian_dance_5.hq.ogg", &opts)? {
///     peak = block?.iter().fold(peak, |m, x| m.max(x.abs())); // one block at a time
/// }
/// assert!(peak > 0.1);
/// # Ok::<(), mirkit_io::IoError>(())
/// ```
pub struct AudioStream {
    dec: Decoded,
    rs: Option<StreamResampler>,
    limit: Option<u64>,
    frames: u64,
    finished: bool,
    out_rate: u32,
    /// the current packet as mono, reused
    mono: Vec<f32>,
    timings: StreamTimings,
}

/// Where an [`AudioStream`]'s time went so far (wall clock, on the calling thread).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StreamTimings {
    /// Demuxing and decoding to mono.
    pub decode: std::time::Duration,
    /// Resampling.
    pub resample: std::time::Duration,
}

impl std::fmt::Debug for AudioStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AudioStream")
            .field("file", &self.dec.path())
            .field("rate", &self.out_rate)
            .finish()
    }
}

impl AudioStream {
    /// Opens `path` for streaming with `opts` (`mono` is implied).
    pub fn open(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<Self> {
        let (dec, limit) = open_at(path.as_ref(), opts)?;
        let native = dec.sample_rate;
        let out_rate = opts.sr.unwrap_or(native);
        let rs = Some(StreamResampler::new(native, out_rate, opts.quality)?);
        Ok(Self {
            dec,
            rs,
            limit,
            frames: 0,
            finished: false,
            out_rate,
            mono: Vec::new(),
            timings: StreamTimings::default(),
        })
    }
    /// Output sample rate.
    pub fn sample_rate(&self) -> u32 {
        self.out_rate
    }
    /// The file's header info.
    pub fn info(&self) -> crate::AudioInfo {
        self.dec.info()
    }
    /// Native frames consumed so far.
    pub fn frames_read(&self) -> u64 {
        self.frames
    }
    /// Time spent decoding and resampling so far.
    pub fn timings(&self) -> StreamTimings {
        self.timings
    }
}

impl Iterator for AudioStream {
    type Item = Result<Vec<f32>>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.finished {
            return None;
        }
        let mut out = Vec::new();
        loop {
            let limit_hit = self.limit.is_some_and(|l| self.frames >= l);
            self.mono.clear();
            let t0 = std::time::Instant::now();
            let block = if limit_hit {
                Ok(None)
            } else {
                // straight to mono from the decoder's planar buffer (no interleaving)
                self.dec.next_mono_block(&mut self.mono)
            };
            let t1 = std::time::Instant::now();
            self.timings.decode += t1 - t0;
            match block {
                Err(e) => {
                    self.finished = true;
                    return Some(Err(e));
                }
                Ok(Some(n)) => {
                    let take = self
                        .limit
                        .map(|l| (n as u64).min(l - self.frames))
                        .unwrap_or(n as u64) as usize;
                    self.mono.truncate(take);
                    self.frames += take as u64;
                    let r = self
                        .rs
                        .as_mut()
                        .expect("present until finish")
                        .push(&self.mono, &mut out);
                    self.timings.resample += t1.elapsed();
                    if let Err(e) = r {
                        self.finished = true;
                        return Some(Err(e));
                    }
                    if !out.is_empty() {
                        return Some(Ok(out));
                    }
                }
                Ok(None) => {
                    self.finished = true;
                    if self.frames == 0 {
                        return Some(Err(IoError::NoSamples {
                            path: self.dec.path().to_string(),
                        }));
                    }
                    let rs = self.rs.take().expect("present");
                    let r = rs.finish(&mut out);
                    self.timings.resample += t1.elapsed();
                    if let Err(e) = r {
                        return Some(Err(e));
                    }
                    return if out.is_empty() { None } else { Some(Ok(out)) };
                }
            }
        }
    }
}

/// [`crate::decode::downmix_into`] into a new vector (tests).
#[cfg(test)]
fn downmix(b: &[f32], ch: usize, take: usize) -> Vec<f32> {
    let mut out = Vec::new();
    crate::decode::downmix_into(b, ch, take, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Decoded;

    /// The stereo fast path gives the generic mean's bits, signed zeros, subnormals and
    /// overflow included.
    #[test]
    fn stereo_downmix_has_the_generic_bits() {
        let v = [
            0.0f32, -0.0, 1e-40, -1e-40, 0.3, -0.7, 1.0, 3.4e38, -3.4e38, 1e-38,
        ];
        let b: Vec<f32> = v
            .iter()
            .flat_map(|&a| v.iter().flat_map(move |&c| [a, c]))
            .collect();
        let n = b.len() / 2;
        let fast = downmix(&b, 2, n);
        let generic: Vec<f32> = b
            .chunks_exact(2)
            .map(|f| f.iter().sum::<f32>() / 2.0)
            .collect();
        assert_eq!(fast.len(), n);
        for (i, (x, y)) in fast.iter().zip(&generic).enumerate() {
            assert_eq!(x.to_bits(), y.to_bits(), "{:?}", &b[2 * i..2 * i + 2]);
        }
        assert_eq!(downmix(&b, 2, 3).len(), 3);
        assert_eq!(
            downmix(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 3, 2),
            vec![2.0, 5.0]
        );
    }

    /// The decoder's planar mono path gives the bits of interleaving and then averaging,
    /// for every fixture format (integer PCM of 8–32 bits, float, FLAC, Vorbis, MP3, AAC,
    /// AIFF), the stereo clips, and a generated 3-channel float WAV with signed zeros,
    /// subnormals and values whose sum overflows.
    #[test]
    fn planar_mono_equals_interleaved_then_downmix() {
        let root = std::path::Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("../..");
        let mut files: Vec<std::path::PathBuf> =
            std::fs::read_dir(root.join("tests/fixtures/formats"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| !p.ends_with("not_audio.mp3") && !p.ends_with("nan_f32.wav"))
                .collect();
        files.push(root.join("data/clips/sorohanro_-_solo-trumpet-06.hq.ogg"));
        let three = std::env::temp_dir().join(format!("mirkit-3ch-{}.wav", std::process::id()));
        {
            let spec = hound::WavSpec {
                channels: 3,
                sample_rate: 8000,
                bits_per_sample: 32,
                sample_format: hound::SampleFormat::Float,
            };
            let mut w = hound::WavWriter::create(&three, spec).unwrap();
            let v = [
                0.0f32, -0.0, 1e-40, -1e-40, 0.3, -0.7, 3.4e38, 3.4e38, -1e-38,
            ];
            for i in 0..3000 {
                for c in 0..3 {
                    w.write_sample(v[(i * 7 + c * 5) % v.len()]).unwrap();
                }
            }
            w.finalize().unwrap();
        }
        files.push(three.clone());
        let mut raw = 0;
        for f in &files {
            for seek in [0u64, 1234] {
                let mut a = Decoded::open(f).unwrap();
                let mut b = Decoded::open(f).unwrap();
                a.seek_frame(seek).unwrap();
                b.seek_frame(seek).unwrap();
                raw += b.is_raw() as usize;
                let mut want = Vec::new();
                while let Some((block, ch)) = a.next_block().unwrap() {
                    want.extend(downmix(block, ch, block.len() / ch));
                }
                let mut got = Vec::new();
                while b.next_mono_block(&mut got).unwrap().is_some() {}
                assert_eq!(got.len(), want.len(), "{} from {seek}", f.display());
                for (i, (x, y)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(x.to_bits(), y.to_bits(), "{} frame {i}", f.display());
                }
            }
        }
        // pcm16.wav, f32.wav and the 3-channel (extensible) float WAV, at both positions,
        // go through the direct WAV path; 24/32-bit PCM and 8-bit stay with symphonia
        assert_eq!(raw, 6);
        std::fs::remove_file(&three).unwrap();
        // a non-finite float sample is an error naming its frame, on both paths
        let nan = root.join("tests/fixtures/formats/nan_f32.wav");
        let mut d = Decoded::open(&nan).unwrap();
        assert!(d.is_raw());
        let e = loop {
            match d.next_mono_block(&mut Vec::new()) {
                Err(e) => break e,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error"),
            }
        };
        let mut d2 = Decoded::open(&nan).unwrap();
        let e2 = loop {
            match d2.next_block() {
                Err(e) => break e,
                Ok(Some(_)) => continue,
                Ok(None) => panic!("no error"),
            }
        };
        assert_eq!(e.to_string(), e2.to_string());
    }
}
