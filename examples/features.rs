//! # From a music file to its waveform, log-mel spectrogram and MFCCs
//!
//! A notebook in Rust: run it with `cargo run --release --example features [FILE]`.
//! It reads a clip committed in the repository (a jazz trumpet loop, CC-BY 3.0), and
//! writes PNGs and `.npy` files under `out/features/`.

use mirkit::dsp::{delta, Compression, DbConfig, FeatureConfig, FeatureExtractor, MfccSettings};
use mirkit::io::plot::{line_plot_png, spectrogram_png, LinePlot, SpecPlot};
use mirkit::io::{info, load, LoadOptions};
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("data/clips/sorohanro_-_solo-trumpet-06.hq.ogg")
        });
    let out = PathBuf::from("out/features");
    std::fs::create_dir_all(&out)?;

    // ## 1. What is in the file? (headers only, nothing decoded)
    let i = info(&file)?;
    println!(
        "{}: {} at {} Hz, {} channel(s), {:.2} s",
        file.display(),
        i.codec,
        i.sample_rate,
        i.channels,
        i.duration_secs.unwrap_or(f64::NAN)
    );

    // ## 2. Load it like `librosa.load(path)`: mono, resampled to 22.05 kHz
    let y = load(&file, &LoadOptions::default())?;
    println!(
        "loaded {} samples at {} Hz (peak {:.3}, rms {:.3})",
        y.len(),
        y.sample_rate(),
        y.peak(),
        y.rms()
    );
    line_plot_png(
        out.join("waveform.png"),
        &[("waveform", y.samples())],
        &LinePlot {
            title: "Waveform".into(),
            x_label: "TIME (S)".into(),
            x_start_step: (0.0, 1.0 / y.sample_rate() as f64),
            ..Default::default()
        },
    )?;

    // ## 3. The log-mel spectrogram: librosa.power_to_db(melspectrogram(y, sr), top_db=80)
    let mut cfg = FeatureConfig::librosa();
    cfg.compression = Compression::Db(DbConfig::default());
    let logmel = FeatureExtractor::new(cfg.clone())?.compute(y.samples())?;
    let meta = logmel.meta().clone();
    println!(
        "log-mel: {} bands x {} frames ({:.1} frames/s)",
        logmel.n_bins(),
        logmel.n_frames(),
        meta.frame_rate()
    );
    mirkit::core::npy::write_2d(out.join("logmel.npy"), logmel.view())?;
    let centres = mirkit::dsp::mel_frequencies(130, 0.0, 11025.0, mirkit::dsp::MelScale::Slaney)
        [1..129]
        .to_vec();
    spectrogram_png(
        out.join("logmel.png"),
        logmel.view(),
        &SpecPlot {
            title: "Log-mel spectrogram (128 Slaney mels)".into(),
            seconds_per_frame: meta.hop_length as f64 / meta.sample_rate as f64,
            y_label: "HZ".into(),
            row_values: Some(centres),
            unit: "DB".into(),
            ..Default::default()
        },
    )?;

    // ## 4. MFCCs and their deltas: librosa.feature.mfcc(y, sr, n_mfcc=20), feature.delta
    cfg.mfcc = Some(MfccSettings {
        n_mfcc: 20,
        lifter: 0.0,
    });
    let mfcc = FeatureExtractor::new(cfg)?.compute(y.samples())?;
    let d1 = delta(mfcc.view(), 9, 1)?;
    println!("MFCC: {:?}, delta: {:?}", mfcc.view().dim(), d1.dim());
    mirkit::core::npy::write_2d(out.join("mfcc.npy"), mfcc.view())?;
    // standardise each coefficient so the picture shows more than c0
    let z = mirkit::dsp::standardize(mfcc.view(), 1e-8);
    spectrogram_png(
        out.join("mfcc.png"),
        z.view(),
        &SpecPlot {
            title: "MFCC (standardised per coefficient)".into(),
            seconds_per_frame: meta.hop_length as f64 / meta.sample_rate as f64,
            y_label: "COEF".into(),
            colormap: mirkit::io::plot::Colormap::Viridis,
            ..Default::default()
        },
    )?;
    println!(
        "wrote {}/{{waveform,logmel,mfcc}}.png and .npy files",
        out.display()
    );
    Ok(())
}
