//! Decoding, loading, resampling, streaming and bad-input tests for mirkit-io.
//! Reference decodes come from soundfile 0.12.1 / libsndfile 1.2.0 and resampling from
//! `librosa.resample(res_type="soxr_hq")` (librosa 0.11.0, soxr 0.5.0.post1), written by
//! `tools/make_fixtures.py`.

use mirkit_core::npy;
use mirkit_io::*;
use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..")
}
fn fx(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}
fn fmt(name: &str) -> PathBuf {
    fx("formats").join(name)
}
fn trumpet() -> PathBuf {
    root().join("data/clips/sorohanro_-_solo-trumpet-06.hq.ogg")
}
fn arr(name: &str) -> ndarray::ArrayD<f32> {
    npy::read(fx(&format!("{name}.npy"))).unwrap().to_f32()
}
fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mirkit-io-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn lossless_formats_decode_exactly_like_soundfile() {
    for (file, fixture) in [
        ("pcm16.wav", "formats_pcm16_wav"),
        ("pcm24.wav", "formats_pcm24_wav"),
        ("pcm32.wav", "formats_pcm32_wav"),
        ("u8.wav", "formats_u8_wav"),
        ("f32.wav", "formats_f32_wav"),
        ("tone.flac", "formats_tone_flac"),
        ("tone.aiff", "formats_tone_aiff"),
        // ALAC in MP4 made from pcm16.wav's 16-bit samples (tools/make_fixtures.py)
        ("tone_alac.m4a", "formats_pcm16_wav"),
    ] {
        let a = load(
            fmt(file),
            &LoadOptions {
                sr: None,
                mono: false,
                ..Default::default()
            },
        )
        .unwrap();
        let want = arr(fixture);
        assert_eq!(a.view().shape(), want.shape(), "{file}");
        let err = a
            .view()
            .iter()
            .zip(want.iter())
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        // integer PCM scaled by 2^-(bits-1) is exact in f32 up to 24 bits; 32-bit int
        // rounds to f32's 24-bit mantissa (≤ 2^-25 relative)
        assert!(err <= 6e-8, "{file}: max error {err}");
        let i = info(fmt(file)).unwrap();
        assert_eq!(
            (i.sample_rate, i.channels, i.n_frames),
            (44100, 2, Some(22050)),
            "{file}"
        );
    }
}

#[test]
fn lossy_formats_decode_to_the_tone() {
    // Vorbis and MP3 carry their encoder delay and symphonia trims it (gapless); AAC in
    // MP4 signals it with an edit list that symphonia 0.5 does not apply, so the decoded
    // stream starts with FFmpeg's 1024 priming samples (a known limitation, docs/io.md).
    for (file, priming) in [("tone.ogg", 0usize), ("tone.mp3", 0), ("tone.m4a", 1024)] {
        let a = load(
            fmt(file),
            &LoadOptions {
                sr: None,
                mono: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a.channels(), 2, "{file}");
        assert_eq!(a.sample_rate(), 44100);
        // gapless trimming keeps length within one codec frame of 22050
        assert!(
            (a.len() as i64 - 22050 - priming as i64).abs() <= 2048,
            "{file}: {} frames",
            a.len()
        );
        // compare against the generating tone over the middle (codec delay-free region)
        let l = a.channel(0);
        let mut num = 0.0f64;
        let mut den = 0.0f64;
        for i in 5000..15000 {
            let t = i as f64 / 44100.0;
            let r = 0.5 * (2.0 * std::f64::consts::PI * 440.0 * t).sin();
            num += r * r;
            den += (l[i + priming] as f64 - r).powi(2);
        }
        let snr = 10.0 * (num / den).log10();
        assert!(snr > 20.0, "{file}: SNR against the tone {snr:.1} dB");
        let i = info(fmt(file)).unwrap();
        assert_eq!((i.sample_rate, i.channels), (44100, 2), "{file}");
    }
}

#[test]
fn real_vorbis_clip_matches_libsndfile_decode() {
    let a = load(
        trumpet(),
        &LoadOptions {
            sr: None,
            mono: false,
            duration: Some(2.0),
            ..Default::default()
        },
    )
    .unwrap();
    let want = arr("io_trumpet_native_first2s");
    assert_eq!(a.view().shape(), want.shape());
    let peak = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let err = a
        .view()
        .iter()
        .zip(want.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    // two independent Vorbis decoders (symphonia, libvorbis) agree to float round-off
    assert!(err <= 1e-4 * peak, "max error {err} (peak {peak})");
    let i = info(trumpet()).unwrap();
    assert_eq!(i.codec, "vorbis");
    assert!((i.duration_secs.unwrap() - 5.3).abs() < 0.1);
}

#[test]
fn offset_and_duration_follow_librosa() {
    let want: Vec<f32> = arr("io_trumpet_offset1.5_dur0.5").iter().copied().collect();
    let a = load(
        trumpet(),
        &LoadOptions {
            sr: None,
            offset: 1.5,
            duration: Some(0.5),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(a.len(), want.len());
    let err = a
        .samples()
        .iter()
        .zip(&want)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(err <= 1e-4, "max error {err}");
    let e = load(
        trumpet(),
        &LoadOptions {
            offset: 100.0,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, IoError::InvalidParameter { name: "offset", .. }),
        "{e}"
    );
}

fn snr_db(reference: &[f32], x: &[f32]) -> f64 {
    let n = reference.len().min(x.len());
    let num: f64 = reference[..n].iter().map(|&v| (v as f64).powi(2)).sum();
    let den: f64 = reference[..n]
        .iter()
        .zip(&x[..n])
        .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
        .sum();
    10.0 * (num / den).log10()
}

#[test]
fn resampling_matches_soxr_hq_above_50_db() {
    let native = load(trumpet(), &LoadOptions::native()).unwrap();
    for target in [22050u32, 16000, 12000] {
        let want: Vec<f32> = arr(&format!("io_trumpet_mono_{target}_soxr_hq"))
            .iter()
            .copied()
            .collect();
        let got = resample(native.samples(), 44100, target, ResampleQuality::High).unwrap();
        assert_eq!(got.len(), want.len(), "length for {target} Hz");
        let snr = snr_db(&want, &got);
        eprintln!("44100 -> {target}: SNR vs soxr_hq {snr:.1} dB (high)");
        assert!(snr >= 50.0, "{target}: SNR {snr:.1} dB");
        let fast = resample(native.samples(), 44100, target, ResampleQuality::Fast).unwrap();
        assert_eq!(fast.len(), want.len());
        let snr = snr_db(&want, &fast);
        eprintln!("44100 -> {target}: SNR vs soxr_hq {snr:.1} dB (fast)");
        assert!(snr >= 40.0, "fast {target}: SNR {snr:.1} dB");
    }
}

#[test]
fn stream_equals_load() {
    let opts = LoadOptions::at(16000);
    let loaded = load(trumpet(), &opts).unwrap();
    let mut streamed = Vec::new();
    let mut blocks = 0;
    for b in AudioStream::open(trumpet(), &opts).unwrap() {
        streamed.extend(b.unwrap());
        blocks += 1;
    }
    assert!(blocks > 10);
    assert_eq!(streamed.len(), loaded.len());
    // same decoder and resampler, fed in different block sizes
    let err = streamed
        .iter()
        .zip(loaded.samples())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err <= 1e-6, "stream vs load {err}");
}

#[test]
fn mono_load_equals_the_mean_of_the_channels() {
    // load(mono) reads the decoder's mono blocks; the reference is the multichannel load
    // averaged by AudioBuffer::to_mono and resampled: equal values (== also equates the
    // sign of zero, the one thing that may differ), in every format, with offset and
    // duration, at the native and at another rate
    let mut files: Vec<PathBuf> = [
        "pcm16.wav",
        "pcm24.wav",
        "f32.wav",
        "u8.wav",
        "tone.flac",
        "tone.ogg",
        "tone.mp3",
        "tone.m4a",
        "tone.aiff",
    ]
    .iter()
    .map(|f| fmt(f))
    .collect();
    files.push(trumpet());
    for f in &files {
        for (sr, offset, duration) in [(None, 0.0, None), (Some(16000), 0.1, Some(0.5))] {
            let opts = LoadOptions {
                sr,
                offset,
                duration,
                ..LoadOptions::default()
            };
            let mono = load(f, &opts).unwrap();
            let multi = load(
                f,
                &LoadOptions {
                    mono: false,
                    sr: None,
                    ..opts.clone()
                },
            )
            .unwrap();
            let mean = multi.to_mono();
            let want = match sr {
                Some(r) if r != multi.sample_rate() => {
                    resample(mean.samples(), multi.sample_rate(), r, opts.quality).unwrap()
                }
                _ => mean.samples().to_vec(),
            };
            assert_eq!(mono.channels(), 1);
            assert_eq!(mono.sample_rate(), sr.unwrap_or(multi.sample_rate()));
            assert_eq!(mono.samples().len(), want.len(), "{}", f.display());
            let same = mono.samples().iter().zip(&want).all(|(a, b)| a == b);
            assert!(same, "{} {sr:?}", f.display());
        }
    }
}

#[test]
fn parallel_resampling_has_the_bits_of_one_thread() {
    // a long signal resampled on four threads equals one thread and the streamed
    // resampler, bit for bit, for a decimation and a rational ratio
    let mut rng = mirkit_core::Rng::new(3);
    let x: Vec<f32> = (0..300_001)
        .map(|_| (rng.uniform() * 2.0 - 1.0) as f32)
        .collect();
    for (from, to) in [
        (44100, 22050),
        (48000, 16000),
        (44100, 16000),
        (16000, 22050),
    ] {
        let on = |threads: usize| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap()
                .install(|| resample(&x, from, to, ResampleQuality::High).unwrap())
        };
        let one = on(1);
        let four = on(4);
        let mut streamed = Vec::new();
        let mut r = StreamResampler::new(from, to, ResampleQuality::High).unwrap();
        for block in x.chunks(7919) {
            r.push(block, &mut streamed).unwrap();
        }
        r.finish(&mut streamed).unwrap();
        assert_eq!(
            one.len(),
            (x.len() as u64 * to as u64).div_ceil(from as u64) as usize
        );
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&four), bits(&one), "{from} -> {to}");
        assert_eq!(bits(&streamed), bits(&one), "{from} -> {to}");
    }
}

#[test]
fn wav_round_trip_and_atomic_write() {
    let d = tmpdir("wav");
    let a = load(
        fmt("pcm16.wav"),
        &LoadOptions {
            sr: None,
            mono: false,
            ..Default::default()
        },
    )
    .unwrap();
    for (f, name) in [
        (WavFormat::Pcm16, "a16.wav"),
        (WavFormat::Float32, "af.wav"),
    ] {
        let p = d.join(name);
        write_wav(&p, &a, f).unwrap();
        let b = load(
            &p,
            &LoadOptions {
                sr: None,
                mono: false,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(a, b, "{name}");
    }
    // writing into a missing directory fails cleanly
    let bad = d.join("no/such/dir/x.wav");
    assert!(matches!(
        write_wav(&bad, &a, WavFormat::Pcm16),
        Err(IoError::Write { .. })
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn bad_inputs_give_typed_errors() {
    let d = tmpdir("bad");
    // zero-length file
    let empty = d.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(
        load(&empty, &LoadOptions::default()),
        Err(IoError::EmptyFile { .. })
    ));
    // a text file named .mp3
    let e = load(fmt("not_audio.mp3"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
    assert!(e.to_string().contains("not_audio.mp3"));
    // missing file
    assert!(matches!(
        load(d.join("nope.wav"), &LoadOptions::default()),
        Err(IoError::Open { .. })
    ));
    // NaN sample in a float WAV
    let e = load(fmt("nan_f32.wav"), &LoadOptions::default()).unwrap_err();
    assert!(matches!(e, IoError::NonFinite { frame: 1000, .. }), "{e}");
    // absurd parameters
    assert!(matches!(
        load(fmt("pcm16.wav"), &LoadOptions::at(0)),
        Err(IoError::InvalidParameter { name: "sr", .. })
    ));
    let neg = LoadOptions {
        offset: -1.0,
        ..Default::default()
    };
    assert!(matches!(
        load(fmt("pcm16.wav"), &neg),
        Err(IoError::InvalidParameter { name: "offset", .. })
    ));
    let nan = LoadOptions {
        duration: Some(f64::NAN),
        ..Default::default()
    };
    assert!(matches!(
        load(fmt("pcm16.wav"), &nan),
        Err(IoError::InvalidParameter {
            name: "duration",
            ..
        })
    ));
    assert!(matches!(
        resample(&[0.0; 10], 0, 16000, ResampleQuality::High),
        Err(IoError::InvalidParameter { .. })
    ));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn truncated_files_of_each_format_are_errors() {
    let d = tmpdir("trunc");
    for file in [
        "pcm16.wav",
        "pcm24.wav",
        "f32.wav",
        "tone.flac",
        "tone.ogg",
        "tone.mp3",
        "tone.aiff",
        "tone.m4a",
    ] {
        let bytes = std::fs::read(fmt(file)).unwrap();
        for frac in [0.6, 0.2] {
            let cut = (bytes.len() as f64 * frac) as usize;
            let p = d.join(format!("cut{}_{file}", (frac * 100.0) as u32));
            std::fs::write(&p, &bytes[..cut]).unwrap();
            match load(&p, &LoadOptions::native()) {
                Err(IoError::Truncated { .. })
                | Err(IoError::Corrupt { .. })
                | Err(IoError::Unsupported { .. }) => {}
                Err(e) => panic!("{file} cut at {frac}: unexpected error kind {e:?}"),
                Ok(a) => panic!(
                    "{file} cut at {frac}: decoded {} frames without error",
                    a.len()
                ),
            }
        }
        // cut inside the header
        let p = d.join(format!("hdr_{file}"));
        std::fs::write(&p, &bytes[..bytes.len().min(20)]).unwrap();
        assert!(
            load(&p, &LoadOptions::native()).is_err(),
            "{file}: header-only file loaded"
        );
    }
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn seeking_is_sample_exact_in_every_format() {
    for file in [
        "pcm16.wav",
        "pcm24.wav",
        "f32.wav",
        "u8.wav",
        "tone.flac",
        "tone.aiff",
        "tone.ogg",
        "tone.mp3",
        "tone.m4a",
    ] {
        let full = load(
            fmt(file),
            &LoadOptions {
                sr: None,
                mono: false,
                ..Default::default()
            },
        )
        .unwrap();
        for offset in [0.1, 0.2537] {
            let part = load(
                fmt(file),
                &LoadOptions {
                    sr: None,
                    mono: false,
                    offset,
                    duration: Some(0.1),
                    ..Default::default()
                },
            )
            .unwrap();
            let start = (offset * 44100.0f64).round() as usize;
            assert_eq!(part.len(), 4410, "{file}");
            let err = (0..part.len())
                .flat_map(|i| (0..2).map(move |c| (c, i)))
                .map(|(c, i)| (part.view()[[c, i]] - full.view()[[c, start + i]]).abs())
                .fold(0.0, f32::max);
            // lossy decoders after a seek re-prime their overlap: allow codec noise, not a shift
            let tol =
                if file.ends_with(".wav") || file.ends_with(".flac") || file.ends_with(".aiff") {
                    0.0
                } else {
                    2e-3
                };
            assert!(err <= tol, "{file} offset {offset}: max error {err}");
        }
    }
}

/// The folder walk survives symbolic-link loops and enters a linked folder once; devices
/// are named as such, not as empty files (issue #19, items 7 and 11).
#[test]
fn folder_walk_with_symlink_loops_and_devices() {
    let d = std::env::temp_dir().join(format!("mirkit-walk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(d.join("a/b")).unwrap();
    std::fs::write(d.join("a/x.wav"), b"RIFF").unwrap();
    std::fs::write(d.join("a/b/y.flac"), b"fLaC").unwrap();
    std::os::unix::fs::symlink(&d, d.join("a/b/loop")).unwrap();
    std::os::unix::fs::symlink(d.join("a"), d.join("again")).unwrap();
    std::os::unix::fs::symlink(d.join("a"), d.join("again2")).unwrap();
    let files = mirkit_io::audio_files(&d).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["y.flac", "x.wav"], "{files:?}");
    std::fs::remove_dir_all(&d).unwrap();
    if std::path::Path::new("/dev/zero").exists() {
        let e = mirkit_io::info("/dev/zero").unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
    }
}

/// symphonia 0.5 panics on a WAV header with sample rate 0 (`TimeBase cannot have 0
/// numerator`): mirkit turns it into an error naming the file (issue #19, item 2).
#[test]
fn decoder_panics_become_errors() {
    let root = std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..");
    let mut b = std::fs::read(root.join("tests/fixtures/formats/pcm16.wav")).unwrap();
    b[24..28].copy_from_slice(&0u32.to_le_bytes());
    let p = std::env::temp_dir().join(format!("mirkit-sr0-{}.wav", std::process::id()));
    std::fs::write(&p, &b).unwrap();
    let e = mirkit_io::info(&p).unwrap_err().to_string();
    assert!(
        e.contains("mirkit-sr0") && e.contains("malformed file"),
        "{e}"
    );
    let e = mirkit_io::load(&p, &mirkit_io::LoadOptions::native()).unwrap_err();
    assert!(e.to_string().contains("malformed file"), "{e}");
    std::fs::remove_file(&p).unwrap();
}

/// A header claiming an absurd sample rate (1 Hz, 10 MHz) is refused, naming the rate,
/// before any resampling could blow the output up (issue #19, item 4).
#[test]
fn absurd_header_sample_rates_are_refused() {
    let root = std::path::Path::new(
        &std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("../..");
    for rate in [1u32, 2, 999, 10_000_000] {
        let mut b = std::fs::read(root.join("tests/fixtures/formats/pcm16.wav")).unwrap();
        b[24..28].copy_from_slice(&rate.to_le_bytes());
        let p = std::env::temp_dir().join(format!("mirkit-rate{rate}-{}.wav", std::process::id()));
        std::fs::write(&p, &b).unwrap();
        let e = mirkit_io::AudioStream::open(&p, &mirkit_io::LoadOptions::at(22050))
            .err()
            .unwrap_or_else(|| panic!("{rate} Hz accepted"))
            .to_string();
        assert!(e.contains(&format!("sample rate {rate} Hz")), "{e}");
        std::fs::remove_file(&p).unwrap();
    }
}

/// Issue #19 items 1 and 4: MP4 and FLAC fields that made symphonia allocate gigabytes before
/// reading anything — a 2.9 GB sample size found by fuzzing (kept as a fixture), a
/// sample table count, an ALAC frame length — are refused as malformed MP4 naming the box,
/// by `info` and `load`, and the process stays small (the test would abort otherwise).
#[test]
fn header_fields_that_ask_for_gigabytes_are_refused() {
    let dir = tmpdir("mp4huge");
    let alac = std::fs::read(fmt("tone_alac.m4a")).unwrap();
    let at = |b: &[u8], t: &[u8; 4], from: usize| {
        from + b[from..].windows(4).position(|w| w == t).unwrap() - 4
    };
    let mut frame = alac.clone();
    let entry = at(&alac, b"alac", 0);
    let cookie = at(&alac, b"alac", entry + 8);
    frame[cookie + 12..cookie + 16].copy_from_slice(&0x4000_0000u32.to_be_bytes());
    let mut count = alac.clone();
    let stsc = at(&alac, b"stsc", 0);
    count[stsc + 12..stsc + 16].copy_from_slice(&0x1000_0000u32.to_be_bytes());
    std::fs::write(dir.join("frame.m4a"), &frame).unwrap();
    std::fs::write(dir.join("count.m4a"), &count).unwrap();
    // tone.flac's Vorbis comment block (type 4) with a vendor length of 2.25 GiB
    let mut flac = std::fs::read(fmt("tone.flac")).unwrap();
    let mut pos = 4;
    while flac[pos] & 0x7f != 4 {
        pos += 4 + u32::from_be_bytes([0, flac[pos + 1], flac[pos + 2], flac[pos + 3]]) as usize;
    }
    flac[pos + 4..pos + 8].copy_from_slice(&0x9000_0000u32.to_le_bytes());
    std::fs::write(dir.join("comment.flac"), &flac).unwrap();
    for (f, box_name) in [
        (fx("fuzz/decode-oom-sample-size.m4a"), "stsz"),
        // a FLAC Vorbis comment claiming 2.5 GB, in a file cut short (fuzzing)
        (
            fx("fuzz/decode-oom-vorbis-comment.flac"),
            "runs past the end",
        ),
        (
            dir.join("comment.flac"),
            "Vorbis comment: vendor string of 2415919104 bytes",
        ),
        (dir.join("frame.m4a"), "alac"),
        (dir.join("count.m4a"), "stsc"),
    ] {
        let e = load(&f, &LoadOptions::default()).unwrap_err().to_string();
        assert!(
            e.contains("malformed") && e.contains(box_name),
            "{}: {e}",
            f.display()
        );
        assert!(info(&f).is_err());
    }
    // the files they came from still load
    assert!(load(fmt("tone_alac.m4a"), &LoadOptions::default()).is_ok());
    assert!(load(fmt("tone.m4a"), &LoadOptions::default()).is_ok());
    assert!(load(fmt("tone.flac"), &LoadOptions::default()).is_ok());
    std::fs::remove_dir_all(&dir).unwrap();
}
