//! File-level feature pipelines: decode → resample → features → `.npy`, streamed.

use crate::{Error, Result};
use mirkit_core::npy::{self, NpyFrameReader, NpyFrameWriter};
use mirkit_dsp::{FeatureConfig, FeatureExtractor};
use mirkit_io::{AudioStream, LoadOptions, ResampleQuality};
use std::path::Path;
use std::time::{Duration, Instant};

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
    /// Where the time went.
    pub timings: Timings,
}

/// Wall-clock time per stage of a file job (`mirkit features|tag|embed --timings`).
/// Stages that did not run stay zero; `total` is the whole job, so it also holds what no
/// stage claims (opening the file, plots). Taggers on more than one thread decode and
/// resample on a thread of their own while the model runs, so there the stages overlap
/// and may add up to more than `total`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timings {
    /// Demuxing and decoding to mono.
    pub decode: Duration,
    /// Resampling to the working rate.
    pub resample: Duration,
    /// Features: STFT, mel, log, second pass (for taggers: the model's front end).
    pub features: Duration,
    /// The network (taggers, embeddings).
    pub model: Duration,
    /// Writing outputs (and reading back spilled stage-1 frames).
    pub write: Duration,
    /// The whole job.
    pub total: Duration,
}

impl std::ops::AddAssign for Timings {
    fn add_assign(&mut self, o: Self) {
        self.decode += o.decode;
        self.resample += o.resample;
        self.features += o.features;
        self.model += o.model;
        self.write += o.write;
        self.total += o.total;
    }
}

impl std::fmt::Display for Timings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = |d: Duration| d.as_secs_f64();
        write!(
            f,
            "decode {:.3} s, resample {:.3} s, features {:.3} s, model {:.3} s, write {:.3} s, total {:.3} s",
            s(self.decode),
            s(self.resample),
            s(self.features),
            s(self.model),
            s(self.write),
            s(self.total)
        )
    }
}

fn dsp_err(path: &Path) -> impl Fn(mirkit_dsp::DspError) -> Error + '_ {
    move |source| Error::Dsp {
        path: path.display().to_string(),
        cause: source,
    }
}

/// Stage-1 frames of a file kept in memory before they go to a temporary file (64 MiB:
/// 131072 frames of 128 mel bands, 25 minutes at 22.05 kHz with hop 256 — a long track
/// or a whole DJ set stays in memory; a one-hour file spills and peaks near 80 MB).
pub const STAGE1_MEMORY: usize = 64 << 20;

/// Streams `input` through the features of `cfg` into a float32 `.npy` of shape
/// `(rows, frames)`. Memory stays bounded whatever the file length: frames go to the
/// output as they are computed; when the configuration needs the global maximum
/// (`top_db`, `ref=max`, MFCC) they are held until the end — in memory up to
/// [`STAGE1_MEMORY`],
/// beyond that in a temporary stage-1 file — and a second pass applies it. The output
/// appears under `output` only when complete.
///
/// ```
/// use mirkit::dsp::{FeatureConfig, Preset};
/// use mirkit::pipeline::{features_to_npy, features_png, ReadOptions};
/// let out = std::env::temp_dir().join(format!("mirkit-doc-{}.npy", std::process::id()));
/// // Won et al. 2020's front end (16 kHz, hop 256, 96 HTK mels, dB); the first 10 s only
/// let cfg = FeatureConfig::preset(Preset::Won2020);
/// let read = ReadOptions { duration: Some(10.0), ..Default::default() };
/// let s = features_to_npy("data/clips/brahms_hungarian_dance_5.hq.ogg", &out, &cfg, &read)?;
/// assert_eq!((s.rows, s.frames), (96, 626));
/// println!("decoded in {:.3} s, features in {:.3} s", s.timings.decode.as_secs_f64(), s.timings.features.as_secs_f64());
/// features_png(&out, out.with_extension("png"), &cfg, "first 10 s")?; // with axes
/// let a = mirkit::core::npy::read(&out)?.to_f32_2d()?; // or numpy.load
/// assert_eq!(a.dim(), (96, 626));
/// # std::fs::remove_file(&out).ok(); std::fs::remove_file(out.with_extension("png")).ok();
/// # Ok::<(), mirkit::Error>(())
/// ```
pub fn features_to_npy(
    input: impl AsRef<Path>,
    output: impl AsRef<Path>,
    cfg: &FeatureConfig,
    read: &ReadOptions,
) -> Result<FeatureSummary> {
    features_to_npy_within(input.as_ref(), output.as_ref(), cfg, read, STAGE1_MEMORY)
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
    let t_start = Instant::now();
    let mut stream = AudioStream::open(input, &opts)?;
    let mut fs = ex.streamer();
    let staged = ex.needs_stage2();
    let rows1 = ex.stage1_rows();
    let mut features = Duration::ZERO;
    let mut write = Duration::ZERO;
    // Frames go straight to the output unless stage 2 changes their length (MFCC): then
    // they wait in `Stage1`. When stage 2 keeps the shape (dB with top_db, ref=max) it
    // runs in place over the written file at the end (no copy of the frames in memory).
    let in_place = staged && ex.output_rows() == rows1;
    let mut direct = if staged && !in_place {
        None
    } else {
        Some(NpyFrameWriter::create(output, rows1)?)
    };
    // stage-1 frames: room for the whole file (from its header, within the budget) up
    // front, so the buffer never moves while it grows
    let mut held = Stage1::Memory(Vec::new());
    if staged && !in_place {
        if let (Stage1::Memory(v), Some(n)) = (&mut held, stream.info().n_frames) {
            let seconds = n as f64 / stream.info().sample_rate.max(1) as f64;
            let frames =
                (seconds * cfg.sample_rate as f64 / cfg.stft.hop_length.max(1) as f64) as usize + 2;
            v.reserve_exact(frames.saturating_mul(rows1).min(memory / 4));
        }
    }
    // the frames of one block, handed on after the block (so compute and writing are
    // timed apart)
    let mut pending: Vec<f32> = Vec::new();
    let mut store = |pending: &mut Vec<f32>, held: &mut Stage1| -> Result<()> {
        if let Some(w) = direct.as_mut() {
            w.push_frames(pending)?;
        } else {
            if let Stage1::Memory(v) = held {
                if (v.len() + pending.len()) * 4 > memory {
                    // over the budget: everything so far to a temporary file
                    let path = npy::temp_path(&output.with_extension("stage1.npy"));
                    // scratch: deleted within the run, never flushed to disk
                    let mut w = NpyFrameWriter::create_with(&path, rows1, npy::Durability::Never)?;
                    w.push_frames(v)?;
                    *held = Stage1::File(w, path);
                }
            }
            match held {
                Stage1::Memory(v) => v.extend_from_slice(pending),
                Stage1::File(w, _) => w.push_frames(pending)?,
            }
        }
        pending.clear();
        Ok(())
    };
    let streamed = (|| -> Result<(u64, usize, f32)> {
        for block in stream.by_ref() {
            let block = block?;
            let t = Instant::now();
            fs.push(&block, &mut |f: &[f32]| pending.extend_from_slice(f))
                .map_err(dsp_err(input))?;
            let t1 = Instant::now();
            features += t1 - t;
            store(&mut pending, &mut held)?;
            write += t1.elapsed();
        }
        let samples = fs.samples() as u64;
        let t = Instant::now();
        let (frames, max) = fs
            .finish(&mut |f: &[f32]| pending.extend_from_slice(f))
            .map_err(dsp_err(input))?;
        let t1 = Instant::now();
        features += t1 - t;
        store(&mut pending, &mut held)?;
        write += t1.elapsed();
        Ok((samples, frames, max))
    })();
    let (samples, frames, max) = match streamed {
        Ok(v) => v,
        Err(e) => {
            if let Stage1::File(w, path) = held {
                drop(w);
                npy::remove_temp(&path);
            }
            return Err(e);
        }
    };
    let st = stream.timings();
    let mut summary = FeatureSummary {
        rows: ex.output_rows(),
        frames,
        samples,
        timings: Timings {
            decode: st.decode,
            resample: st.resample,
            ..Timings::default()
        },
    };
    if let Some(mut w) = direct {
        let t = Instant::now();
        if in_place {
            let stage2 = ex.stage2(max);
            let mut frame1 = vec![0.0f32; rows1];
            w.map_frames(|f| {
                frame1.copy_from_slice(f);
                stage2.apply(&mut frame1, f);
            })?;
        }
        w.finish()?;
        write += t.elapsed();
    } else {
        // second pass: stage 2 frame by frame, from memory or from the stage-1 file
        let stage2 = ex.stage2(max);
        let mut res = vec![0.0f32; ex.output_rows()];
        let mut out = NpyFrameWriter::create(output, ex.output_rows())?;
        let t = Instant::now();
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
                npy::remove_temp(&path);
                r?;
            }
        }
        // the second pass interleaves a cheap stage 2 with writing: counted as writing
        write += t.elapsed();
    }
    summary.timings.features = features;
    summary.timings.write = write;
    summary.timings.total = t_start.elapsed();
    Ok(summary)
}

/// Draws a feature `.npy` written by [`features_to_npy`] with `cfg` as a PNG with axes:
/// time in seconds, mel-band or bin frequencies in Hz (coefficient numbers for MFCC), a
/// dB colour bar for decibel spectrograms.
pub fn features_png(
    npy_path: impl AsRef<Path>,
    png_path: impl AsRef<Path>,
    cfg: &FeatureConfig,
    title: &str,
) -> Result<()> {
    let (npy_path, png_path) = (npy_path.as_ref(), png_path.as_ref());
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
        let clip = Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
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

/// This worker's `(index, count)` in a job array (`mirkit tag --shard auto`; Python
/// `mirkit.shard_from_env`), with `var` reading the environment: Slurm job arrays (`SLURM_ARRAY_TASK_ID` − `SLURM_ARRAY_TASK_MIN` of
/// `SLURM_ARRAY_TASK_COUNT`), else a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX` of
/// `MIRKIT_SHARD_COUNT`, which the Job spec sets to its `completions`), else `0/1` (every
/// file, for a run outside a job array).
pub fn shard_from_env(var: impl Fn(&str) -> Option<String>) -> Result<(usize, usize), String> {
    let num = |k: &str| -> Result<Option<i64>, String> {
        var(k)
            .map(|v| {
                v.trim()
                    .parse::<i64>()
                    .map_err(|_| format!("{k}={v:?} is not a whole number"))
            })
            .transpose()
    };
    let (index, count, from) = if let Some(task) = num("SLURM_ARRAY_TASK_ID")? {
        let lo = num("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
        let count = num("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
            "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not".to_string()
        })?;
        (task - lo, count, "SLURM_ARRAY_TASK_ID")
    } else if let Some(index) = num("JOB_COMPLETION_INDEX")? {
        let count = num("MIRKIT_SHARD_COUNT")?.ok_or_else(|| {
            "JOB_COMPLETION_INDEX is set but MIRKIT_SHARD_COUNT (the Job's completions) \
             is not"
                .to_string()
        })?;
        (index, count, "JOB_COMPLETION_INDEX")
    } else {
        return Ok((0, 1));
    };
    if count < 1 || index < 0 || index >= count {
        return Err(format!(
            "shard {index} of {count} (from {from}) is out of range"
        ));
    }
    Ok((index as usize, count as usize))
}

#[cfg(test)]
mod shard_tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn shard_auto_reads_job_arrays() {
        assert_eq!(shard_from_env(env(&[])), Ok((0, 1)));
        // sbatch --array=1-4: ids 1..=4, min 1
        let slurm = [
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ];
        assert_eq!(shard_from_env(env(&slurm)), Ok((2, 4)));
        let k8s = [("JOB_COMPLETION_INDEX", "0"), ("MIRKIT_SHARD_COUNT", "8")];
        assert_eq!(shard_from_env(env(&k8s)), Ok((0, 8)));
        let missing = shard_from_env(env(&[("JOB_COMPLETION_INDEX", "2")])).unwrap_err();
        assert!(missing.contains("MIRKIT_SHARD_COUNT"), "{missing}");
        let out = shard_from_env(env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "4"),
        ]))
        .unwrap_err();
        assert!(out.contains("out of range"), "{out}");
        let bad = shard_from_env(env(&[("JOB_COMPLETION_INDEX", "x")])).unwrap_err();
        assert!(bad.contains("not a whole number"), "{bad}");
    }
}
