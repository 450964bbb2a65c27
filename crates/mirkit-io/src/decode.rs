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
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("path", &self.path)
            .field("sample_rate", &self.sample_rate)
            .finish()
    }
}

fn unsupported(path: &str, e: SymError) -> IoError {
    IoError::Unsupported {
        path: path.to_string(),
        reason: e.to_string(),
    }
}

impl Decoded {
    /// Opens and probes a file.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let ps = path_str(p);
        let file = File::open(p).map_err(|source| IoError::Open {
            path: ps.clone(),
            source,
        })?;
        let file_bytes = file
            .metadata()
            .map_err(|source| IoError::Open {
                path: ps.clone(),
                source,
            })?
            .len();
        if file_bytes == 0 {
            return Err(IoError::EmptyFile { path: ps });
        }
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
        let probed = symphonia::default::get_probe()
            .format(&hint, mss, &fo, &MetadataOptions::default())
            .map_err(|e| unsupported(&ps, e))?;
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
        let decoder = codecs()
            .make(&params, &DecoderOptions::default())
            .map_err(|e| unsupported(&ps, e))?;
        let sample_rate = params.sample_rate.unwrap_or(0);
        if sample_rate == 0 {
            return Err(IoError::Unsupported {
                path: ps,
                reason: "sample rate 0 in header".into(),
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
        })
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
        match self.format.seek(
            SeekMode::Accurate,
            SeekTo::Time {
                time,
                track_id: Some(self.track_id),
            },
        ) {
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
            let packet = match self.format.next_packet() {
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
                        source: e,
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
            let decoded = match self.decoder.decode(&packet) {
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
pub fn info(path: impl AsRef<Path>) -> Result<AudioInfo> {
    let mut d = Decoded::open(path)?;
    if d.channels == 0 {
        d.next_block()?;
    }
    Ok(d.info())
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

/// [`mono_into`] for one sample type. The mean is [`crate::load`]'s downmix of the
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
