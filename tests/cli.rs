//! End-to-end tests of the `mirkit` binary and the streaming pipeline.

use mirkit::core::npy;
use mirkit::dsp::{Compression, DbConfig, FeatureConfig, FeatureExtractor, MfccSettings};
use mirkit::io::{load, LoadOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mirkit"))
}
fn clip(name: &str) -> PathBuf {
    PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("data/clips")
    .join(name)
}
const TRUMPET: &str = "sorohanro_-_solo-trumpet-06.hq.ogg";
use mirkit_core::testing::TmpDir;

fn tmp(tag: &str) -> TmpDir {
    TmpDir::new(&format!("mirkit-cli-{tag}-"))
}
/// The names in a folder, sorted.
fn sorted_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}
fn read2(p: &Path) -> ndarray::Array2<f32> {
    npy::read(p).unwrap().to_f32_2d().unwrap()
}

/// The streamed, two-pass file pipeline gives exactly the in-memory result.
#[test]
fn streamed_features_equal_in_memory_features() {
    let d = tmp("stream");
    let y = load(clip(TRUMPET), &LoadOptions::at(22050)).unwrap();
    let mut cfgs = vec![
        FeatureConfig::librosa(),
        FeatureConfig::won2020(),
        FeatureConfig::musicnn(),
    ];
    let mut c = FeatureConfig::librosa();
    c.compression = Compression::Db(DbConfig::default());
    cfgs.push(c.clone());
    // ref=max: the in-place second pass subtracts the file's maximum
    let mut m = c.clone();
    m.compression = Compression::Db(DbConfig {
        reference: mirkit::dsp::DbRef::Max,
        ..DbConfig::default()
    });
    cfgs.push(m);
    c.mfcc = Some(MfccSettings {
        n_mfcc: 20,
        lifter: 0.0,
    });
    cfgs.push(c);
    let mut lin = FeatureConfig::torchaudio();
    lin.mel = None;
    cfgs.push(lin);
    for (i, mut cfg) in cfgs.into_iter().enumerate() {
        cfg.sample_rate = 22050;
        let want = FeatureExtractor::new(cfg.clone())
            .unwrap()
            .compute(y.samples())
            .unwrap()
            .into_array();
        let out = d.join(format!("f{i}.npy"));
        mirkit::pipeline::features_to_npy(clip(TRUMPET), &out, &cfg, &Default::default()).unwrap();
        let got = read2(&out);
        assert_eq!(got.dim(), want.dim(), "config {i}");
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())),
            "config {i} differs"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| !n.to_string_lossy().ends_with(".npy") || n.to_string_lossy().contains("part"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn features_command_writes_npy_and_png() {
    let d = tmp("feat");
    let out = d.join("t.npy");
    let png = d.join("t.png");
    let st = bin()
        .args(["features"])
        .arg(clip(TRUMPET))
        .args(["-o"])
        .arg(&out)
        .args([
            "--sr",
            "16000",
            "--n-fft",
            "512",
            "--hop-length",
            "256",
            "--n-mels",
            "96",
            "--db",
            "--top-db",
            "none",
            "--png",
        ])
        .arg(&png)
        .status()
        .unwrap();
    assert!(st.success());
    let a = read2(&out);
    let y = load(clip(TRUMPET), &LoadOptions::at(16000)).unwrap();
    assert_eq!(a.dim(), (96, 1 + y.len() / 256));
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");

    // MFCC with librosa-named options
    let out = d.join("m.npy");
    assert!(bin()
        .arg("features")
        .arg(clip(TRUMPET))
        .arg("-o")
        .arg(&out)
        .args(["--mfcc", "13"])
        .status()
        .unwrap()
        .success());
    assert_eq!(read2(&out).nrows(), 13);
}

#[test]
fn folder_mode_skips_bad_files_and_fails_at_the_end() {
    let d = tmp("dir");
    let src = d.join("in");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::copy(clip(TRUMPET), src.join("a.ogg")).unwrap();
    std::fs::copy(clip(TRUMPET), src.join("sub/b.ogg")).unwrap();
    std::fs::write(src.join("sub/broken.mp3"), b"not audio at all").unwrap();
    std::fs::write(src.join("notes.txt"), b"ignored").unwrap();
    let out = d.join("out");
    let o = bin()
        .arg("features")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .args(["--db"])
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a failed file must make the exit status non-zero"
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("broken.mp3"),
        "stderr names the bad file: {err}"
    );
    assert!(out.join("a.npy").exists() && out.join("sub/b.npy").exists());
    assert!(!out.join("sub/broken.npy").exists());
    assert_eq!(read2(&out.join("a.npy")), read2(&out.join("sub/b.npy")));
}

#[test]
fn bad_options_and_inputs_are_reported() {
    let d = tmp("bad");
    let out = d.join("x.npy");
    for args in [
        vec!["--hop-length", "0"],
        vec!["--fmax", "20000"],
        vec!["--n-mels", "40", "--mfcc", "41"],
        vec!["--sr", "0"],
        vec!["--preset", "nope"],
        vec!["--pad-mode", "wrap"],
    ] {
        let o = bin()
            .arg("features")
            .arg(clip(TRUMPET))
            .arg("-o")
            .arg(&out)
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?} accepted");
        assert!(!String::from_utf8_lossy(&o.stderr).is_empty());
        assert!(!out.exists(), "{args:?} left an output file");
    }
    let empty = d.join("empty.wav");
    std::fs::write(&empty, b"").unwrap();
    let o = bin()
        .arg("features")
        .arg(&empty)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("empty"));
    let o = bin().args(["info"]).arg(&empty).output().unwrap();
    assert!(!o.status.success());
}

#[test]
fn info_command_prints_header_facts() {
    let o = bin()
        .args(["info", "--json"])
        .arg(clip(TRUMPET))
        .output()
        .unwrap();
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["codec"], "vorbis");
    assert_eq!(v["sample_rate"], 44100);
    assert_eq!(v["channels"], 2);
    assert_eq!(v["frames"], 235201);
}

#[test]
fn augment_command_is_seeded_and_records() {
    let d = tmp("aug");
    let run = |seed: &str, out: &str, rec: &str| {
        bin()
            .arg("augment")
            .arg(clip(TRUMPET))
            .arg("-o")
            .arg(d.join(out))
            .args([
                "--pitch-shift",
                "-2:2",
                "--time-stretch",
                "0.81:1.23",
                "--gain",
                "-3",
                "--noise-snr",
                "20:30",
                "--seed",
                seed,
                "--record",
            ])
            .arg(d.join(rec))
            .status()
            .unwrap()
    };
    assert!(run("3", "a.wav", "a.json").success());
    assert!(run("3", "b.wav", "b.json").success());
    assert!(run("4", "c.wav", "c.json").success());
    let read = |f: &str| std::fs::read(d.join(f)).unwrap();
    assert_eq!(read("a.wav"), read("b.wav"));
    assert_eq!(read("a.json"), read("b.json"));
    assert_ne!(read("a.wav"), read("c.wav"));
    let rec =
        mirkit::augment::records_from_json(&String::from_utf8(read("a.json")).unwrap()).unwrap();
    let names: Vec<&str> = rec.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["pitch_shift", "time_stretch", "gain", "noise"]);
    let rate = rec[1].get("rate").unwrap();
    let y = load(clip(TRUMPET), &LoadOptions::native()).unwrap();
    let a = load(d.join("a.wav"), &LoadOptions::native()).unwrap();
    assert_eq!(a.len(), (y.len() as f64 / rate).round() as usize);
    // a range with min > max, and a rate of 0, are refused without writing anything
    for args in [
        vec!["--pitch-shift", "2:-2"],
        vec!["--time-stretch", "0"],
        vec!["--noise-snr", "nan"],
    ] {
        let o = bin()
            .arg("augment")
            .arg(clip(TRUMPET))
            .arg("-o")
            .arg(d.join("x.wav"))
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?}");
        assert!(!d.join("x.wav").exists());
    }
}

#[test]
fn tag_command_prints_top_tags_and_skips_bad_files() {
    let d = tmp("tag");
    let png = d.join("taggram.png");
    let o = bin()
        .arg("tag")
        .arg(clip(TRUMPET))
        .args(["--top-k", "3", "--png"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(out.lines().count(), 4, "{out}");
    assert_eq!(&std::fs::read(&png).unwrap()[1..4], b"PNG");
    std::fs::copy(clip(TRUMPET), d.join("a.ogg")).unwrap();
    std::fs::write(d.join("bad.mp3"), b"nope").unwrap();
    let json = d.join("out.json");
    let o = bin()
        .arg("tag")
        .arg(&d)
        .args(["--format", "json", "--model", "won2020-fcn-mtat", "-o"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(
        !o.status.success(),
        "a bad file makes the exit status non-zero"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("bad.mp3"));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["scores"].as_object().unwrap().len(), 50);
    assert_eq!(v[0]["model"], "won2020-fcn-mtat");
    let o = bin()
        .arg("tag")
        .arg(clip(TRUMPET))
        .args(["--model", "nope"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown model"));
}

#[test]
fn embed_and_similar_rank_the_query_itself_first() {
    let d = tmp("embed");
    let src = d.join("music");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(clip(TRUMPET), src.join("trumpet.ogg")).unwrap();
    std::fs::copy(
        clip("brahms_hungarian_dance_5.hq.ogg"),
        src.join("brahms.ogg"),
    )
    .unwrap();
    let idx = d.join("index");
    let o = bin()
        .arg("embed")
        .arg(&src)
        .arg("-o")
        .arg(&idx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let e = npy::read(idx.join("embeddings.npy")).unwrap();
    assert_eq!(e.shape, vec![2, 200]);
    let o = bin()
        .arg("similar")
        .arg(clip(TRUMPET))
        .arg("--index")
        .arg(&idx)
        .args(["-k", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    let first = out.lines().next().unwrap();
    assert!(
        first.contains("trumpet.ogg") && first.contains("1.0000"),
        "{out}"
    );
    let one = d.join("one.npy");
    assert!(bin()
        .arg("embed")
        .arg(clip(TRUMPET))
        .arg("-o")
        .arg(&one)
        .args(["--model", "won2020-fcn-mtat"])
        .status()
        .unwrap()
        .success());
    assert_eq!(npy::read(&one).unwrap().shape, vec![64]);
}

#[test]
fn tag_segments_resume_and_shards() {
    let d = tmp("resume");
    let src = d.join("in");
    std::fs::create_dir_all(&src).unwrap();
    for n in ["a", "b", "c"] {
        std::fs::copy(clip(TRUMPET), src.join(format!("{n}.ogg"))).unwrap();
    }
    let out = d.join("tags.json");
    // shard 0/2 takes files 0 and 2 of the sorted list
    let st = bin()
        .arg("tag")
        .arg(&src)
        .args(["--format", "json", "--segments", "--shard", "0/2", "-o"])
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let files: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["file"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2);
    assert!(files[0].ends_with("a.ogg") && files[1].ends_with("c.ogg"));
    assert_eq!(v[0]["segments"][0]["start_secs"], 0.0);
    // --resume adds only what is missing
    let o = bin()
        .arg("tag")
        .arg(&src)
        .args(["--format", "json", "--resume", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("1 file(s) tagged"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 3);
    let o = bin()
        .arg("tag")
        .arg(&src)
        .args(["--shard", "2/2"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    // --shard auto in a Slurm array (--array=1-2, this is task 2): the second shard, b.ogg
    let o = bin()
        .arg("tag")
        .arg(&src)
        .args(["--format", "json", "--shard", "auto"])
        .env("SLURM_ARRAY_TASK_ID", "2")
        .env("SLURM_ARRAY_TASK_MIN", "1")
        .env("SLURM_ARRAY_TASK_COUNT", "2")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let files: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["file"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with("b.ogg"), "{files:?}");
    // an Indexed Job without its shard count is a usage error naming the variable
    let o = bin()
        .arg("tag")
        .arg(&src)
        .args(["--shard", "auto"])
        .env("JOB_COMPLETION_INDEX", "1")
        .env_remove("MIRKIT_SHARD_COUNT")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("MIRKIT_SHARD_COUNT"));
}

#[test]
fn tag_resume_keeps_what_a_killed_run_finished() {
    // issue #19 item 6: SIGKILL part-way through `tag --resume`, then resume: the final
    // output equals an uninterrupted run byte for byte, and spelling the folder another
    // way adds nothing
    let d = tmp("killed");
    let src = d.join("in");
    std::fs::create_dir_all(&src).unwrap();
    for k in 0..6 {
        std::fs::copy(
            clip("brahms_hungarian_dance_5.hq.ogg"),
            src.join(format!("{k}.ogg")),
        )
        .unwrap();
    }
    let run = |out: &Path, dir: &Path| {
        bin()
            .arg("tag")
            .arg(dir)
            .args(["--format", "json", "--resume", "-o"])
            .arg(out)
            .env("MIRKIT_FLUSH_SECS", "0")
            .output()
            .unwrap()
    };
    let full = d.join("full.json");
    assert!(run(&full, &src).status.success());
    let records = |p: &Path| -> Option<usize> {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p).ok()?).ok()?;
        Some(v.as_array()?.len())
    };
    assert_eq!(records(&full), Some(6));

    let part = d.join("part.json");
    let mut child = bin()
        .arg("tag")
        .arg(&src)
        .args(["--format", "json", "--resume", "-o"])
        .arg(&part)
        .env("MIRKIT_FLUSH_SECS", "0")
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while records(&part).unwrap_or(0) == 0 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before the first save"
        );
        assert!(t0.elapsed().as_secs() < 120, "no partial save");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let kept = records(&part).unwrap();
    assert!((1..6).contains(&kept), "{kept} records kept");
    let o = run(&part, &src);
    assert!(o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(&format!("{} file(s) tagged", 6 - kept)),
        "{err}"
    );
    assert_eq!(std::fs::read(&part).unwrap(), std::fs::read(&full).unwrap());
    // the same folder spelled `in/.`: every file is already there
    let o = run(&part, &src.join("."));
    assert!(String::from_utf8_lossy(&o.stderr).contains("0 file(s) tagged"));
    assert_eq!(std::fs::read(&part).unwrap(), std::fs::read(&full).unwrap());
}

#[test]
fn tag_csv_quotes_awkward_names() {
    // issue #19 item 9: quotes, commas and a newline in a file name stay one CSV field
    let d = tmp("csvnames");
    let name = "a \"b\",c\nd.ogg";
    std::fs::copy(clip(TRUMPET), d.join(name)).unwrap();
    let o = bin()
        .arg("tag")
        .arg(&*d)
        .args(["--format", "csv", "--segments"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut r = csv::Reader::from_reader(o.stdout.as_slice());
    assert_eq!(r.headers().unwrap().len(), 52);
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    assert_eq!(rows.len(), 2, "the mean row and one window");
    for row in &rows {
        assert!(row[0].ends_with(name), "{:?}", &row[0]);
        assert_eq!(row.len(), 52);
    }
    assert_eq!(&rows[0][1], "all");
}

#[cfg(unix)]
#[test]
fn interrupted_runs_leave_no_temporary_files() {
    // issue #19 item 8: SIGTERM or SIGINT while the output is being written removes the
    // `.part` file, keeps what the output held before, and exits 128 + signal
    let d = tmp("signals");
    let input = d.join("noise.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&input, spec).unwrap();
    let mut rng = mirkit::core::Rng::new(7);
    for _ in 0..22050 * 60 {
        w.write_sample((rng.uniform() * 8000.0 - 4000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
    let out_dir = d.join("out");
    std::fs::create_dir_all(&out_dir).unwrap();
    let out = out_dir.join("x.npy");
    std::fs::write(&out, b"earlier output").unwrap();
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        // hop 1: a 60 s linear spectrogram is ~90 MB to write, time to catch the .part
        let mut child = bin()
            .arg("features")
            .arg(&input)
            .arg("-o")
            .arg(&out)
            .args(["--n-fft", "64", "--hop-length", "1", "--n-mels", "0"])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let part = || {
            std::fs::read_dir(&out_dir)
                .unwrap()
                .any(|e| e.unwrap().file_name().to_string_lossy().contains(".part"))
        };
        let t0 = std::time::Instant::now();
        while !part() {
            assert!(
                child.try_wait().unwrap().is_none(),
                "finished before a .part appeared"
            );
            assert!(t0.elapsed().as_secs() < 120);
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // SAFETY: signalling our own child process
        assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code));
        assert!(String::from_utf8_lossy(&o.stderr).contains("temporary file(s) removed"));
        assert!(!part(), "a .part file was left");
        assert_eq!(std::fs::read(&out).unwrap(), b"earlier output");
    }
}

#[test]
fn thumbnail_lies_in_the_part_that_fills_the_track() {
    // a track whose answer is known: 10 s of noise, the trumpet clip (5.3 s), the Brahms
    // clip (45.8 s, from 15.33 s to 61.18 s) and an 8 s sine sweep; a 10 s thumbnail must
    // lie inside the Brahms part
    let d = tmp("thumb");
    let sr = 22050u32;
    let opts = LoadOptions::at(sr);
    let trumpet = load(clip(TRUMPET), &opts).unwrap().into_mono_vec();
    let brahms = load(clip("brahms_hungarian_dance_5.hq.ogg"), &opts)
        .unwrap()
        .into_mono_vec();
    let mut rng = mirkit::core::Rng::new(1);
    let mut y: Vec<f32> = (0..sr * 10).map(|_| (rng.normal() * 0.05) as f32).collect();
    y.extend(&trumpet);
    let b0 = y.len() as f64 / sr as f64;
    y.extend(&brahms);
    let b1 = y.len() as f64 / sr as f64;
    y.extend((0..sr * 8).map(|i| {
        let t = i as f64 / sr as f64;
        (0.3 * (2.0 * std::f64::consts::PI * (200.0 * t + 400.0 * t * t)).sin()) as f32
    }));
    let track = d.join("track.wav");
    let audio = mirkit::core::AudioBuffer::from_mono(y, sr).unwrap();
    mirkit::io::write_wav(&track, &audio, mirkit::io::WavFormat::Pcm16).unwrap();
    let (wav, png) = (d.join("thumb.wav"), d.join("thumb.png"));
    let o = bin()
        .arg("thumbnail")
        .arg(&track)
        .arg("-o")
        .arg(&wav)
        .args(["--seconds", "10", "--png"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8(o.stdout).unwrap();
    let v: Vec<f64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let (start, end) = (v[0], v[1]);
    assert!(
        start >= b0 && end <= b1,
        "{start}-{end} not inside {b0}-{b1}"
    );
    assert!((end - start - 10.0).abs() < 1e-9);
    let t = load(&wav, &LoadOptions::native()).unwrap();
    assert_eq!((t.sample_rate(), t.channels()), (sr, 1));
    assert_eq!(t.len(), 10 * sr as usize);
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
    // a usage error names the value
    let o = bin()
        .arg("thumbnail")
        .arg(&track)
        .args(["-o", "x.wav", "--seconds", "0"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--seconds 0"));
}

#[test]
fn musicnn_names_and_flags_are_accepted() {
    // `musicnn.extractor(model="MTT_musicnn")` and musicnn's `--topN`: same output as the
    // registry name
    let run = |model: &str, k: &str| {
        let o = bin()
            .arg("tag")
            .arg(clip(TRUMPET))
            .args(["--model", model, k, "3"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let alias = run("MTT_musicnn", "--topN");
    assert_eq!(alias, run("musicnn-mtt", "--top-k"));
    assert_eq!(alias, run("musicnn-mtt", "-k"));
    assert!(
        alias.contains("musicnn-mtt") && alias.lines().count() == 4,
        "{alias}"
    );
    // an undecodable file is described in the user's terms, the decoder's words after
    let d = tmp("junk");
    let junk = d.join("junk.mp3");
    std::fs::write(&junk, [0x5au8; 3000]).unwrap();
    let o = bin().arg("info").arg(&junk).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not an audio file mirkit can read"), "{err}");
}

#[test]
fn dash_is_standard_input_and_output() {
    use std::io::Write;
    use std::process::Stdio;
    let d = tmp("dash");
    let trumpet = clip(TRUMPET);
    let bytes = std::fs::read(&trumpet).unwrap();
    // features to stdout: the same bytes as to a file; the summary on stderr
    let file = d.join("f.npy");
    assert!(bin()
        .arg("features")
        .arg(&trumpet)
        .arg("-o")
        .arg(&file)
        .arg("--db")
        .output()
        .unwrap()
        .status
        .success());
    let o = bin()
        .arg("features")
        .arg(&trumpet)
        .args(["-o", "-", "--db"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(o.stdout, std::fs::read(&file).unwrap());
    assert!(String::from_utf8_lossy(&o.stderr).contains("-> -"));
    // a file on stdin, for each command that reads one
    let piped = |args: &[&str]| {
        let mut c = bin()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        c.stdin.take().unwrap().write_all(&bytes).unwrap();
        c.wait_with_output().unwrap()
    };
    let o = piped(&["features", "-", "-o", "-", "--db"]);
    assert!(o.status.success());
    assert_eq!(o.stdout, std::fs::read(&file).unwrap());
    let o = piped(&["tag", "-", "--format", "json", "-o", "-"]);
    assert!(o.status.success());
    let from_stdin: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(from_stdin[0]["file"], "-");
    let o = bin()
        .arg("tag")
        .arg(&trumpet)
        .args(["--format", "json"])
        .output()
        .unwrap();
    let from_file: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(from_stdin[0]["scores"], from_file[0]["scores"]);
    let o = piped(&["embed", "-", "-o", "-"]);
    assert!(o.status.success());
    assert!(o.stdout.starts_with(b"\x93NUMPY"));
    let o = piped(&["augment", "-", "-o", "-", "--gain", "-3"]);
    assert!(o.status.success());
    assert!(o.stdout.starts_with(b"RIFF"));
    // a folder's features cannot go to stdout; --resume needs a file
    let o = bin()
        .arg("features")
        .arg(trumpet.parent().unwrap())
        .args(["-o", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let o = bin()
        .arg("tag")
        .arg(&trumpet)
        .args(["--format", "json", "--resume", "-o", "-"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn completions_man_pages_and_quiet() {
    for shell in ["bash", "zsh", "fish"] {
        let o = bin().args(["completions", shell]).output().unwrap();
        assert!(o.status.success());
        let text = String::from_utf8(o.stdout).unwrap();
        assert!(
            text.contains("thumbnail") && text.contains("top-k"),
            "{shell}"
        );
    }
    let d = tmp("man");
    let o = bin().arg("man").arg("--out-dir").arg(&*d).output().unwrap();
    assert!(o.status.success());
    for page in [
        "mirkit.1",
        "mirkit-tag.1",
        "mirkit-features.1",
        "mirkit-thumbnail.1",
    ] {
        let text = std::fs::read_to_string(d.join(page)).unwrap();
        assert!(text.contains(".TH"), "{page}");
    }
    let tag_page = std::fs::read_to_string(d.join("mirkit-tag.1")).unwrap();
    assert!(tag_page.contains("shard"));
    // --quiet: no summary, no progress; the data still written
    let out = d.join("q.npy");
    let o = bin()
        .args(["-q", "features"])
        .arg(clip(TRUMPET))
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(o.stdout.is_empty() && o.stderr.is_empty());
    assert!(out.exists());
    let o = bin()
        .args(["tag", "--quiet"])
        .arg(clip(TRUMPET))
        .output()
        .unwrap();
    assert!(!o.stdout.is_empty() && o.stderr.is_empty());
    // one vocabulary: the aliases parse (a missing index is a failure, exit 1, not a
    // usage error)
    let o = bin()
        .arg("similar")
        .arg(clip(TRUMPET))
        .args(["--index", "no-such-index", "--top-k", "3"])
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    for (cmd, flag) in [
        ("finetune", "--model"),
        ("finetune", "--output"),
        ("train", "--output"),
    ] {
        let o = bin().args([cmd, "--help"]).output().unwrap();
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(flag),
            "{cmd} {flag}"
        );
    }
}

#[test]
fn default_tagger_is_musicnn_and_matches_the_original_pipeline() {
    // musicnn 0.1.0's own extractor (TensorFlow, librosa 0.11 with soxr_hq) on the same
    // 44.1 kHz files: tools/make_musicnn_fixtures.py. Tolerance 1e-2 (the bar from
    // 44.1 kHz input: resamplers differ), same top-5 order.
    let t = mirkit::Tagger::default().unwrap();
    assert_eq!(t.name(), "musicnn-mtt");
    for (file, fx, windows) in [
        ("brahms_hungarian_dance_5.hq.ogg", "brahms_h", 15),
        (TRUMPET, "sorohanr", 1),
    ] {
        let r = t.tag_file(clip(file)).unwrap();
        assert_eq!(r.segments.len(), windows);
        let want = npy::read(
            std::path::Path::new(
                &std::env::var("CARGO_MANIFEST_DIR")
                    .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
            )
            .join(format!(
                "tests/fixtures/musicnn/musicnn-mtt_{fx}_original.npy"
            )),
        )
        .unwrap();
        let want: Vec<f32> = want.data.iter().map(|&v| v as f32).collect();
        let e = r
            .scores
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        let top = |s: &[f32]| {
            let mut i: Vec<usize> = (0..s.len()).collect();
            i.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
            i.truncate(5);
            i
        };
        eprintln!(
            "{file}: max |score - original| = {e:.2e}, top {:?}",
            r.top_k(5)
        );
        assert!(e <= 1e-2, "{file}: {e}");
        assert_eq!(top(&r.scores), top(&want), "{file}");
        // streaming equals tagging the whole loaded signal, bit for bit: files and memory
        // go through the one windowing driver, and the streamed decode + resample gives
        // the samples `load` gives
        let opts = LoadOptions {
            quality: mirkit::io::ResampleQuality::Fast,
            ..LoadOptions::at(16000)
        };
        let y = load(clip(file), &opts).unwrap();
        let per = t.model().tag_windows(y.samples()).unwrap();
        let file_windows: Vec<Vec<f32>> = r.segments.iter().map(|s| s.scores.clone()).collect();
        assert_eq!(per, file_windows, "{file}");
        assert_eq!(t.model().tag(y.samples()).unwrap(), r.scores, "{file}");
    }
}

#[test]
fn library_tagger_matches_the_model_on_a_window() {
    let t = mirkit::Tagger::new("won2020-musicnn-mtat").unwrap();
    let r = t.tag_file(clip("brahms_hungarian_dance_5.hq.ogg")).unwrap();
    assert_eq!(r.segments.len(), 15); // 45.8 s in 3 s windows, remainder dropped
    assert_eq!(r.top_k(1)[0].0, "classical");
    assert_eq!(r.segments[1].start_secs, 3.0);
    // streaming windows equal tagging the loaded signal's windows
    let opts = LoadOptions {
        quality: mirkit::io::ResampleQuality::Fast,
        ..LoadOptions::at(16000)
    };
    let y = load(clip("brahms_hungarian_dance_5.hq.ogg"), &opts).unwrap();
    let w = t.model().tag(&y.samples()[48000..96000]).unwrap();
    let e = w
        .iter()
        .zip(&r.segments[1].scores)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(e < 1e-6, "{e}");
}

#[test]
fn multi_layer_embeddings_concatenate_pooled_layers() {
    let d = tmp("layers");
    let out = d.join("e.npy");
    assert!(bin()
        .arg("embed")
        .arg(clip(TRUMPET))
        .arg("-o")
        .arg(&out)
        .args(["--model", "won2020-fcn-mtat", "--layers", "all"])
        .status()
        .unwrap()
        .success());
    // FCN blocks 64+128+128+128+64 plus the 64-d embedding
    assert_eq!(
        npy::read(&out).unwrap().shape,
        vec![64 + 128 + 128 + 128 + 64 + 64]
    );
    let t = mirkit::Tagger::new("won2020-musicnn-mtat").unwrap();
    let (v, parts) = t.embed_layers_file(clip(TRUMPET)).unwrap();
    let names: Vec<&str> = parts.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(names, ["front", "layer1", "layer2", "layer3", "embedding"]);
    assert_eq!(v.len(), 561 + 3 * 64 + 200);
    assert!(!bin()
        .arg("embed")
        .arg(clip(TRUMPET))
        .arg("-o")
        .arg(&out)
        .args(["--layers", "some"])
        .status()
        .unwrap()
        .success());
}

/// `--timings` reports every stage on standard error for features, tag and embed, and
/// leaves standard output (and the results) as without it.
#[test]
fn timings_report_every_stage() {
    let d = tmp("timings");
    let run = |args: &[&str]| {
        let o = bin().args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    let c = clip(TRUMPET);
    let c = c.to_str().unwrap();
    let f = d.join("f.npy");
    let e = d.join("e.npy");
    for args in [
        vec!["features", c, "-o", f.to_str().unwrap(), "--db"],
        vec!["tag", c],
        vec!["embed", c, "-o", e.to_str().unwrap()],
    ] {
        let (plain_out, plain_err) = run(&args);
        let mut timed = args.clone();
        timed.push("--timings");
        let (out, err) = run(&timed);
        assert_eq!(out, plain_out, "{args:?}");
        assert!(!plain_err.contains("timings:"), "{args:?}: {plain_err}");
        let line = err
            .lines()
            .find(|l| l.starts_with("timings: "))
            .unwrap_or_else(|| {
                panic!("{args:?}: no timings line in {err}");
            });
        for stage in ["decode", "resample", "features", "model", "write", "total"] {
            assert!(line.contains(&format!("{stage} ")), "{args:?}: {line}");
        }
        let total: f64 = line
            .rsplit("total ")
            .next()
            .and_then(|s| s.trim_end_matches(" s").parse().ok())
            .unwrap();
        assert!(total > 0.0, "{line}");
    }
}

/// `--sync` (before or after the subcommand) and `MIRKIT_SYNC=1` flush the outputs and
/// change nothing in them.
#[test]
fn sync_writes_the_same_outputs() {
    let d = tmp("sync");
    let c = clip(TRUMPET);
    let c = c.to_str().unwrap();
    let outs: Vec<Vec<u8>> = [
        (vec!["features", c, "-o", "a.npy", "--db"], false),
        (vec!["--sync", "features", c, "-o", "b.npy", "--db"], false),
        (vec!["features", c, "-o", "c.npy", "--db", "--sync"], false),
        (vec!["features", c, "-o", "e.npy", "--db"], true),
    ]
    .into_iter()
    .map(|(args, env)| {
        let mut cmd = bin();
        cmd.current_dir(&*d).args(&args);
        if env {
            cmd.env("MIRKIT_SYNC", "1");
        }
        let o = cmd.output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        std::fs::read(d.join(args[args.iter().position(|a| *a == "-o").unwrap() + 1])).unwrap()
    })
    .collect();
    assert!(outs.iter().all(|o| o == &outs[0]));
}

/// Tagging samples in memory gives the bits of tagging the file they came from: the same
/// resampler and the same windowing driver.
#[test]
fn tagging_samples_equals_tagging_the_file() {
    let t = mirkit::Tagger::default().unwrap();
    for file in [TRUMPET, "brahms_hungarian_dance_5.hq.ogg"] {
        let y = load(clip(file), &LoadOptions::native()).unwrap(); // native rate, mono
        let a = t.tag_samples(y.samples(), y.sample_rate()).unwrap();
        let b = t.tag_file(clip(file)).unwrap();
        assert_eq!(a.scores, b.scores, "{file}");
        assert_eq!(a.segments, b.segments, "{file}");
    }
    assert!(t.tag_samples(&[], 22050).is_err());
}

/// Inputs with the same stem in one folder (`x.wav`, `x.flac`, `x.ogg`) each keep their own
/// result: no shared temporary file, no overwritten output (issue #19, item 3).
#[test]
fn same_stem_inputs_keep_their_own_features() {
    let d = tmp("stems");
    let src = d.join("in");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(clip(TRUMPET), src.join("x.ogg")).unwrap();
    std::fs::copy(
        Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/fixtures/formats/pcm16.wav"),
        src.join("x.wav"),
    )
    .unwrap();
    std::fs::copy(
        Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/fixtures/formats/tone.flac"),
        src.join("x.flac"),
    )
    .unwrap();
    std::fs::copy(clip(TRUMPET), src.join("y.ogg")).unwrap();
    let out = d.join("out");
    let o = bin()
        .args([
            "features",
            src.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--db",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["x.flac.npy", "x.ogg.npy", "x.wav.npy", "y.npy"]);
    // each is the features of its own input
    let single = |f: &str, o: &str| {
        let st = bin()
            .args(["features", src.join(f).to_str().unwrap(), "-o"])
            .arg(d.join(o))
            .arg("--db")
            .status()
            .unwrap();
        assert!(st.success());
        std::fs::read(d.join(o)).unwrap()
    };
    for f in ["x.ogg", "x.wav", "x.flac"] {
        assert_eq!(
            std::fs::read(out.join(format!("{f}.npy"))).unwrap(),
            single(f, &format!("single-{f}.npy")),
            "{f}"
        );
    }
}

/// Taggrams of a folder mirror its tree (`a/x.ogg` and `b/x.ogg` both kept), and a taggram
/// that cannot be written makes the run fail (issue #19, item 11).
#[test]
fn folder_taggrams_are_mirrored_and_png_failures_count() {
    let d = tmp("taggrams");
    let src = d.join("in");
    for sub in ["a", "b"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
        std::fs::copy(clip(TRUMPET), src.join(sub).join("x.ogg")).unwrap();
    }
    let pngs = d.join("png");
    let o = bin()
        .arg("tag")
        .arg(&src)
        .arg("--png")
        .arg(&pngs)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for sub in ["a", "b"] {
        let p = pngs.join(sub).join("x.ogg.png");
        assert_eq!(&std::fs::read(&p).unwrap()[1..4], b"PNG", "{}", p.display());
    }
    // the PNG folder is a file: no taggram can be written
    let blocked = d.join("blocked");
    std::fs::write(&blocked, b"a file").unwrap();
    let o = bin()
        .arg("tag")
        .arg(&src)
        .arg("--png")
        .arg(&blocked)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("error:"));
}

/// `-o` naming a device or a folder is an error naming it, and the device stays a device
/// (issue #19, item 1: as root the rename used to turn `/dev/null` into a regular file).
#[test]
fn outputs_never_replace_devices_or_folders() {
    use std::os::unix::fs::FileTypeExt;
    let d = tmp("devices");
    let c = clip(TRUMPET);
    for target in [Path::new("/dev/null"), &*d] {
        for args in [
            vec!["features", c.to_str().unwrap(), "--db", "-o"],
            vec!["tag", c.to_str().unwrap(), "--format", "json", "-o"],
            vec!["augment", c.to_str().unwrap(), "--gain", "-3", "-o"],
        ] {
            let o = bin().args(&args).arg(target).output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "{args:?} {}", target.display());
            assert!(err.contains("not a regular file"), "{args:?}: {err}");
        }
    }
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(d.is_dir());
}

/// A file that makes the decoder panic is one failed file of a folder run, not the end of
/// the run: the others are tagged and written (issue #19, item 2).
#[test]
fn a_decoder_panic_fails_one_file_not_the_run() {
    let d = tmp("panic");
    let src = d.join("in");
    std::fs::create_dir_all(&src).unwrap();
    let mut b = std::fs::read(
        Path::new(
            &std::env::var("CARGO_MANIFEST_DIR")
                .unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
        )
        .join("tests/fixtures/formats/pcm16.wav"),
    )
    .unwrap();
    b[24..28].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(src.join("bad.wav"), &b).unwrap();
    std::fs::copy(clip(TRUMPET), src.join("good.ogg")).unwrap();
    let json = d.join("tags.json");
    let o = bin()
        .arg("tag")
        .arg(&src)
        .args(["--format", "json", "-o"])
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("bad.wav") && err.contains("malformed file"),
        "{err}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert!(v[0]["file"].as_str().unwrap().ends_with("good.ogg"));
}

/// Contradictory switches are a usage error (exit 2), not "last one wins" (issue #19,
/// item 11).
#[test]
fn center_and_no_center_conflict() {
    let d = tmp("center");
    let o = bin()
        .arg("features")
        .arg(clip(TRUMPET))
        .arg("-o")
        .arg(d.join("x.npy"))
        .args(["--center", "--no-center"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(!d.join("x.npy").exists());
}

/// `--threads N` (a global option) sets the worker count without changing a bit of the
/// output (tags of the Won 2020 Musicnn, whose convolution blocks run fused and tiled),
/// and `--threads 0` is a usage error.
#[test]
fn threads_option_keeps_results() {
    let c = clip(TRUMPET);
    let c = c.to_str().unwrap();
    let run = |threads: &str| {
        let o = bin()
            .args([
                "--threads",
                threads,
                "tag",
                c,
                "--model",
                "won2020-musicnn-mtat",
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        o.stdout
    };
    let one = run("1");
    assert!(!one.is_empty());
    assert_eq!(one, run("2"));
    let o = bin().args(["--threads", "0", "models"]).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// `embed DIR -o INDEX --update` embeds only new files and drops vanished ones (kept rows
/// bit for bit, the new row equal to a fresh single-file embedding); `similar` with two
/// seeds and `--playlist` leaves the seeds out and writes an M3U.
#[test]
fn embed_update_and_playlist() {
    let d = tmp("embed-update");
    let src = d.join("music");
    std::fs::create_dir_all(src.join("brass")).unwrap();
    std::fs::create_dir_all(src.join("strings")).unwrap();
    std::fs::copy(clip(TRUMPET), src.join("brass/trumpet.ogg")).unwrap();
    let tone = |path: &Path, f0: f32, sweep: f32| {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 22050,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for t in 0..88_200 {
            let s = t as f32 / 22050.0;
            let phase = std::f32::consts::TAU * (f0 * s + 0.5 * sweep * s * s);
            w.write_sample((phase.sin() * 8000.0) as i16).unwrap();
        }
        w.finalize().unwrap();
    };
    tone(&src.join("brass/whale.wav"), 300.0, 0.0);
    std::fs::copy(
        clip("brahms_hungarian_dance_5.hq.ogg"),
        src.join("strings/brahms.ogg"),
    )
    .unwrap();
    let idx = d.join("index");
    let run = |args: &[&std::ffi::OsStr]| {
        let o = bin().args(args).output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr)
    };
    let os = |s: &str| std::ffi::OsString::from(s);
    run(&[&os("embed"), src.as_os_str(), &os("-o"), idx.as_os_str()]);
    let before = mirkit::index::EmbeddingIndex::load(&idx).unwrap();
    assert_eq!(before.meta.count, 3);
    // add one file, remove one
    tone(&src.join("strings/vibe.wav"), 200.0, 400.0);
    std::fs::remove_file(src.join("brass/whale.wav")).unwrap();
    let log = run(&[
        &os("embed"),
        src.as_os_str(),
        &os("-o"),
        idx.as_os_str(),
        &os("--update"),
    ]);
    assert!(log.contains("1 added, 1 removed, 2 kept"), "{log}");
    let after = mirkit::index::EmbeddingIndex::load(&idx).unwrap();
    assert_eq!(after.meta.count, 3);
    for f in &after.files {
        assert!(!f.ends_with("whale.wav"));
        if let Some(r) = before.row_of(f) {
            assert_eq!(
                after.embeddings.row(after.row_of(f).unwrap()),
                before.embeddings.row(r)
            );
        }
    }
    let vibe = after
        .files
        .iter()
        .position(|f| f.ends_with("vibe.wav"))
        .unwrap();
    let one = d.join("vibe.npy");
    run(&[
        &os("embed"),
        src.join("strings/vibe.wav").as_os_str(),
        &os("-o"),
        one.as_os_str(),
    ]);
    let fresh: Vec<f32> = npy::read(&one)
        .unwrap()
        .data
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert_eq!(fresh, after.embeddings.row(vibe).to_vec());
    // nothing new: nothing rewritten
    let log = run(&[
        &os("embed"),
        src.as_os_str(),
        &os("-o"),
        idx.as_os_str(),
        &os("--update"),
    ]);
    assert!(log.contains("0 added, 0 removed, 3 kept"), "{log}");
    // a playlist around two seeds of the index: neither seed in it, M3U written
    let m3u = d.join("p.m3u");
    let (t, b) = (
        src.join("brass/trumpet.ogg").display().to_string(),
        src.join("strings/brahms.ogg").display().to_string(),
    );
    let out = run(&[
        &os("similar"),
        &os(&t),
        &os(&b),
        &os("--index"),
        idx.as_os_str(),
        &os("--playlist"),
        &os("5"),
        &os("--diversity"),
        &os("0.3"),
        &os("-o"),
        m3u.as_os_str(),
    ]);
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(". ")).collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].contains("vibe.wav"), "{out}");
    let text = std::fs::read_to_string(&m3u).unwrap();
    assert!(
        text.starts_with("#EXTM3U\n#EXTINF:-1,similarity "),
        "{text}"
    );
    assert!(text.trim_end().ends_with("vibe.wav"), "{text}");
    // playlist options need --playlist
    let o = bin()
        .args(["similar", &t, "--index"])
        .arg(&idx)
        .args(["--diversity", "0.3"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// `-v`: settings, one line per file and the stage timings on standard error; the data
/// and the standard-output summary are what they are without it; `-q -v` is a usage error.
#[test]
fn verbose_reports_settings_files_and_timings() {
    let d = tmp("verbose");
    let folder = d.join("in");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(clip(TRUMPET), folder.join("t.ogg")).unwrap();
    std::fs::copy(
        clip("brahms_hungarian_dance_5.hq.ogg"),
        folder.join("b.ogg"),
    )
    .unwrap();
    let run = |verbose: bool, out: &Path| {
        let mut c = bin();
        c.args(["--threads", "1"]);
        if verbose {
            c.arg("-v");
        }
        let o = c
            .args(["features", "--n-mels", "40", "--db"])
            .arg(&folder)
            .arg("-o")
            .arg(out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    let (plain_out, plain_err) = run(false, &d.join("plain"));
    let (v_out, v_err) = run(true, &d.join("v"));
    assert!(plain_err.is_empty(), "{plain_err}");
    assert_eq!(
        plain_out.replace("plain", "v"),
        v_out,
        "stdout does not change"
    );
    assert!(v_err.contains("1 worker thread(s) (--threads)"), "{v_err}");
    assert!(v_err.contains("40 mels"), "{v_err}");
    assert!(v_err.contains("compression Db"), "{v_err}");
    for name in ["t", "b"] {
        assert!(
            v_err
                .lines()
                .any(|l| l.contains(&format!("{name}.ogg ->")) && l.ends_with(" s")),
            "{v_err}"
        );
        assert_eq!(
            std::fs::read(d.join("plain").join(format!("{name}.npy"))).unwrap(),
            std::fs::read(d.join("v").join(format!("{name}.npy"))).unwrap()
        );
    }
    assert!(v_err.contains("timings (summed over 2 files)"), "{v_err}");
    // tag: the model's front end and one line per file
    let o = bin()
        .args(["-v", "tag"])
        .arg(folder.join("t.ogg"))
        .output()
        .unwrap();
    assert!(o.status.success());
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(
        err.contains("model musicnn-mtt: 50 tags, input 16000 Hz mono"),
        "{err}"
    );
    assert!(err.contains("t.ogg: 1 window in "), "{err}");
    assert!(err.contains("timings: decode"), "{err}");
    let o = bin()
        .args(["-q", "-v", "tag"])
        .arg(folder.join("t.ogg"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
}

/// Negative numbers are values, not flags: `--top-db -5` reaches its own check (exit 2
/// naming the value, not clap's "use -- -5" tip), `--gain -3:-1` is a range.
#[test]
fn negative_numbers_are_values() {
    let d = tmp("negative");
    let o = bin()
        .arg("features")
        .arg(clip(TRUMPET))
        .arg("-o")
        .arg(d.join("x.npy"))
        .args(["--db", "--top-db", "-5"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("top_db = -5") && !err.contains("-- -5"),
        "{err}"
    );
    let o = bin()
        .arg("augment")
        .arg(clip(TRUMPET))
        .arg("-o")
        .arg(d.join("x.wav"))
        .args(["--gain", "-3:-1", "--pitch-shift", "-2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Decoder panics found by tools/mutation_campaign.py (symphonia 0.5.5) end as one clear
/// error, exit 1, with no "panicked at" report on standard error: an AIFF whose rate
/// byte is zeroed (zero time base), an M4A with 1 KiB zeroed inside its AAC data (index
/// out of bounds), a WAV with sample rate 0.
#[test]
fn decoder_panics_are_quiet_errors() {
    let d = tmp("panics");
    let formats = PathBuf::from(
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into()),
    )
    .join("tests/fixtures/formats");
    let mutant = |name: &str, at: usize, zeros: usize| {
        let mut b = std::fs::read(formats.join(name)).unwrap();
        b[at..at + zeros].iter_mut().for_each(|x| *x = 0);
        let p = d.join(format!("bad-{name}"));
        std::fs::write(&p, &b).unwrap();
        p
    };
    for p in [
        mutant("tone.aiff", 28, 1),
        mutant("tone.m4a", 175, 1024),
        mutant("pcm16.wav", 24, 4),
    ] {
        for cmd in ["info", "features", "tag"] {
            let mut c = bin();
            c.arg(cmd).arg(&p);
            if cmd == "features" {
                c.arg("-o").arg(d.join("x.npy"));
            }
            let o = c.output().unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{cmd} {}: {err}", p.display());
            assert!(
                err.contains("malformed file"),
                "{cmd} {}: {err}",
                p.display()
            );
            assert!(!err.contains("panicked"), "{cmd} {}: {err}", p.display());
        }
    }
}

/// Absurd values found by the #19 campaign are refused with the limit named, before any
/// file is read (exit 2): `--sr 1`, `--gain 300`, `--noise-snr -300`; `--n-mels 1000`
/// with n_fft 2048 still runs (as librosa) but warns that 141 bands are empty.
#[test]
fn absurd_values_are_refused_or_warned() {
    let d = tmp("absurd");
    let run = |args: &[&str]| {
        let o = bin().args(args).output().unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    let input = clip(TRUMPET);
    let input = input.to_str().unwrap();
    let out = d.join("x.npy");
    let out = out.to_str().unwrap();
    let wav = d.join("x.wav");
    let wav = wav.to_str().unwrap();
    let (code, err) = run(&["features", input, "-o", out, "--sr", "1"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("1000–1536000 Hz"), "{err}");
    let (code, err) = run(&["augment", input, "-o", wav, "--gain", "300"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("[-120, 120]"), "{err}");
    let (code, err) = run(&["augment", input, "-o", wav, "--noise-snr", "-300"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("[-60, 120]"), "{err}");
    assert!(!Path::new(wav).exists());
    let (code, err) = run(&["features", input, "-o", out, "--n-mels", "1000"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("warning: 141 of 1000 mel bands are empty"),
        "{err}"
    );
    let (_, err) = run(&["features", input, "-o", out, "--n-mels", "128"]);
    assert!(!err.contains("warning"), "{err}");
}

/// A file whose name is not valid UTF-8 is reported by name and skipped by `tag` and
/// `embed` (exit 1), instead of being written with replacement characters that would
/// point `similar` at a file that does not exist; the other files are processed.
#[cfg(unix)]
#[test]
fn non_utf8_names_are_refused_not_mangled() {
    use std::os::unix::ffi::OsStrExt;
    let d = tmp("nonutf8");
    let folder = d.join("in");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(clip(TRUMPET), folder.join("good.ogg")).unwrap();
    let bad = folder.join(std::ffi::OsStr::from_bytes(b"bad-\xff.ogg"));
    std::fs::copy(clip(TRUMPET), &bad).unwrap();
    let o = bin()
        .args(["tag", "--format", "json"])
        .arg(&folder)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8(o.stdout).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(out.contains("good.ogg") && !out.contains("bad-"), "{out}");
    assert!(err.contains("not valid UTF-8"), "{err}");
    let index = d.join("index");
    let o = bin()
        .arg("embed")
        .arg(&folder)
        .arg("-o")
        .arg(&index)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not valid UTF-8"));
    let csv = std::fs::read_to_string(index.join("index.csv")).unwrap();
    assert!(
        csv.contains("good.ogg") && !csv.contains('\u{fffd}'),
        "{csv}"
    );
}

/// Outputs mirrored from an input tree stay under the output folder even when the tree
/// holds absolute symlinks to files and folders elsewhere (issue #19, item 5); nothing
/// is written beside the link targets.
#[cfg(unix)]
#[test]
fn mirrored_outputs_never_leave_the_output_folder() {
    let d = tmp("escape");
    let (input, elsewhere, out, png) = (
        d.join("in"),
        d.join("elsewhere"),
        d.join("out"),
        d.join("png"),
    );
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::fs::copy(clip(TRUMPET), elsewhere.join("t.ogg")).unwrap();
    std::os::unix::fs::symlink(&elsewhere, input.join("dirlink")).unwrap();
    std::os::unix::fs::symlink(elsewhere.join("t.ogg"), input.join("filelink.ogg")).unwrap();
    let o = bin()
        .arg("features")
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = bin()
        .args(["tag", "-q"])
        .arg(&input)
        .arg("--png")
        .arg(&png)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.join("dirlink/t.npy").is_file() && out.join("filelink.npy").is_file());
    let beside: Vec<_> = std::fs::read_dir(&elsewhere)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(beside, ["t.ogg"], "nothing written beside the link target");
    let mut pngs = Vec::new();
    let mut stack = vec![png.clone()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).unwrap() {
            let e = e.unwrap().path();
            if e.is_dir() {
                stack.push(e);
            } else {
                pngs.push(e);
            }
        }
    }
    assert_eq!(pngs.len(), 2, "{pngs:?}");
    assert!(pngs.iter().all(|p| p.starts_with(&png)));
}

/// Temporary files left by a killed run (SIGKILL: no cleanup possible) are removed by the
/// next run into the same output folder or file; those of a process still running are
/// kept (issue #19, item 8).
#[cfg(target_os = "linux")]
#[test]
fn stale_temporaries_of_killed_runs_are_swept() {
    let d = tmp("stale");
    let (input, out) = (d.join("in"), d.join("out"));
    std::fs::create_dir_all(&input).unwrap();
    std::fs::create_dir_all(out.join("sub")).unwrap();
    std::fs::copy(clip(TRUMPET), input.join("t.ogg")).unwrap();
    // a pid above the kernel's maximum (4,194,304) never runs
    let dead = out.join("sub/old.npy.part4194999-3");
    let alive = out.join(format!("other.npy.part{}-0", std::process::id()));
    let unrelated = out.join("notes.part-of-something");
    for p in [&dead, &alive, &unrelated] {
        std::fs::write(p, b"partial").unwrap();
    }
    let o = bin()
        .arg("features")
        .arg(&input)
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("removed 1 temporary file"));
    assert!(!dead.exists() && alive.exists() && unrelated.exists());
    // beside a single output file
    let json = d.join("tags.json");
    let dead = d.join("tags.json.part4194999-0");
    std::fs::write(&dead, b"[").unwrap();
    let o = bin()
        .arg("tag")
        .arg(input.join("t.ogg"))
        .args(["--format", "json", "-o"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(!dead.exists() && json.exists());
}

/// Runs the binary with a file-size limit (RLIMIT_FSIZE, SIGXFSZ ignored): every write
/// past `bytes` fails with EFBIG, as on a full disk.
#[cfg(target_os = "linux")]
fn with_disk_limit(c: &mut Command, bytes: u64) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: only async-signal-safe calls (signal, setrlimit) between fork and exec
    unsafe {
        c.pre_exec(move || {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A write that fails part-way (a full disk, simulated by a file-size limit) is a clear
/// error naming the file (exit 1), leaves no partial or temporary file, and keeps the
/// earlier output under that name — for features, tag and an embedding index
/// (issue #19, item 3).
#[cfg(target_os = "linux")]
#[test]
fn full_disk_keeps_earlier_outputs_and_leaves_no_partial_file() {
    let d = tmp("fulldisk");
    let input = clip(TRUMPET);
    let listing = sorted_names;
    // features: the earlier .npy survives a failed rewrite
    let npy = d.join("t.npy");
    assert!(bin()
        .arg("features")
        .arg(&input)
        .arg("-o")
        .arg(&npy)
        .args(["--n-mels", "40"])
        .status()
        .unwrap()
        .success());
    let before = std::fs::read(&npy).unwrap();
    let o = with_disk_limit(bin().arg("features").arg(&input).arg("-o").arg(&npy), 4096)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("t.npy"), "{err}");
    assert_eq!(std::fs::read(&npy).unwrap(), before);
    assert_eq!(listing(&d), ["t.npy"]);
    // tag -o: the earlier JSON survives
    let json = d.join("tags.json");
    std::fs::write(&json, b"[]\n").unwrap();
    let o = with_disk_limit(
        bin()
            .arg("tag")
            .arg(&input)
            .args(["--format", "json", "--segments", "-o"])
            .arg(&json),
        64,
    )
    .output()
    .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("tags.json"));
    assert_eq!(std::fs::read(&json).unwrap(), b"[]\n");
    assert_eq!(listing(&d), ["t.npy", "tags.json"]);
    // embed: an index that cannot be saved leaves the earlier one loadable and unchanged
    let folder = d.join("in");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(&input, folder.join("a.ogg")).unwrap();
    let index = d.join("index");
    assert!(bin()
        .arg("embed")
        .arg(&folder)
        .arg("-o")
        .arg(&index)
        .status()
        .unwrap()
        .success());
    let saved = listing(&index)
        .into_iter()
        .map(|f| std::fs::read(index.join(&f)).unwrap())
        .collect::<Vec<_>>();
    std::fs::copy(
        clip("brahms_hungarian_dance_5.hq.ogg"),
        folder.join("b.ogg"),
    )
    .unwrap();
    let o = with_disk_limit(bin().arg("embed").arg(&folder).arg("-o").arg(&index), 200)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        listing(&index),
        ["embeddings.npy", "index.csv", "meta.json"]
    );
    let now = listing(&index)
        .into_iter()
        .map(|f| std::fs::read(index.join(&f)).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(now, saved);
}

/// A folder `features` run killed with SIGKILL part-way leaves only complete outputs;
/// the next run sweeps the temporary files and ends with outputs equal, byte for byte,
/// to an uninterrupted run's (issue #19, item 3).
#[cfg(target_os = "linux")]
#[test]
fn killed_folder_run_then_rerun_equals_uninterrupted() {
    let d = tmp("killed");
    let folder = d.join("in");
    std::fs::create_dir_all(&folder).unwrap();
    for i in 0..12 {
        std::fs::copy(
            clip("brahms_hungarian_dance_5.hq.ogg"),
            folder.join(format!("b{i:02}.ogg")),
        )
        .unwrap();
    }
    let run = |out: &Path| {
        let mut c = bin();
        c.args(["--threads", "1", "features"])
            .arg(&folder)
            .arg("-o")
            .arg(out)
            .args(["--db", "--top-db", "80"]);
        c
    };
    assert!(run(&d.join("whole")).status().unwrap().success());
    let out = d.join("out");
    let mut child = run(&out).spawn().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // whatever is there is complete
    for e in std::fs::read_dir(&out).into_iter().flatten() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "npy") {
            let name = p.file_name().unwrap();
            assert_eq!(
                std::fs::read(&p).unwrap(),
                std::fs::read(d.join("whole").join(name)).unwrap()
            );
        }
    }
    assert!(run(&out).status().unwrap().success());
    let names = sorted_names;
    assert_eq!(
        names(&out),
        names(&d.join("whole")),
        "no temporary files left"
    );
    for n in names(&out) {
        assert_eq!(
            std::fs::read(out.join(&n)).unwrap(),
            std::fs::read(d.join("whole").join(&n)).unwrap()
        );
    }
}

/// A folder `embed` saves its index as it goes; killed with SIGKILL part-way, it leaves
/// a valid index of the files done so far, and `embed --update` then finishes it: the
/// three files equal an uninterrupted run's byte for byte (issue #19, item 3).
#[cfg(target_os = "linux")]
#[test]
fn killed_embed_then_update_equals_uninterrupted() {
    let d = tmp("embedkill");
    let src = d.join("in");
    std::fs::create_dir_all(&src).unwrap();
    for k in 0..8 {
        let c = if k % 2 == 0 {
            "brahms_hungarian_dance_5.hq.ogg"
        } else {
            TRUMPET
        };
        std::fs::copy(clip(c), src.join(format!("{k}.ogg"))).unwrap();
    }
    let embed = |out: &Path, update: bool| {
        let mut c = bin();
        c.args(["--threads", "1", "embed"])
            .arg(&src)
            .arg("-o")
            .arg(out)
            .env("MIRKIT_FLUSH_SECS", "0");
        if update {
            c.arg("--update");
        }
        c
    };
    let whole = d.join("whole");
    assert!(embed(&whole, false).status().unwrap().success());
    let count = |idx: &Path| -> Option<u64> {
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(idx.join("meta.json")).ok()?).ok()?;
        v["count"].as_u64()
    };
    assert_eq!(count(&whole), Some(8));

    let idx = d.join("idx");
    let mut child = embed(&idx, false)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while count(&idx).unwrap_or(0) < 2 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "finished before a partial save"
        );
        assert!(t0.elapsed().as_secs() < 120, "no partial save");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    // what was saved is a whole index of the first files
    let part = mirkit::index::EmbeddingIndex::load(&idx).unwrap();
    let kept = part.meta.count;
    assert!((2..8).contains(&kept), "{kept} rows kept");
    let full = mirkit::index::EmbeddingIndex::load(&whole).unwrap();
    assert_eq!(part.files[..], full.files[..kept]);
    let o = embed(&idx, true).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains(&format!("{} added, 0 removed, {kept} kept", 8 - kept)),
        "{said}"
    );
    assert_eq!(
        sorted_names(&idx),
        sorted_names(&whole),
        "no temporary files"
    );
    for f in sorted_names(&whole) {
        assert_eq!(
            std::fs::read(idx.join(&f)).unwrap(),
            std::fs::read(whole.join(&f)).unwrap(),
            "{f}"
        );
    }
}

/// Two runs writing into the same outputs at once (`features` of a folder, `embed` of a
/// folder, `tag -o`) leave only complete files, each equal to a single run's, and no
/// temporary file (issue #19, item 3).
#[test]
fn concurrent_runs_into_one_output_leave_complete_files() {
    let d = tmp("concurrent");
    let src = d.join("in");
    std::fs::create_dir_all(&src).unwrap();
    for k in 0..4 {
        let c = if k % 2 == 0 {
            "brahms_hungarian_dance_5.hq.ogg"
        } else {
            TRUMPET
        };
        std::fs::copy(clip(c), src.join(format!("{k}.ogg"))).unwrap();
    }
    let jobs: [(&str, Vec<&str>); 3] = [
        ("features", vec!["features", "--db"]),
        ("embed", vec!["embed"]),
        ("tag.json", vec!["tag", "--format", "json"]),
    ];
    for (out_name, args) in jobs {
        let run = |out: &Path| {
            let mut c = bin();
            c.args(["--threads", "1"])
                .args(&args)
                .arg(&src)
                .arg("-o")
                .arg(out)
                .env("MIRKIT_FLUSH_SECS", "0")
                .stderr(std::process::Stdio::null());
            c
        };
        let single = d.join(format!("single-{out_name}"));
        assert!(run(&single).status().unwrap().success(), "{out_name}");
        let shared = d.join(format!("shared-{out_name}"));
        let mut a = run(&shared).spawn().unwrap();
        let mut b = run(&shared).spawn().unwrap();
        assert!(a.wait().unwrap().success() && b.wait().unwrap().success());
        if single.is_dir() {
            assert_eq!(sorted_names(&shared), sorted_names(&single), "{out_name}");
            for f in sorted_names(&single) {
                assert_eq!(
                    std::fs::read(shared.join(&f)).unwrap(),
                    std::fs::read(single.join(&f)).unwrap(),
                    "{out_name}/{f}"
                );
            }
        } else {
            assert_eq!(
                std::fs::read(&shared).unwrap(),
                std::fs::read(&single).unwrap(),
                "{out_name}"
            );
            let left: Vec<String> = sorted_names(&d)
                .into_iter()
                .filter(|n| n.contains(".part"))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
    }
}

/// Issue #19 item 11: a float WAV whose samples are finite but absurd (1e30) is refused
/// by `features` (streamed) and `tag` (in memory) with an error naming the file and the
/// overflow, exit 1, and no output — no infinite or saturated features.
#[test]
fn overflowing_float_wav_is_refused() {
    let d = tmp("overflow");
    let wav = d.join("loud.wav");
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22050,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    for t in 0..44_100 {
        let v = if t == 30_000 {
            1e30
        } else {
            (t as f32 * 0.05).sin() * 0.5
        };
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();
    for (args, out) in [
        (vec!["features", "--db"], "f.npy"),
        (vec!["features", "--mfcc", "20"], "m.npy"),
        (vec!["tag", "--format", "json"], "t.json"),
    ] {
        let o = bin()
            .args(&args)
            .arg(&wav)
            .arg("-o")
            .arg(d.join(out))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        // (the peak named is the input's, 1e30, where the features are computed at the
        // file's rate; `tag` resamples to the model's 16 kHz first)
        assert!(
            err.contains("loud.wav")
                && err.contains("overflows f32")
                && err.contains("scale the signal down"),
            "{args:?}: {err}"
        );
        if args[0] == "features" {
            assert!(err.contains("up to 1e30"), "{args:?}: {err}");
        }
        if args[0] == "features" {
            assert!(!d.join(out).exists(), "{args:?}");
        } else {
            // `tag` writes the records of the files that succeeded: none
            let v: serde_json::Value =
                serde_json::from_slice(&std::fs::read(d.join(out)).unwrap()).unwrap();
            assert_eq!(v, serde_json::json!([]));
        }
    }
    assert_eq!(sorted_names(&d), ["loud.wav", "t.json"]);
}

/// `embed --layers all-max|all-mean-max` pool the windows by their maximum (and mean):
/// the mean half equals `--layers all` bit for bit, max ≥ mean, and `meta.json` names
/// every block's layer and width (issue #18 item 1).
#[test]
fn embed_window_pooling_and_blocks() {
    let d = tmp("pooling");
    let src = d.join("in");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(clip(TRUMPET), src.join("t.ogg")).unwrap();
    std::fs::copy(clip("brahms_hungarian_dance_5.hq.ogg"), src.join("b.ogg")).unwrap();
    let embed = |layers: &str| {
        let out = d.join(layers);
        let o = bin()
            .args(["embed"])
            .arg(&src)
            .arg("-o")
            .arg(&out)
            .args(["--layers", layers])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        mirkit::index::EmbeddingIndex::load(&out).unwrap()
    };
    let (mean, max, both) = (embed("all"), embed("all-max"), embed("all-mean-max"));
    let dim = mean.meta.dim;
    assert_eq!((max.meta.dim, both.meta.dim), (dim, 2 * dim));
    let blocks = |i: &mirkit::index::EmbeddingIndex| i.meta.blocks.clone().unwrap();
    assert_eq!(blocks(&mean).iter().map(|b| b.1).sum::<usize>(), dim);
    assert_eq!(blocks(&max), blocks(&mean));
    let named: Vec<(String, usize)> = ["mean", "max"]
        .iter()
        .flat_map(|how| {
            blocks(&mean)
                .into_iter()
                .map(move |(n, w)| (format!("{how}/{n}"), w))
        })
        .collect();
    assert_eq!(blocks(&both), named);
    for r in 0..2 {
        let (a, x, b) = (
            mean.embeddings.row(r),
            max.embeddings.row(r),
            both.embeddings.row(r),
        );
        assert_eq!(b.slice(ndarray::s![..dim]), a);
        assert_eq!(b.slice(ndarray::s![dim..]), x);
        // max ≥ mean, up to the mean's own rounding (an f32 sum of the windows divided by
        // their count: equal windows can average to an ulp above their value)
        assert!(a
            .iter()
            .zip(x)
            .all(|(m, x)| *x >= m - m.abs() * 4.0 * f32::EPSILON));
    }
    assert_eq!(
        embed("embedding").meta.blocks,
        Some(vec![("embedding".to_string(), 200)])
    );
}

/// `embed --update` of a folder whose files are all gone empties the index (exit 0)
/// rather than failing as "none could be embedded"; a fresh `embed` of an empty folder
/// is that error.
#[test]
fn embed_update_of_an_emptied_folder_empties_the_index() {
    let d = tmp("emptied");
    let src = d.join("in");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(clip(TRUMPET), src.join("t.ogg")).unwrap();
    let idx = d.join("idx");
    let embed = |update: bool| {
        let mut c = bin();
        c.arg("embed").arg(&src).arg("-o").arg(&idx);
        if update {
            c.arg("--update");
        }
        c.output().unwrap()
    };
    assert!(embed(false).status.success());
    std::fs::remove_file(src.join("t.ogg")).unwrap();
    let o = embed(true);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 added, 1 removed, 0 kept"));
    assert_eq!(
        mirkit::index::EmbeddingIndex::load(&idx)
            .unwrap()
            .meta
            .count,
        0
    );
    let o = embed(false);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("none of the 0 files"));
}
