//! Memory stays bounded on long files: a one-hour recording to log-mel with peak RSS
//! under 100 MB, and tagged with peak RSS under 200 MB. Heavy (writes a 318 MB WAV and decodes an hour of audio), so ignored by
//! default; `streamed_features_equal_in_memory_features` in tests/cli.rs covers the same
//! code on a short clip. Run: `cargo test --release --test long_file -- --ignored`.

use std::process::Command;

fn max_rss_children_mb() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as f64 / 1024.0 // kB on Linux
}

fn hour_wav(d: &std::path::Path) -> std::path::PathBuf {
    std::fs::create_dir_all(d).unwrap();
    let wav = d.join("hour.wav");
    let sr = 44100u32;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: sr,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    let mut state = 12345u32;
    for i in 0..(3600 * sr as u64) {
        state = state.wrapping_mul(1664525).wrapping_add(1013904223);
        let noise = (state >> 16) as f32 / 65536.0 - 0.5;
        let t = i as f32 / sr as f32;
        let v = 0.3 * (2.0 * std::f32::consts::PI * (220.0 + 50.0 * (t * 0.01).sin()) * t).sin()
            + 0.05 * noise;
        w.write_sample((v * 32767.0) as i16).unwrap();
    }
    w.finalize().unwrap();
    wav
}

#[test]
#[ignore]
fn one_hour_file_to_log_mel_under_100_mb() {
    let d = std::env::temp_dir().join(format!("mirkit-long-{}", std::process::id()));
    let wav = hour_wav(&d);
    let out = d.join("hour.npy");
    let t = std::time::Instant::now();
    let st = Command::new(env!("CARGO_BIN_EXE_mirkit"))
        .args(["features"])
        .arg(&wav)
        .arg("-o")
        .arg(&out)
        .args(["--n-fft", "512", "--hop-length", "256", "--db"])
        .status()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(st.success());
    let rss = max_rss_children_mb();
    let bytes = std::fs::metadata(&out).unwrap().len();
    let frames = 1 + 3600 * 22050 / 256;
    assert_eq!(bytes, 128 + 128 * frames as u64 * 4);
    eprintln!(
        "one hour: {secs:.1} s wall, peak RSS {rss:.1} MB, output {} MB",
        bytes / 1_000_000
    );
    std::fs::remove_dir_all(&d).unwrap();
    assert!(rss < 100.0, "peak RSS {rss:.1} MB");
}

/// Tagging streams too: a one-hour file with the default model in bounded memory
/// (issue #5: peak RSS under 200 MB).
#[test]
#[ignore]
fn one_hour_file_tagged_under_200_mb() {
    let d = std::env::temp_dir().join(format!("mirkit-long-tag-{}", std::process::id()));
    let wav = hour_wav(&d);
    let t = std::time::Instant::now();
    let o = Command::new(env!("CARGO_BIN_EXE_mirkit"))
        .args(["tag", "--format", "json"])
        .arg(&wav)
        .output()
        .unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // the default musicnn-mtt: centred 16 kHz frames every 256 samples,
    // 1 + 3600·16000/256 = 225 001 of them, in whole 187-frame patches
    assert_eq!(v[0]["windows"], (1 + 3600 * 16_000 / 256) / 187);
    let rss = max_rss_children_mb();
    eprintln!("one hour tagged: {secs:.1} s wall, peak RSS {rss:.1} MB");
    std::fs::remove_dir_all(&d).unwrap();
    assert!(rss < 200.0, "peak RSS {rss:.1} MB");
}
