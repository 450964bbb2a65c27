//! File-level feature pipelines: decode → resample → features → `.npy`, streamed.

use crate::{Error, Result};
use mirkit_core::npy::{self, NpyFrameWriter};
use mirkit_dsp::{FeatureConfig, FeatureExtractor};
use mirkit_io::{AudioStream, LoadOptions, ResampleQuality};
use std::io::{Read, Seek, SeekFrom};
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

/// Streams `input` through the features of `cfg` into a float32 `.npy` of shape
/// `(rows, frames)`. Memory stays bounded whatever the file length: frames go to disk as
/// they are computed; when the configuration needs the global maximum (`top_db`,
/// `ref=max`, MFCC) a second pass over the temporary stage-1 file applies it. The output
/// appears under `output` only when complete.
pub fn features_to_npy(
    input: &Path,
    output: &Path,
    cfg: &FeatureConfig,
    read: &ReadOptions,
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
    let stage1_path = if staged {
        npy::temp_path(&output.with_extension("stage1.npy"))
    } else {
        output.to_path_buf()
    };
    let w = NpyFrameWriter::create(&stage1_path, ex.stage1_rows())?;
    let werr: std::cell::RefCell<Option<mirkit_core::CoreError>> = std::cell::RefCell::new(None);
    let w = std::cell::RefCell::new(w);
    let sink = |f: &[f32]| {
        let mut e = werr.borrow_mut();
        if e.is_none() {
            if let Err(x) = w.borrow_mut().push_frame(f) {
                *e = Some(x);
            }
        }
    };
    let mut sink_mut = sink;
    for block in stream {
        let block = block?;
        fs.push(&block, &mut sink_mut).map_err(dsp_err(input))?;
        if let Some(e) = werr.borrow_mut().take() {
            return Err(e.into());
        }
    }
    let samples = fs.samples() as u64;
    let (frames, max) = fs.finish(&mut sink_mut).map_err(dsp_err(input))?;
    if let Some(e) = werr.borrow_mut().take() {
        return Err(e.into());
    }
    let w = w.into_inner();
    w.finish()?;
    if !staged {
        return Ok(FeatureSummary {
            rows: ex.output_rows(),
            frames,
            samples,
        });
    }
    // second pass: stage 2 frame by frame from the stage-1 file
    let res = (|| -> Result<()> {
        let params = ex.stage2_params(max);
        let rows1 = ex.stage1_rows();
        let mut f = std::io::BufReader::new(
            std::fs::File::open(&stage1_path).map_err(|e| Error::Other(e.to_string()))?,
        );
        f.seek(SeekFrom::Start(128))
            .map_err(|e| Error::Other(e.to_string()))?;
        let mut out = NpyFrameWriter::create(output, ex.output_rows())?;
        let mut bytes = vec![0u8; rows1 * 4];
        let mut frame = vec![0.0f32; rows1];
        let mut res = vec![0.0f32; ex.output_rows()];
        for _ in 0..frames {
            f.read_exact(&mut bytes)
                .map_err(|e| Error::Other(format!("{}: {e}", stage1_path.display())))?;
            for (v, b) in frame.iter_mut().zip(bytes.chunks_exact(4)) {
                *v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
            }
            ex.stage2_frame(params, &mut frame, &mut res);
            out.push_frame(&res)?;
        }
        out.finish()?;
        Ok(())
    })();
    let _ = std::fs::remove_file(&stage1_path);
    res?;
    Ok(FeatureSummary {
        rows: ex.output_rows(),
        frames,
        samples,
    })
}
