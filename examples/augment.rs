//! # Augmenting a real recording, transform by transform
//!
//! `cargo run --release --example augment [FILE]` — reads the jazz-trumpet clip committed
//! in the repository (or FILE), applies each transform of mirkit-augment, and writes a WAV
//! and a spectrogram PNG for each under `out/augment/`, then compares librosa's phase
//! vocoder with identity phase locking on a strong slow-down.

use mirkit::augment::*;
use mirkit::dsp::{Compression, DbConfig, FeatureConfig, FeatureExtractor};
use mirkit::io::plot::{spectrogram_png, SpecPlot};
use mirkit::io::{load, write_wav, LoadOptions, WavFormat};
use std::path::{Path, PathBuf};

fn save(
    out: &Path,
    name: &str,
    y: &[f32],
    sr: u32,
    title: &str,
) -> Result<(), Box<dyn std::error::Error>> {
    let buf = mirkit::core::AudioBuffer::from_mono(y.to_vec(), sr)?;
    write_wav(out.join(format!("{name}.wav")), &buf, WavFormat::Float32)?;
    let mut cfg = FeatureConfig::librosa();
    cfg.sample_rate = sr;
    cfg.compression = Compression::Db(DbConfig::default());
    let s = FeatureExtractor::new(cfg)?.compute(y)?;
    let centres =
        mirkit::dsp::mel_frequencies(130, 0.0, sr as f64 / 2.0, mirkit::dsp::MelScale::Slaney)
            [1..129]
            .to_vec();
    spectrogram_png(
        out.join(format!("{name}.png")),
        s.view(),
        &SpecPlot {
            title: title.into(),
            seconds_per_frame: 512.0 / sr as f64,
            y_label: "HZ".into(),
            row_values: Some(centres),
            unit: "DB".into(),
            range: Some((-80.0, 0.0)),
            size: (700, 260),
            ..Default::default()
        },
    )?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file: PathBuf = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("data/clips/sorohanro_-_solo-trumpet-06.hq.ogg")
        });
    let out = PathBuf::from("out/augment");
    std::fs::create_dir_all(&out)?;
    let sr = 22050;
    let mut y = load(&file, &LoadOptions::at(sr))?.into_mono_vec();
    // normalise to a peak of 0.5 so every picture shares a dB scale
    let peak = y.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    y.iter_mut().for_each(|v| *v *= 0.5 / peak);
    save(&out, "00_original", &y, sr, "Original")?;

    // ## 1. Pitch and time, as librosa.effects does them
    save(
        &out,
        "01_pitch_up_2",
        &pitch_shift(&y, 2.0, 12, PhaseMode::Librosa)?,
        sr,
        "Pitch +2 semitones",
    )?;
    save(
        &out,
        "02_pitch_down_quarter",
        &pitch_shift(&y, -1.0, 24, PhaseMode::Librosa)?,
        sr,
        "Pitch -1/4 tone",
    )?;
    save(
        &out,
        "03_stretch_1.23",
        &time_stretch(&y, 1.23, PhaseMode::Librosa)?,
        sr,
        "Time stretch x1.23 (faster)",
    )?;

    // ## 2. The companions, each with fixed parameters
    let mut v = y.clone();
    add_noise(&mut v, 10.0, NoiseColor::Pink, 1)?;
    save(
        &out,
        "04_pink_noise_10db",
        &v,
        sr,
        "Pink noise at 10 dB SNR",
    )?;
    let mut v = y.clone();
    biquad(&mut v, sr, FilterKind::LowPass, 1500.0, 0.707, 0.0)?;
    save(&out, "05_lowpass_1500", &v, sr, "Low-pass 1.5 kHz")?;
    let mut v = y.clone();
    compress(
        &mut v,
        sr,
        &Compressor {
            threshold_db: -30.0,
            ratio: 8.0,
            makeup_db: 12.0,
            ..Default::default()
        },
    )?;
    save(
        &out,
        "06_compressed",
        &v,
        sr,
        "Compressor -30 dB, 8:1, +12 dB",
    )?;
    let mut v = y.clone();
    clip(&mut v, 0.1)?;
    save(&out, "07_clipped", &v, sr, "Hard clip at 0.1")?;

    // ## 3. A seeded random chain, its record, and its replay
    let aug = Augment::Chain(vec![
        Augment::music_default(1.0),
        Augment::Noise {
            snr_db: Range::new(15.0, 30.0)?,
            color: NoiseColor::White,
        },
        Augment::RandomApply {
            p: 0.5,
            inner: Box::new(Augment::Polarity),
        },
    ]);
    let mut v = y.clone();
    let mut log = Vec::new();
    aug.apply(&mut v, sr, &mut Rng::new(2026), &mut log)?;
    println!("seed 2026 applied:\n{}", records_to_json(&log));
    assert_eq!(replay(&log, &y, sr)?, v, "a record replays bit for bit");
    println!(
        "a key label C (0) becomes pitch class {}; tempo x{:.3}",
        shift_key(0, &log),
        tempo_factor(&log)
    );
    save(&out, "08_random_chain", &v, sr, "Seeded chain (seed 2026)")?;

    // ## 4. Phasiness: librosa's vocoder vs identity phase locking, slowing down x0.5
    let st = mirkit::dsp::Stft::new(mirkit::dsp::StftConfig::new(2048).hop(512))?;
    let d = st.stft(&y)?;
    for (name, mode) in [
        ("librosa", PhaseMode::Librosa),
        ("locked", PhaseMode::IdentityLocking),
    ] {
        let ds = phase_vocoder(&d, 0.5, mode)?;
        println!(
            "rate 0.5, {name:8}: spectral inconsistency {:.4}",
            spectral_inconsistency(&ds)?
        );
        save(
            &out,
            &format!("09_stretch_0.5_{name}"),
            &time_stretch(&y, 0.5, mode)?,
            sr,
            &format!("Stretch x0.5, {name} phases"),
        )?;
    }
    println!("wrote {}", out.display());
    Ok(())
}
