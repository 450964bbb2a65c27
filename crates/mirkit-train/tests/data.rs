//! Data-set loaders on small generated layouts: labels, splits, and errors that name the
//! file and line.

use mirkit_train::audio::AudioSet;
use mirkit_train::data::{CsvOptions, Dataset, Task};
use mirkit_train::TrainError;
use std::path::Path;

use mirkit_core::testing::TmpDir;

fn dir(name: &str) -> TmpDir {
    TmpDir::new(&format!("mirkit-data-{name}-"))
}

fn wav(path: &Path, freq: f32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).unwrap();
    for t in 0..8000 {
        w.write_sample(((freq * t as f32 / 16000.0 * std::f32::consts::TAU).sin() * 8000.0) as i16)
            .unwrap();
    }
    w.finalize().unwrap();
}

#[test]
fn folder_per_class_with_a_corrupt_file_skipped() {
    let d = dir("folder");
    for (c, f) in [("bass", 60.0), ("flute", 900.0)] {
        for i in 0..5 {
            wav(&d.join(c).join(format!("{i}.wav")), f);
        }
    }
    std::fs::write(d.join("flute/broken.wav"), b"RIFF\0\0\0\0WAVEjunk").unwrap();
    std::fs::write(d.join("flute/notes.txt"), b"not audio").unwrap();
    let mut ds = Dataset::folder_per_class(&d).unwrap();
    assert_eq!(ds.classes, ["bass", "flute"]);
    assert_eq!(ds.items.len(), 11); // .txt ignored, broken.wav listed
    ds.stratified_split(0.2, 0.2, 3).unwrap();
    let again = {
        let mut x = Dataset::folder_per_class(&d).unwrap();
        x.stratified_split(0.2, 0.2, 3).unwrap();
        x
    };
    assert_eq!(ds, again, "same seed, same split");
    let all: Vec<_> = ds.items.clone();
    let set = AudioSet::load(&all, 16000, None).unwrap();
    assert_eq!(set.len(), 10);
    assert_eq!(set.skipped.len(), 1);
    assert!(
        set.skipped[0].0.ends_with("broken.wav"),
        "{:?}",
        set.skipped
    );
    // the on-disk cache gives the same samples
    let cache = d.join("cache");
    let a = AudioSet::load(&all, 16000, Some(&cache)).unwrap();
    let b = AudioSet::load(&all, 16000, Some(&cache)).unwrap();
    assert!(std::fs::read_dir(&cache).unwrap().count() >= 10);
    assert_eq!(a.audio, b.audio);
    assert_eq!(a.audio, set.audio);
}

#[test]
fn csv_manifest_single_and_multi_label() {
    let d = dir("csv");
    std::fs::write(
        d.join("m.csv"),
        "path,label,split\na.wav,rock,train\n\"b, c.wav\",jazz,valid\nc.wav,rock,test\n",
    )
    .unwrap();
    let ds = Dataset::csv_manifest(d.join("m.csv"), &CsvOptions::default()).unwrap();
    assert_eq!(ds.classes, ["jazz", "rock"]);
    assert_eq!(ds.task, Task::MultiClass);
    assert_eq!(ds.items[1].path, d.join("b, c.wav"));
    assert_eq!(ds.split("valid").unwrap().len(), 1);
    let e = ds.split("eval").unwrap_err().to_string();
    assert!(e.contains("eval") && e.contains("train"), "{e}");

    std::fs::write(
        d.join("t.csv"),
        "path,tags\na.wav,guitar;drums\nb.wav,\nc.wav,drums\n",
    )
    .unwrap();
    let opts = CsvOptions {
        label_column: "tags".into(),
        tag_separator: Some(';'),
        split_column: None,
        ..CsvOptions::default()
    };
    let ds = Dataset::csv_manifest(d.join("t.csv"), &opts).unwrap();
    assert_eq!(ds.task, Task::MultiLabel);
    assert_eq!(ds.classes, ["drums", "guitar"]);
    assert_eq!(ds.items[0].labels, [0, 1]);
    assert!(ds.items[1].labels.is_empty());
    assert_eq!(ds.targets(&ds.items), [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]);
}

#[test]
fn manifest_errors_name_file_and_line() {
    let d = dir("csverr");
    let p = d.join("bad.csv");
    std::fs::write(&p, "path,label\na.wav,rock\nb.wav\n").unwrap();
    let e = Dataset::csv_manifest(&p, &CsvOptions::default()).unwrap_err();
    assert!(matches!(e, TrainError::Parse { line: 3, .. }), "{e}");
    assert!(e.to_string().contains("bad.csv:3"), "{e}");
    std::fs::write(&p, "file,label\na.wav,rock\n").unwrap();
    assert!(Dataset::csv_manifest(&p, &CsvOptions::default())
        .unwrap_err()
        .to_string()
        .contains("no column \"path\""));
    // a label outside a fixed class list
    std::fs::write(&p, "path,label\na.wav,rock\nb.wav,polka\n").unwrap();
    let opts = CsvOptions {
        classes: Some(vec!["rock".into(), "jazz".into()]),
        ..CsvOptions::default()
    };
    let e = Dataset::csv_manifest(&p, &opts).unwrap_err();
    assert!(
        matches!(e, TrainError::UnknownClass { line: 3, ref class, .. } if class == "polka"),
        "{e}"
    );
    std::fs::write(&p, "path,label\n\"a.wav,rock\n").unwrap();
    assert!(Dataset::csv_manifest(&p, &CsvOptions::default()).is_err());
    assert!(
        Dataset::csv_manifest(d.join("missing.csv"), &CsvOptions::default())
            .unwrap_err()
            .to_string()
            .contains("missing.csv")
    );
    // a folder with one class is refused
    let one = d.join("one");
    wav(&one.join("only/x.wav"), 100.0);
    assert!(Dataset::folder_per_class(&one).is_err());
}

#[test]
fn mtat_gtzan_and_jamendo_layouts() {
    let d = dir("public");
    // MagnaTagATune: tab-separated, quoted, clip_id ... mp3_path
    std::fs::write(
        d.join("annotations_final.csv"),
        "\"clip_id\"\t\"guitar\"\t\"classical\"\t\"slow\"\t\"mp3_path\"\n\
         \"2\"\t\"1\"\t\"0\"\t\"1\"\t\"f/a.mp3\"\n\
         \"6\"\t\"0\"\t\"1\"\t\"1\"\t\"f/b.mp3\"\n\
         \"9\"\t\"0\"\t\"0\"\t\"1\"\t\"c/d.mp3\"\n",
    )
    .unwrap();
    std::fs::write(d.join("train.tsv"), "0\tf/a.mp3\n1\tf/b.mp3\n").unwrap();
    std::fs::write(d.join("test.tsv"), "c/d.mp3\n").unwrap();
    let ds = Dataset::mtat(
        d.join("annotations_final.csv"),
        d.join("audio"),
        None,
        &[
            ("train", &d.join("train.tsv")),
            ("test", &d.join("test.tsv")),
        ],
    )
    .unwrap();
    assert_eq!(ds.classes, ["slow", "guitar", "classical"]); // by frequency, ties by column order
    assert_eq!(ds.items[0].labels, [0, 1]);
    assert_eq!(ds.items[2].split.as_deref(), Some("test"));
    assert_eq!(ds.items[1].path, d.join("audio/f/b.mp3"));
    std::fs::write(
        d.join("bad_ann.csv"),
        "\"clip_id\"\t\"guitar\"\t\"mp3_path\"\n\"2\"\t\"x\"\t\"f/a.mp3\"\n",
    )
    .unwrap();
    let e = Dataset::mtat(d.join("bad_ann.csv"), &d, None, &[])
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad_ann.csv:2"), "{e}");

    // GTZAN with a fault-filtered list
    let g = d.join("gtzan/genres");
    for genre in ["blues", "jazz"] {
        for i in 0..3 {
            wav(&g.join(genre).join(format!("{genre}.0000{i}.wav")), 200.0);
        }
    }
    std::fs::write(
        d.join("train_filtered.txt"),
        "blues/blues.00000.wav\njazz/jazz.00001.wav\n",
    )
    .unwrap();
    std::fs::write(d.join("test_filtered.txt"), "blues/blues.00002.wav\n").unwrap();
    let ds = Dataset::gtzan(
        d.join("gtzan"),
        &[
            ("train", &d.join("train_filtered.txt")),
            ("test", &d.join("test_filtered.txt")),
        ],
    )
    .unwrap();
    assert_eq!(ds.items.len(), 3);
    assert_eq!(ds.split("train").unwrap().len(), 2);

    // MTG-Jamendo
    std::fs::write(
        d.join("jam-train.tsv"),
        "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n\
         track_1\ta\tb\t14/1.mp3\t200.0\tgenre---rock\tmood/theme---happy\n\
         track_2\ta\tb\t15/2.mp3\t100.0\tgenre---jazz\n",
    )
    .unwrap();
    let ds = Dataset::jamendo(&[("train", &d.join("jam-train.tsv"))], d.join("mp3"), None).unwrap();
    assert_eq!(
        ds.classes,
        ["genre---jazz", "genre---rock", "mood/theme---happy"]
    );
    assert_eq!(ds.items[0].labels, [1, 2]);
    std::fs::write(d.join("jam-bad.tsv"), "TRACK_ID\tPATH\n").unwrap();
    assert!(
        Dataset::jamendo(&[("train", &d.join("jam-bad.tsv"))], &d, None)
            .unwrap_err()
            .to_string()
            .contains("jam-bad.tsv:1")
    );
}

/// A regression manifest (`path,value` plus a second numeric column): targets parsed per
/// row, the task and target names set, the split stratified by value so each split spans
/// the range, and unparsable or non-finite values named by file and line.
#[test]
fn csv_regression_manifest_and_value_stratified_split() {
    let d = dir("regression");
    let mut text = String::from("path,value,loudness\n");
    for i in 0..40 {
        text.push_str(&format!("a/{i}.wav,{},{}\n", 60 + 3 * i, -(i as f32) / 2.0));
    }
    std::fs::write(d.join("m.csv"), &text).unwrap();
    let opts = CsvOptions {
        value_columns: Some(vec!["value".into(), "loudness".into()]),
        ..CsvOptions::default()
    };
    let mut ds = Dataset::csv_manifest(d.join("m.csv"), &opts).unwrap();
    assert_eq!(ds.task, Task::Regression);
    assert_eq!(ds.classes, vec!["value", "loudness"]);
    assert_eq!(ds.items[5].values, vec![75.0, -2.5]);
    assert!(ds.items[5].labels.is_empty());
    assert_eq!(ds.targets(&ds.items[..2]), vec![60.0, 0.0, 63.0, -0.5]);
    ds.stratified_split(0.15, 0.15, 7).unwrap();
    let values =
        |s: &str| -> Vec<f32> { ds.split(s).unwrap().iter().map(|i| i.values[0]).collect() };
    let (tr, va, te) = (values("train"), values("valid"), values("test"));
    assert_eq!(tr.len() + va.len() + te.len(), 40);
    // groups of round(1/0.15) = 7 in value order give one valid and one test item each
    // (the last, short group of 5 too): 6 per held-out split
    assert_eq!((va.len(), te.len()), (6, 6));
    for s in [&va, &te] {
        // one item from each seventh of the range
        let mut g: Vec<usize> = s.iter().map(|v| ((v - 60.0) / 3.0) as usize / 7).collect();
        g.sort();
        assert_eq!(g, vec![0, 1, 2, 3, 4, 5], "{s:?}");
    }
    // same seed, same split
    let mut again = Dataset::csv_manifest(d.join("m.csv"), &opts).unwrap();
    again.stratified_split(0.15, 0.15, 7).unwrap();
    assert_eq!(again, ds);
    // errors name file and line
    std::fs::write(
        d.join("bad.csv"),
        "path,value,loudness\nx.wav,1,2\ny.wav,fast,3\n",
    )
    .unwrap();
    let e = Dataset::csv_manifest(d.join("bad.csv"), &opts)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bad.csv:3") && e.contains("\"fast\" is not a number"),
        "{e}"
    );
    std::fs::write(d.join("inf.csv"), "path,value,loudness\nx.wav,inf,2\n").unwrap();
    let e = Dataset::csv_manifest(d.join("inf.csv"), &opts)
        .unwrap_err()
        .to_string();
    assert!(e.contains("inf.csv:2") && e.contains("not finite"), "{e}");
    let e = Dataset::csv_manifest(
        d.join("m.csv"),
        &CsvOptions {
            value_columns: Some(vec!["tempo".into()]),
            ..CsvOptions::default()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no column \"tempo\""), "{e}");
}
