//! Writes the seed corpora of the `weights`, `manifests` and `index` fuzz targets into
//! `fuzz/corpus/` (run from the repository root by `tools/fuzz.sh`): real files made by
//! the library — the twelve taggers' weight headers, a `mirkit train` model, transfer
//! heads, manifests of every layout the loaders read, an embedding index and tag
//! records — each prefixed with the byte that picks the target's mode.
use mirkit::index::EmbeddingIndex;
use mirkit::tagger::{SegmentRecord, TagRecord};
use mirkit_train::data::Task;
use mirkit_transfer::embed::{Embeddings, Layers};
use mirkit_transfer::heads::{Head, HeadConfig, HeadKind};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn put(dir: &Path, name: &str, mode: u8, bytes: &[u8]) -> Res<()> {
    let mut v = vec![mode];
    v.extend_from_slice(bytes);
    std::fs::write(dir.join(name), v)?;
    Ok(())
}

/// The JSON header of a safetensors file.
fn header_of(bytes: &[u8]) -> &[u8] {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    &bytes[8..8 + n]
}

fn weights(out: &Path, tmp: &Path) -> Res<()> {
    // the twelve taggers: headers only (mode 1; the target builds the file around them)
    for entry in std::fs::read_dir("crates")? {
        let w = entry?.path().join("weights");
        if !w.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&w)? {
            let f = f?.path();
            let bytes = std::fs::read(&f)?;
            let crate_name = w.parent().and_then(Path::file_name).unwrap_or_default();
            let name = format!(
                "{}-{}",
                crate_name.to_string_lossy(),
                f.file_stem().unwrap_or_default().to_string_lossy()
            );
            put(out, &format!("{name}.header"), 1, header_of(&bytes))?;
        }
    }
    // a `mirkit train` model (narrow, so the whole file is a small seed)
    let classes = vec!["a".to_string(), "b".to_string()];
    for arch in ["short-chunk-cnn", "samplecnn"] {
        let m = mirkit_train::zoo::ScratchModel::new(arch, 2, &classes, 0)?;
        let named: Vec<_> = mirkit_train::trainer::sorted_vars(
            mirkit_train::trainer::Trainable::varmap(&m),
        )
        .into_iter()
        .map(|(k, v)| (k, v.as_tensor().clone()))
        .collect();
        let p = tmp.join(format!("{arch}.safetensors"));
        mirkit_train::ckpt::save(&p, &named, &mirkit_train::trainer::Trainable::metadata(&m))?;
        let bytes = std::fs::read(&p)?;
        put(out, &format!("{arch}.safetensors"), 0, &bytes)?;
        put(out, &format!("{arch}.header"), 1, header_of(&bytes))?;
    }
    // transfer heads of each kind on a small embedding
    let (n, dim) = (8, 4);
    let emb = Embeddings {
        n,
        dim,
        data: (0..n * dim).map(|i| ((i * 7) % 5) as f32 - 2.0).collect(),
        blocks: vec![("penultimate".into(), dim)],
    };
    let labels: Vec<Vec<usize>> = (0..n).map(|i| vec![i % 2]).collect();
    for (name, kind) in [
        ("linear", HeadKind::Linear),
        (
            "mlp",
            HeadKind::Mlp {
                hidden: 3,
                dropout: 0.1,
            },
        ),
        ("knn", HeadKind::Knn { k: 3 }),
    ] {
        let cfg = HeadConfig {
            kind,
            epochs: 2,
            ..Default::default()
        };
        let head = Head::fit(&emb, &labels, None, &classes, Task::MultiClass, &cfg)?;
        let p = tmp.join(format!("head-{name}.safetensors"));
        let extra = HashMap::from([("model".to_string(), "musicnn-mtt".to_string())]);
        head.save(&p, &extra)?;
        let bytes = std::fs::read(&p)?;
        put(out, &format!("head-{name}.safetensors"), 0, &bytes)?;
        put(out, &format!("head-{name}.header"), 1, header_of(&bytes))?;
    }
    Ok(())
}

fn manifests(out: &Path) -> Res<()> {
    let single = "path,label,split\nx/a.wav,a,train\nx/b.wav,b,train\nx/c.wav,a,valid\n\
                  x/d.wav,b,test\n\"x/e,f.wav\",a,train\n";
    let multi = "path,label,split\na.wav,rock;pop,train\nb.wav,jazz,\nc.wav,,test\n";
    let fixed = "path,label\na.wav,a\nb.wav,b\nc.wav,c\nd.wav,a\n";
    let regression = "path,tempo,label,split\na.wav,120.5,1,train\nb.wav,96,0.5,valid\n\
                      c.wav,-3e2,2,test\nd.wav,174,0,train\n";
    for (i, text) in [single, multi, fixed, regression].iter().enumerate() {
        put(out, &format!("csv-{i}"), i as u8, text.as_bytes())?;
    }
    let mut mtat = String::from("clip_id\tguitar\tclassical\tslow\tmp3_path\n");
    for i in 0..6 {
        mtat += &format!("{i}\t{}\t{}\t1\t\"{i}/clip-{i}.mp3\"\n", i % 2, (i + 1) % 2);
    }
    put(out, "mtat", 0, mtat.as_bytes())?;
    let jamendo = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n\
                   track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t124.6\tgenre---punkrock\n\
                   track_0000215\tartist_000014\talbum_000031\t15/215.mp3\t162.4\tgenre---rock\tmood/theme---energetic\n";
    put(out, "jamendo", 0, jamendo.as_bytes())?;
    put(out, "gtzan", 0, b"blues/blues.00000.wav\nrock/rock.00001.wav\nrock/rock.00002.wav\n")?;
    Ok(())
}

fn index(out: &Path, tmp: &Path) -> Res<()> {
    let rows: Vec<(String, Vec<f32>)> = (0..4)
        .map(|i| {
            (
                format!("artist{}/track{i}.ogg", i % 2),
                (0..6).map(|j| ((i * 6 + j) as f32 * 0.7).cos()).collect(),
            )
        })
        .collect();
    let dir = tmp.join("index");
    EmbeddingIndex::new("musicnn-mtt", Layers::Embedding, rows)?.save(&dir)?;
    let meta = std::fs::read(dir.join("meta.json"))?;
    let csv = std::fs::read(dir.join("index.csv"))?;
    let npy = std::fs::read(dir.join("embeddings.npy"))?;
    // one seed as saved (checksums), one without them (older indexes; lets the fuzzer
    // change the other two files without failing the checksum first)
    let mut plain: serde_json::Value = serde_json::from_slice(&meta)?;
    if let Some(o) = plain.as_object_mut() {
        o.remove("embeddings_fnv");
        o.remove("files_fnv");
    }
    let plain = serde_json::to_vec(&plain)?;
    for (name, meta) in [("index-saved", &meta), ("index-plain", &plain)] {
        let mut v = Vec::new();
        v.extend_from_slice(&(meta.len() as u16).to_le_bytes());
        v.extend_from_slice(&(csv.len() as u16).to_le_bytes());
        v.extend_from_slice(meta);
        v.extend_from_slice(&csv);
        v.extend_from_slice(&npy);
        put(out, name, 0, &v)?;
    }
    let scores = |k: f64| -> BTreeMap<String, f64> {
        [("guitar", 0.1 * k), ("rock", 0.300000011920929), ("slow", 1e-7)]
            .into_iter()
            .map(|(t, s)| (t.to_string(), s))
            .collect()
    };
    let records = vec![
        TagRecord {
            file: "a/x.ogg".into(),
            model: "musicnn-mtt".into(),
            scores: scores(1.0),
            segments: None,
            top_k: vec![("rock".into(), 0.300000011920929)],
            windows: 3,
        },
        TagRecord {
            file: "b/\"quoted\",name\n.mp3".into(),
            model: "won2020-fcn-mtat".into(),
            scores: scores(2.0),
            segments: Some(vec![SegmentRecord {
                scores: scores(3.0),
                start_secs: 2.9,
            }]),
            top_k: vec![],
            windows: 1,
        },
    ];
    put(out, "tags.json", 1, &serde_json::to_vec_pretty(&records)?)?;
    Ok(())
}

fn main() -> Res<()> {
    let root = PathBuf::from("fuzz/corpus");
    let tmp = std::env::temp_dir().join(format!("mirkit-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&tmp)?;
    for t in ["weights", "manifests", "index"] {
        std::fs::create_dir_all(root.join(t))?;
    }
    weights(&root.join("weights"), &tmp)?;
    manifests(&root.join("manifests"))?;
    index(&root.join("index"), &tmp)?;
    std::fs::remove_dir_all(&tmp)?;
    println!("seeds written under {}", root.display());
    Ok(())
}
