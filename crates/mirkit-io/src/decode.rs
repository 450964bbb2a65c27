//! Decoding with symphonia: file info, packet-by-packet decoding, seeking.

use crate::error::{IoError, Result};
use std::fs::File;
use std::path::Path;
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{CodecRegistry, Decoder, DecoderOptions, CODEC_TYPE_NULL};
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
        let mss = MediaSourceStream::new(Box::new(file), Default::default());
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

    /// Decodes the next packet: interleaved `f32` samples and their channel count, or
    /// `None` at the end.
    pub fn next_block(&mut self) -> Result<Option<(&[f32], usize)>> {
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
            let spec = *decoded.spec();
            let frames = decoded.frames();
            if frames == 0 {
                continue;
            }
            if self.channels == 0 {
                self.channels = spec.channels.count();
            }
            let need = decoded.capacity() as u64;
            if self
                .buf
                .as_ref()
                .is_none_or(|b| (b.capacity() as u64) < need * spec.channels.count() as u64)
            {
                self.buf = Some(SampleBuffer::<f32>::new(need, spec));
            }
            let buf = self.buf.as_mut().expect("just set");
            buf.copy_interleaved_ref(decoded);
            let ch = spec.channels.count();
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
            let samples = &buf.samples()[skip * ch..frames * ch];
            if samples.is_empty() {
                continue;
            }
            if let Some(i) = samples.iter().position(|v| !v.is_finite()) {
                return Err(IoError::NonFinite {
                    path: self.path.clone(),
                    frame: start_frame + (skip + i / ch) as u64,
                    value: samples[i],
                });
            }
            return Ok(Some((
                &self.buf.as_ref().expect("set").samples()[skip * ch..frames * ch],
                ch,
            )));
        }
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
