//! File-level feature pipelines: decode → resample → features → `.npy`, streamed.

use crate::{Error, Result};
use mirkit_core::npy::{self, NpyFrameReader, NpyFrameWriter};
use mirkit_dsp::{FeatureConfig, FeatureExtractor};
use mirkit_io::{AudioStream, LoadOptions, ResampleQuality};
use std::path::Path;

/// How to read the audio before feature extraction.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ReadOptions {
    /// Seconds to skip at the start.
    pub offset: f64,
    /// Seconds to read at most.
    pub duration: Option<f64>,
    /// Resampler preset.
    pub quality: ResampleQuality,
}

/// What [`features_to_npy`] produced.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureSummary {
    /// Output rows (mel bands, bins or coefficients).
    pub rows: usize,
    /// Frames written.
    pub frames: usize,
    /// Samples analysed (at the feature sample rate).
    pub samples: u64,
}

fn dsp_err(path: &Path) -> impl Fn(mirkit_dsp::DspError) -> Error + '_ {
    move |source| Error::Dsp {
        path: path.display().to_string(),
        source,
    }
}

/// Stage-1 frames of a file kept in memory before they go to a temporary file (16 MiB:
/// 32768 frames of 128 mel bands, over six minutes at 22.05 kHz with hop 256).
const STAGE1_MEMORY: usize = 16 << 20;

/// Streams `input` through the features of `cfg` into a float32 `.npy` of shape
/// `(rows, frames)`. Memory stays bounded whatever the file length: frames go to the
/// output as they are computed; when the configuration needs the global maximum
/// (`top_db`, `ref=max`, MFCC) they are held until the end — in memory up to 16 MiB,
/// beyond that in a temporary stage-1 file — and a second pass applies it. The output
/// appears under `output` only when complete.
pub fn features_to_npy(
    input: &Path,
    output: &Path,
    cfg: &FeatureConfig,
    read: &ReadOptions,
) -> Result<FeatureSummary> {
    features_to_npy_within(input, output, cfg, read, STAGE1_MEMORY)
}

/// Where stage-1 frames wait for the global maximum.
enum Stage1 {
    Memory(Vec<f32>),
    File(NpyFrameWriter, std::path::PathBuf),
}

/// [`features_to_npy`] holding at most `memory` bytes of stage-1 frames in memory.
fn features_to_npy_within(
    input: &Path,
    output: &Path,
    cfg: &FeatureConfig,
    read: &ReadOptions,
    memory: usize,
) -> Result<FeatureSummary> {
    let ex = FeatureExtractor::new(cfg.clone()).map_err(dsp_err(input))?;
    let opts = LoadOptions {
        sr: Some(cfg.sample_rate),
        mono: true,
        offset: read.offset,
        duration: read.duration,
        quality: read.quality,
    };
    let stream = AudioStream::open(input, &opts)?;
    let mut fs = ex.streamer();
    let staged = ex.needs_stage2();
    let rows1 = ex.stage1_rows();
    // unstaged: frames straight to the output; staged: held in `Stage1`
    let mut direct = if staged {
        None
    } else {
        Some(NpyFrameWriter::create(output, rows1)?)
    };
    let mut held = Stage1::Memory(Vec::new());
    let mut failed: Option<Error> = None;
    let mut sink = |f: &[f32]| {
        if failed.is_some() {
            return;
        }
        let r = (|| -> Result<()> {
            if let Some(w) = direct.as_mut() {
                return Ok(w.push_frame(f)?);
            }
            if let Stage1::Memory(v) = &mut held {
                if (v.len() + f.len()) * 4 <= memory {
                    v.extend_from_slice(f);
                    return Ok(());
                }
                // over the budget: everything so far to a temporary file
                let path = npy::temp_path(&output.with_extension("stage1.npy"));
                let mut w = NpyFrameWriter::create(&path, rows1)?;
                for frame in v.chunks_exact(rows1) {
                    w.push_frame(frame)?;
                }
                held = Stage1::File(w, path);
            }
            if let Stage1::File(w, _) = &mut held {
                w.push_frame(f)?;
            }
            Ok(())
        })();
        if let Err(e) = r {
            failed = Some(e);
        }
    };
    let streamed = (|| -> Result<(u64, usize, f32)> {
        for block in stream {
            let block = block?;
            fs.push(&block, &mut sink).map_err(dsp_err(input))?;
        }
        let samples = fs.samples() as u64;
        let (frames, max) = fs.finish(&mut sink).map_err(dsp_err(input))?;
        Ok((samples, frames, max))
    })();
    let streamed = match (streamed, failed) {
        (Err(e), _) | (Ok(_), Some(e)) => Err(e),
        (Ok(v), None) => Ok(v),
    };
    let (samples, frames, max) = match streamed {
        Ok(v) => v,
        Err(e) => {
            if let Stage1::File(w, path) = held {
                drop(w);
                let _ = std::fs::remove_file(path);
            }
            return Err(e);
        }
    };
    let summary = FeatureSummary {
        rows: ex.output_rows(),
        frames,
        samples,
    };
    if let Some(w) = direct {
        w.finish()?;
        return Ok(summary);
    }
    // second pass: stage 2 frame by frame, from memory or from the stage-1 file
    let stage2 = ex.stage2(max);
    let mut res = vec![0.0f32; ex.output_rows()];
    let mut out = NpyFrameWriter::create(output, ex.output_rows())?;
    match held {
        Stage1::Memory(mut v) => {
            for frame in v.chunks_exact_mut(rows1) {
                stage2.apply(frame, &mut res);
                out.push_frame(&res)?;
            }
            out.finish()?;
        }
        Stage1::File(w, path) => {
            let r = (|| -> Result<()> {
                w.finish()?;
                let mut spill = NpyFrameReader::open(&path)?;
                let mut frame = vec![0.0f32; rows1];
                while spill.next_frame(&mut frame)? {
                    stage2.apply(&mut frame, &mut res);
                    out.push_frame(&res)?;
                }
                out.finish()?;
                Ok(())
            })();
            let _ = std::fs::remove_file(&path);
            r?;
        }
    }
    Ok(summary)
}

/// Draws a feature `.npy` written by [`features_to_npy`] with `cfg` as a PNG with axes:
/// time in seconds, mel-band or bin frequencies in Hz (coefficient numbers for MFCC), a
/// dB colour bar for decibel spectrograms.
pub fn features_png(
    npy_path: &Path,
    png_path: &Path,
    cfg: &FeatureConfig,
    title: &str,
) -> Result<()> {
    use mirkit_dsp::Compression;
    use mirkit_io::plot::{spectrogram_png, SpecPlot};
    let a = npy::read(npy_path)?.to_f32_2d()?;
    let rows = a.nrows();
    let (y_label, row_values) = match (&cfg.mfcc, &cfg.mel) {
        (Some(_), _) => ("MFCC".to_string(), None),
        (None, Some(m)) => {
            let fmax = m.fmax.unwrap_or(cfg.sample_rate as f32 / 2.0);
            let f = mirkit_dsp::mel_frequencies(rows + 2, m.fmin as f64, fmax as f64, m.scale);
            ("HZ".to_string(), Some(f[1..rows + 1].to_vec()))
        }
        (None, None) => (
            "HZ".to_string(),
            Some(
                (0..rows)
                    .map(|k| k as f64 * cfg.sample_rate as f64 / cfg.stft.n_fft as f64)
                    .collect(),
            ),
        ),
    };
    let unit = match &cfg.compression {
        Compression::Db(_) if cfg.mfcc.is_none() => "DB",
        _ => "",
    };
    let opts = SpecPlot {
        title: title.to_string(),
        seconds_per_frame: cfg.stft.hop_length as f64 / cfg.sample_rate as f64,
        y_label,
        row_values,
        unit: unit.into(),
        ..Default::default()
    };
    Ok(spectrogram_png(png_path, a.view(), &opts)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stage-1 frames held in memory, spilled to a file at once, or spilled part-way
    /// give the same output bytes (log-mel with top_db, and MFCC), and no temporary
    /// file is left behind.
    #[test]
    fn memory_and_file_stage1_give_the_same_bytes() {
        let clip = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("data/clips/sorohanro_-_solo-trumpet-06.hq.ogg");
        let dir = mirkit_core::testing::TmpDir::new("mirkit-pipeline-");
        let mut mfcc = FeatureConfig::librosa();
        mfcc.compression = mirkit_dsp::Compression::Db(mirkit_dsp::DbConfig::default());
        let mut logmel = mfcc.clone();
        mfcc.mfcc = Some(mirkit_dsp::MfccSettings {
            n_mfcc: 20,
            lifter: 0.0,
        });
        logmel.stft = mirkit_dsp::StftConfig::new(512).hop(256);
        for (name, cfg) in [("logmel", logmel), ("mfcc", mfcc)] {
            let mut outs = vec![];
            for budget in [STAGE1_MEMORY, 0, 100 * 128 * 4] {
                let out = dir.join(format!("{name}-{budget}.npy"));
                let s = features_to_npy_within(&clip, &out, &cfg, &ReadOptions::default(), budget)
                    .unwrap();
                assert!(
                    s.frames > 100,
                    "{name}: the part-way spill needs > 100 frames"
                );
                outs.push(std::fs::read(&out).unwrap());
            }
            assert!(outs.iter().all(|o| o == &outs[0]), "{name}");
        }
        let left: Vec<_> = std::fs::read_dir(&*dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| !n.ends_with(".npy") || n.contains("stage1"))
            .collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}
