//! Decoding with symphonia: file info, packet-by-packet decoding, seeking.

use crate::error::{IoError, Result};
use std::fs::File;
use std::path::Path;
use symphonia::core::audio::{AudioBufferRef, SampleBuffer, Signal};
use symphonia::core::codecs::{CodecRegistry, Decoder, DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::conv::IntoSample;
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::{FormatOptions, FormatReader, SeekMode, SeekTo};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;
use symphonia::core::units::Time;

/// What a file contains, read from its headers without decoding the audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// Sample rate, Hz.
    pub sample_rate: u32,
    /// Number of channels.
    pub channels: usize,
    /// Frames per channel, when the container states it.
    pub n_frames: Option<u64>,
    /// Duration in seconds, when the frame count is known.
    pub duration_secs: Option<f64>,
    /// Codec short name (`pcm_s16le`, `vorbis`, `flac`, `mp3`, `aac`...).
    pub codec: String,
    /// Bits per sample for PCM-like codecs.
    pub bits_per_sample: Option<u32>,
    /// File size in bytes.
    pub file_bytes: u64,
}

fn codecs() -> &'static CodecRegistry {
    symphonia::default::get_codecs()
}

pub(crate) fn path_str(p: &Path) -> String {
    p.display().to_string()
}

/// Lowest native sample rate accepted (telephone audio is 8 kHz; 1 kHz leaves room for
/// sensor-like recordings).
pub const MIN_RATE: u32 = 1_000;
/// Highest native sample rate accepted (DXD / 8× DSD-derived PCM is 352.8–768 kHz).
pub const MAX_RATE: u32 = 1_536_000;

/// An open, decodable audio file.
pub struct Decoded {
    path: String,
    format: Box<dyn FormatReader>,
    decoder: Box<dyn Decoder>,
    track_id: u32,
    /// native sample rate
    pub sample_rate: u32,
    /// channel count
    pub channels: usize,
    /// frames announced by the container
    pub n_frames: Option<u64>,
    codec: String,
    bits: Option<u32>,
    file_bytes: u64,
    decoded: u64,
    buf: Option<SampleBuffer<f32>>,
    seek_target: Option<u64>,
    seek_by_ts: bool,
    done: bool,
    /// plain 16-bit / float WAV read directly for the mono path (see [`RawWav`])
    raw: Option<RawWav>,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("path", &self.path)
            .field("sample_rate", &self.sample_rate)
            .finish()
    }
}

impl Decoded {
    /// Opens and probes a file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let ps = path_str(p);
        let file = File::open(p).map_err(|source| IoError::Open {
            path: ps.clone(),
            cause: source,
        })?;
        let file_bytes = file
            .metadata()
            .map_err(|source| IoError::Open {
                path: ps.clone(),
                cause: source,
            })?
            .len();
        let regular = file.metadata().map(|m| m.is_file()).unwrap_or(false);
        if !regular {
            // a device or pipe reports 0 bytes: say what it is rather than "empty"
            return Err(IoError::Unsupported {
                path: ps,
                reason: "not a regular file (a device, pipe or folder)".into(),
            });
        }
        if file_bytes == 0 {
            return Err(IoError::EmptyFile { path: ps });
        }
        // MP4 and FLAC: symphonia sizes allocations from header fields before checking
        // them against the file, so those fields are checked first
        let mut file = file;
        crate::headers::check_file(&mut file, file_bytes).map_err(|reason| {
            IoError::Unsupported {
                path: ps.clone(),
                reason,
            }
        })?;
        // 1 MiB reads (symphonia's default ring buffer of 64 KiB refills in ~7 KiB reads:
        // 3,650 read calls for a 26 MB WAV)
        let mss = MediaSourceStream::new(
            Box::new(file),
            symphonia::core::io::MediaSourceStreamOptions {
                buffer_len: 1 << 20,
            },
        );
        let mut hint = Hint::new();
        if let Some(ext) = p.extension().and_then(|e| e.to_str()) {
            hint.with_extension(ext);
        }
        let fo = FormatOptions {
            enable_gapless: true,
            ..Default::default()
        };
        let probed = no_panic(|| {
            symphonia::default::get_probe().format(&hint, mss, &fo, &MetadataOptions::default())
        })
        .map_err(|why| IoError::Unsupported {
            path: ps.clone(),
            reason: why,
        })?
        .map_err(|e| IoError::Unsupported {
            path: ps.clone(),
            // in the user's terms first; the decoder's own words after
            reason: format!(
                "not an audio file mirkit can read (WAV, AIFF, FLAC, Ogg Vorbis, MP3, \
                 AAC/M4A, CAF, MKV/WebM were tried; the decoder said: {e})"
            ),
        })?;
        let format = probed.format;
        let track = format
            .tracks()
            .iter()
            .find(|t| {
                t.codec_params.codec != CODEC_TYPE_NULL && t.codec_params.sample_rate.is_some()
            })
            .ok_or_else(|| IoError::NoAudioTrack { path: ps.clone() })?;
        let params = track.codec_params.clone();

        let track_id = track.id;
        let decoder = no_panic(|| codecs().make(&params, &DecoderOptions::default()))
            .map_err(|why| IoError::Unsupported {
                path: ps.clone(),
                reason: why,
            })?
            .map_err(|e| IoError::Unsupported {
                path: ps.clone(),
                reason: format!(
                    "its audio codec ({}) is not supported (the decoder said: {e})",
                    codecs()
                        .get_codec(params.codec)
                        .map(|d| d.short_name)
                        .unwrap_or("unknown")
                ),
            })?;
        let sample_rate = params.sample_rate.unwrap_or(0);
        if !(MIN_RATE..=MAX_RATE).contains(&sample_rate) {
            // a header claiming 1 Hz would have a 10-minute job write gigabytes after
            // resampling; real audio lies well inside these bounds
            return Err(IoError::Unsupported {
                path: ps,
                reason: format!(
                    "sample rate {sample_rate} Hz in the header (accepted: {MIN_RATE}–{MAX_RATE} Hz)"
                ),
            });
        }
        let channels = params.channels.map(|c| c.count()).unwrap_or(0);
        let n_frames = aiff_frames(p).or(params.n_frames);
        let codec = codecs()
            .get_codec(params.codec)
            .map(|d| d.short_name.to_string())
            .unwrap_or_else(|| format!("{:?}", params.codec));
        Ok(Self {
            path: ps,
            format,
            decoder,
            track_id,
            sample_rate,
            channels,
            n_frames,
            codec,
            bits: params.bits_per_sample,
            file_bytes,
            decoded: 0,
            buf: None,
            seek_target: None,
            seek_by_ts: false,
            done: false,
            raw: None,
        }
        .with_raw(p))
    }

    /// Header information.
    pub fn info(&self) -> AudioInfo {
        AudioInfo {
            sample_rate: self.sample_rate,
            channels: self.channels,
            n_frames: self.n_frames,
            duration_secs: self.n_frames.map(|n| n as f64 / self.sample_rate as f64),
            codec: self.codec.clone(),
            bits_per_sample: self.bits,
            file_bytes: self.file_bytes,
        }
    }

    /// The file path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Positions the stream at frame `frame` (seeking where the container allows,
    /// decoding and discarding otherwise). Call before the first [`next_block`](Self::next_block).
    pub fn seek_frame(&mut self, frame: u64) -> Result<()> {
        if frame == 0 {
            return Ok(());
        }
        // the direct WAV path (mono) positions itself; symphonia (interleaved) seeks below
        if let Some(r) = &mut self.raw {
            r.pos = frame.min(r.frames);
        }
        let t = frame as f64 / self.sample_rate as f64;
        let time = Time::new(t.floor() as u64, t.fract());
        let lossless =
            self.codec.starts_with("pcm") || self.codec == "flac" || self.codec == "alac";
        if !lossless {
            // symphonia 0.5 places lossy packets inexactly after a seek: the Ogg reader
            // estimates timestamps from the page granule (Vorbis landed 90 frames off on the
            // trumpet clip) and MP3's gapless delay is not re-applied. Exactness beats speed
            // here: lossy streams are decoded from the start and the head discarded
            // (Vorbis/MP3 decode at several hundred times real time).
            self.seek_target = Some(frame);
            self.seek_by_ts = false;
            return Ok(());
        }
        let track_id = self.track_id;
        let format = &mut self.format;
        let sought = no_panic(|| {
            format.seek(
                SeekMode::Accurate,
                SeekTo::Time {
                    time,
                    track_id: Some(track_id),
                },
            )
        })
        .map_err(|why| IoError::Corrupt {
            path: self.path.clone(),
            seconds: t,
            reason: why,
        })?;
        match sought {
            Ok(_) => {
                self.decoder.reset();
                self.seek_by_ts = true;
                // Position each decoded packet by its own timestamp: after a reset some
                // decoders (Vorbis) emit nothing for the first packet, so counting from the
                // seek point would misplace the audio by a block.
                self.seek_target = Some(frame);
            }
            Err(_) => {
                // not seekable: decode from the start and discard
                self.seek_by_ts = false;
                self.seek_target = Some(frame);
            }
        }
        Ok(())
    }

    /// Frames decoded so far (including discarded ones before a seek target).
    pub fn position(&self) -> u64 {
        self.decoded
    }

    /// Decodes packets until one yields audio and hands it to `emit` as symphonia's planar
    /// buffer with the frames to skip at its start (a seek target inside it) and its frame
    /// count; `None` at the end.
    fn next_decoded<T>(
        &mut self,
        emit: impl FnOnce(&AudioBufferRef<'_>, usize, usize, &mut Option<SampleBuffer<f32>>) -> T,
    ) -> Result<Option<(T, u64)>> {
        loop {
            if self.done {
                return Ok(None);
            }
            let format = &mut self.format;
            let next = no_panic(|| format.next_packet()).map_err(|why| {
                self.done = true;
                IoError::Corrupt {
                    path: self.path.clone(),
                    seconds: self.decoded as f64 / self.sample_rate as f64,
                    reason: why,
                }
            })?;
            let packet = match next {
                Ok(p) => p,
                Err(SymError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.done = true;
                    if let Some(n) = self.n_frames {
                        // allow a little slack for codec priming/padding differences
                        if self.decoded + 2048 < n {
                            return Err(IoError::Truncated {
                                path: self.path.clone(),
                                expected: n,
                                decoded: self.decoded,
                            });
                        }
                    }
                    return Ok(None);
                }
                Err(SymError::ResetRequired) => {
                    self.done = true;
                    return Ok(None);
                }
                Err(SymError::IoError(e)) => {
                    return Err(IoError::Open {
                        path: self.path.clone(),
                        cause: e,
                    });
                }
                Err(e) => {
                    return Err(IoError::Corrupt {
                        path: self.path.clone(),
                        seconds: self.decoded as f64 / self.sample_rate as f64,
                        reason: e.to_string(),
                    })
                }
            };
            if packet.track_id() != self.track_id {
                continue;
            }
            let decoder = &mut self.decoder;
            let decoded = match no_panic(|| decoder.decode(&packet)) {
                Err(why) => {
                    self.done = true;
                    return Err(IoError::Corrupt {
                        path: self.path.clone(),
                        seconds: self.decoded as f64 / self.sample_rate as f64,
                        reason: why,
                    });
                }
                Ok(r) => r,
            };
            let decoded = match decoded {
                Ok(d) => d,
                Err(e) => {
                    return Err(IoError::Corrupt {
                        path: self.path.clone(),
                        seconds: self.decoded as f64 / self.sample_rate as f64,
                        reason: e.to_string(),
                    })
                }
            };
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            if self.channels == 0 {
                self.channels = decoded.spec().channels.count();
            }
            let mut skip = 0usize;
            if let Some(target) = self.seek_target {
                let start = if self.seek_by_ts {
                    packet.ts()
                } else {
                    self.decoded
                };
                self.decoded = start;
                if start + (frames as u64) <= target {
                    self.decoded = start + frames as u64;
                    continue;
                }
                skip = target.saturating_sub(start) as usize;
                self.seek_target = None;
            }
            let start_frame = self.decoded;
            self.decoded += frames as u64;
            if skip >= frames {
                continue;
            }
            let out = emit(&decoded, skip, frames, &mut self.buf);
            return Ok(Some((out, start_frame + skip as u64)));
        }
    }

    fn non_finite(&self, frame: u64, value: f32) -> IoError {
        IoError::NonFinite {
            path: self.path.clone(),
            frame,
            value,
        }
    }

    /// Decodes the next packet: interleaved `f32` samples and their channel count, or
    /// `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<(&[f32], usize)>> {
        let got = self.next_decoded(|decoded, skip, frames, buf| {
            let spec = *decoded.spec();
            let ch = spec.channels.count();
            let need = decoded.capacity() as u64;
            if buf
                .as_ref()
                .is_none_or(|b| (b.capacity() as u64) < need * ch as u64)
            {
                *buf = Some(SampleBuffer::<f32>::new(need, spec));
            }
            let b = buf.as_mut().expect("just set");
            b.copy_interleaved_ref(decoded.clone());
            (skip * ch, frames * ch, ch)
        })?;
        let Some(((from, to, ch), first)) = got else {
            return Ok(None);
        };
        let samples = &self.buf.as_ref().expect("set").samples()[from..to];
        if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
            return Err(self.non_finite(first + (i / ch) as u64, samples[i]));
        }
        Ok(Some((
            &self.buf.as_ref().expect("set").samples()[from..to],
            ch,
        )))
    }

    /// Decodes the next packet straight to mono — the mean over channels of each frame,
    /// with the same conversions and the same arithmetic (hence the same bits) as
    /// [`Self::next_block`] followed by a mean, but without interleaving — appended to
    /// `out`. Returns the frames appended, `None` at the end. A non-finite sample (float
    /// formats only) is [`IoError::NonFinite`].
    pub fn next_mono_block(&mut self, out: &mut Vec<f32>) -> Result<Option<usize>> {
        if self.raw.is_some() {
            return self.next_raw_mono(out);
        }
        let start = out.len();
        let got =
            self.next_decoded(|decoded, skip, frames, _| mono_into(decoded, skip, frames, out))?;
        let Some((bad, first)) = got else {
            return Ok(None);
        };
        if let Some((i, v)) = bad {
            out.truncate(start);
            return Err(self.non_finite(first + i as u64, v));
        }
        Ok(Some(out.len() - start))
    }
}

/// Reads a file's header information. Audio is not decoded, except one packet when the
/// container does not state the channel count (AAC in MP4).
///
/// ```
/// let i = mirkit_io::info("../../data/clips/brahms_hungarian_dance_5.hq.ogg")?;
/// assert_eq!((i.sample_rate, i.channels, i.codec.as_str()), (44100, 2, "vorbis"));
/// println!("{:.1} s", i.duration_secs.unwrap_or(f64::NAN));
/// # Ok::<(), mirkit_io::IoError>(())
/// ```
pub fn info(path: impl AsRef<Path>) -> Result<AudioInfo> {
    let mut d = Decoded::open(path)?;
    if d.channels == 0 {
        d.next_block()?;
    }
    Ok(d.info())
}

impl Decoded {
    /// Whether the direct WAV path ([`RawWav`]) serves [`Self::next_mono_block`].
    #[cfg(test)]
    pub(crate) fn is_raw(&self) -> bool {
        self.raw.is_some()
    }

    /// Turns on the direct mono path when `path` is a plain, complete 16-bit integer or
    /// 32-bit float WAV whose header agrees with what symphonia read.
    fn with_raw(mut self, path: &Path) -> Self {
        let ok = |r: &RawWav| {
            r.channels == self.channels
                && r.sample_rate == self.sample_rate
                && Some(r.frames) == self.n_frames
                && match r.kind {
                    RawKind::I16 => self.codec == "pcm_s16le",
                    RawKind::F32 => self.codec == "pcm_f32le",
                }
        };
        self.raw = RawWav::open(path).filter(ok);
        self
    }

    /// [`Self::next_mono_block`] for a [`RawWav`]: up to 65,536 frames read at once and
    /// converted with symphonia's own sample conversions (so the same bits).
    fn next_raw_mono(&mut self, out: &mut Vec<f32>) -> Result<Option<usize>> {
        use std::io::{Read, Seek, SeekFrom};
        let r = self.raw.as_mut().expect("raw path");
        if r.pos >= r.frames {
            return Ok(None);
        }
        let n = (r.frames - r.pos).min(1 << 16) as usize;
        let width = r.kind.bytes() * r.channels;
        r.bytes.resize(n * width, 0);
        let read = (|| {
            r.file
                .seek(SeekFrom::Start(r.data_start + r.pos * width as u64))?;
            r.file.read_exact(&mut r.bytes)
        })();
        if let Err(source) = read {
            return Err(IoError::Open {
                path: self.path.clone(),
                cause: source,
            });
        }
        let first = r.pos;
        r.pos += n as u64;
        self.decoded = r.pos;
        let start = out.len();
        // convert (symphonia's own conversions), check floats, then the interleaved downmix
        r.vals.clear();
        match r.kind {
            RawKind::I16 => r.vals.extend(
                r.bytes
                    .chunks_exact(2)
                    .map(|b| -> f32 { i16::from_le_bytes([b[0], b[1]]).into_sample() }),
            ),
            RawKind::F32 => r.vals.extend(
                r.bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
        }
        let bad = match r.kind {
            RawKind::I16 => None,
            RawKind::F32 => r
                .vals
                .iter()
                .position(|x| !x.is_finite())
                .map(|i| (i / r.channels, r.vals[i])),
        };
        if bad.is_none() {
            downmix_into(&r.vals, r.channels, n, out);
        }
        if let Some((i, v)) = bad {
            out.truncate(start);
            return Err(self.non_finite(first + i as u64, v));
        }
        Ok(Some(n))
    }
}

/// Appends the mean over channels of the first `take` frames of interleaved `b`
/// (`ch` ≥ 1) to `out`: the downmix of the interleaved path, which the planar one
/// ([`mono_typed`]) reproduces bit for bit (tested). One channel is copied, two are
/// `(l + r) / 2` (the generic mean's operations — a sum from −0.0 adds its first value
/// exactly — in a form that vectorises), more a sum in channel order from −0.0 divided
/// by the count.
pub(crate) fn downmix_into(b: &[f32], ch: usize, take: usize, out: &mut Vec<f32>) {
    match ch {
        1 => out.extend_from_slice(&b[..take]),
        2 => out.extend(b[..2 * take].chunks_exact(2).map(|f| (f[0] + f[1]) / 2.0)),
        _ => out.extend(
            b.chunks_exact(ch)
                .take(take)
                .map(|f| f.iter().sum::<f32>() / ch as f32),
        ),
    }
}

/// How samples are stored in a [`RawWav`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RawKind {
    /// 16-bit signed little-endian integers.
    I16,
    /// 32-bit little-endian floats.
    F32,
}

impl RawKind {
    fn bytes(self) -> usize {
        match self {
            RawKind::I16 => 2,
            RawKind::F32 => 4,
        }
    }
}

/// A plain WAV file read directly: symphonia's PCM decoder renders every sample through a
/// per-sample reader (a quarter of a 10-minute log-mel job); reading the data chunk in large
/// blocks and converting with the same functions is 3–4× faster. Only complete files with
/// one `fmt ` (PCM 16-bit or IEEE float 32-bit, plain or extensible) and one `data` chunk
/// whose length is a whole number of frames take this path; anything else stays with
/// symphonia.
#[derive(Debug)]
struct RawWav {
    file: File,
    data_start: u64,
    frames: u64,
    channels: usize,
    sample_rate: u32,
    kind: RawKind,
    pos: u64,
    bytes: Vec<u8>,
    vals: Vec<f32>,
}

impl RawWav {
    fn open(path: &Path) -> Option<Self> {
        use std::io::{Read, Seek, SeekFrom};
        let mut file = File::open(path).ok()?;
        let len = file.metadata().ok()?.len();
        let mut head = [0u8; 12];
        file.read_exact(&mut head).ok()?;
        if &head[..4] != b"RIFF" || &head[8..12] != b"WAVE" {
            return None;
        }
        let mut at = 12u64;
        let mut fmt: Option<(u16, usize, u32, usize, u16)> = None;
        loop {
            let mut ch = [0u8; 8];
            file.seek(SeekFrom::Start(at)).ok()?;
            file.read_exact(&mut ch).ok()?;
            let size = u32::from_le_bytes(ch[4..8].try_into().ok()?) as u64;
            match &ch[..4] {
                b"fmt " => {
                    if !(16..=64).contains(&size) {
                        return None;
                    }
                    let mut f = vec![0u8; size as usize];
                    file.read_exact(&mut f).ok()?;
                    let tag = u16::from_le_bytes([f[0], f[1]]);
                    let channels = u16::from_le_bytes([f[2], f[3]]) as usize;
                    let rate = u32::from_le_bytes(f[4..8].try_into().ok()?);
                    let align = u16::from_le_bytes([f[12], f[13]]) as usize;
                    let bits = u16::from_le_bytes([f[14], f[15]]);
                    // WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with the tag
                    let tag = if tag == 0xFFFE && size >= 26 {
                        u16::from_le_bytes([f[24], f[25]])
                    } else {
                        tag
                    };
                    fmt = Some((tag, channels, rate, align, bits));
                }
                b"data" => {
                    let (tag, channels, sample_rate, align, bits) = fmt?;
                    let kind = match (tag, bits) {
                        (1, 16) => RawKind::I16,
                        (3, 32) => RawKind::F32,
                        _ => return None,
                    };
                    let data_start = at + 8;
                    if channels == 0
                        || align != channels * kind.bytes()
                        || !size.is_multiple_of(align as u64)
                        || data_start + size > len
                    {
                        return None;
                    }
                    return Some(Self {
                        file,
                        data_start,
                        frames: size / align as u64,
                        channels,
                        sample_rate,
                        kind,
                        pos: 0,
                        bytes: Vec::new(),
                        vals: Vec::new(),
                    });
                }
                _ => {}
            }
            at += 8 + size + (size & 1);
            if at + 8 > len {
                return None;
            }
        }
    }
}

/// Runs a call into symphonia, turning a panic inside it (symphonia 0.5 panics on some
/// malformed headers and packets: a zero time base, out-of-range indices) into an error
/// message, so a bad file is an error and never takes the process down.
///
/// The panic becomes the error's text, so the panic hook's own report ("thread 'main'
/// panicked at …" on standard error) would only repeat it: while `f` runs on this
/// thread, a hook installed once (chained to whatever hook was there before, which still
/// reports every other panic) stays silent.
fn no_panic<T>(f: impl FnOnce() -> T) -> std::result::Result<T, String> {
    thread_local! {
        static IN_DECODER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_DECODER.with(|c| c.get()) {
                previous(info);
            }
        }));
    });
    let was = IN_DECODER.with(|c| c.replace(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_DECODER.with(|c| c.set(was));
    r.map_err(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown".into());
        format!("malformed file (the decoder failed: {msg})")
    })
}

/// `numSampleFrames` from an AIFF/AIFF-C `COMM` chunk (symphonia 0.5 derives the frame
/// count from the `SSND` chunk size, which includes its 8-byte offset/block header).
fn aiff_frames(path: &Path) -> Option<u64> {
    use std::io::Read;
    let mut head = vec![0u8; 4096];
    let n = File::open(path).ok()?.read(&mut head).ok()?;
    let head = &head[..n];
    if head.len() < 12
        || &head[..4] != b"FORM"
        || !(&head[8..12] == b"AIFF" || &head[8..12] == b"AIFC")
    {
        return None;
    }
    let mut i = 12;
    while i + 8 <= head.len() {
        let id = &head[i..i + 4];
        let size = u32::from_be_bytes(head[i + 4..i + 8].try_into().ok()?) as usize;
        if id == b"COMM" && i + 14 <= head.len() {
            return Some(u32::from_be_bytes(head[i + 10..i + 14].try_into().ok()?) as u64);
        }
        i += 8 + size + (size & 1);
    }
    None
}

/// Appends the mono mean of frames `skip..frames` of a planar buffer to `out`; returns the
/// first non-finite sample `(frame offset, value)` of a float buffer, if any.
fn mono_into(
    decoded: &AudioBufferRef<'_>,
    skip: usize,
    frames: usize,
    out: &mut Vec<f32>,
) -> Option<(usize, f32)> {
    match decoded {
        AudioBufferRef::U8(b) => mono_typed(b, skip, frames, out, false),
        AudioBufferRef::U16(b) => mono_typed(b, skip, frames, out, false),
        AudioBufferRef::U24(b) => mono_typed(b, skip, frames, out, false),
        AudioBufferRef::U32(b) => mono_typed(b, skip, frames, out, false),
        AudioBufferRef::S8(b) => mono_typed(b, skip, frames, out, false),
        AudioBufferRef::S16(b) => mono_typed(b, skip, frames, out, false),
        AudioBufferRef::S24(b) => mono_typed(b, skip, frames, out, false),
        AudioBufferRef::S32(b) => mono_typed(b, skip, frames, out, false),
        AudioBufferRef::F32(b) => mono_typed(b, skip, frames, out, true),
        AudioBufferRef::F64(b) => mono_typed(b, skip, frames, out, true),
    }
}

/// [`mono_into`] for one sample type. The mean has the arithmetic of [`downmix_into`] on the
/// interleaved samples: one channel copied, two as `(l + r) / 2`, more as a sum in
/// channel order from −0.0 divided by the count.
fn mono_typed<S>(
    b: &symphonia::core::audio::AudioBuffer<S>,
    skip: usize,
    frames: usize,
    out: &mut Vec<f32>,
    float: bool,
) -> Option<(usize, f32)>
where
    S: symphonia::core::sample::Sample + IntoSample<f32>,
{
    let ch = b.spec().channels.count().max(1);
    let conv = |c: usize| -> Vec<f32> {
        b.chan(c)[skip..frames]
            .iter()
            .map(|&s| s.into_sample())
            .collect()
    };
    if float {
        for c in 0..ch {
            let plane = &b.chan(c)[skip..frames];
            if let Some(i) = plane
                .iter()
                .position(|&s| !IntoSample::<f32>::into_sample(s).is_finite())
            {
                return Some((i, plane[i].into_sample()));
            }
        }
    }
    match ch {
        1 => out.extend(
            b.chan(0)[skip..frames]
                .iter()
                .map(|&s| -> f32 { s.into_sample() }),
        ),
        2 => out.extend(
            b.chan(0)[skip..frames]
                .iter()
                .zip(&b.chan(1)[skip..frames])
                .map(|(&l, &r)| {
                    let (l, r): (f32, f32) = (l.into_sample(), r.into_sample());
                    (l + r) / 2.0
                }),
        ),
        _ => {
            let planes: Vec<Vec<f32>> = (0..ch).map(conv).collect();
            out.extend(
                (0..frames - skip)
                    .map(|i| planes.iter().fold(-0.0f32, |acc, p| acc + p[i]) / ch as f32),
            );
        }
    }
    None
}
