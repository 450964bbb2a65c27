//! Embedding indexes: one embedding per audio file of a collection, saved in a folder
//! that NumPy, pandas and any CSV/JSON reader open, and searched by cosine similarity.
//!
//! Layout of an index folder:
//! * `embeddings.npy` — float32 `(files, dims)`, row `i` for file `i`;
//! * `index.csv` — `row,file` with the file path quoted (RFC 4180);
//! * `meta.json` — `{"count", "dim", "embeddings_fnv", "files_fnv", "layers", "model"}`:
//!   what made the vectors, so a query is embedded the same way, and checksums of the
//!   other two files, so files of different saves are never used together.
//!
//! ```no_run
//! use mirkit::index::EmbeddingIndex;
//! use mirkit::transfer::embed::Layers;
//! let tagger = mirkit::Tagger::new("musicnn-mtt")?;
//! let files = mirkit::io::audio_files("music/")?;
//! let index = EmbeddingIndex::build(&tagger, Layers::Embedding, &files, |_, _| {})?;
//! index.index.save("music_index")?;
//! let index = EmbeddingIndex::load("music_index")?;
//! let query = tagger.embed_with("query.mp3", index.meta.layers)?;
//! for (score, file) in index.search(&query, 5)? {
//!     println!("{score:.3} {file}");
//! }
//! # Ok::<(), mirkit::Error>(())
//! ```

use crate::{Error, Result, Tagger};
use mirkit_core::npy;
use mirkit_transfer::embed::Layers;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What `meta.json` records (fields in alphabetical order: the file is written with them
/// in this order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexMeta {
    /// Number of files.
    pub count: usize,
    /// Dimensions per embedding.
    pub dim: usize,
    /// FNV-1a 64 of `embeddings.npy`'s bytes (hex), written by [`EmbeddingIndex::save`]
    /// and checked by [`EmbeddingIndex::load`], so files of two different saves are never
    /// used together (indexes written before it have none and are checked by size only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embeddings_fnv: Option<String>,
    /// FNV-1a 64 of `index.csv`'s bytes (hex), as `embeddings_fnv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_fnv: Option<String>,
    /// Which representation the vectors are.
    pub layers: Layers,
    /// The model that made them (registry name or weights file).
    pub model: String,
}

/// An index in memory.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingIndex {
    /// What the vectors are.
    pub meta: IndexMeta,
    /// File of each row.
    pub files: Vec<String>,
    /// `(files, dims)`.
    pub embeddings: Array2<f32>,
}

/// What [`EmbeddingIndex::build`] returns: the index of the files that could be embedded
/// and the errors of the others.
pub struct Built {
    /// The index.
    pub index: EmbeddingIndex,
    /// Files that failed, with why.
    pub failed: Vec<(PathBuf, Error)>,
}

/// FNV-1a 64 of `bytes` as 16 hex digits (a checksum tying an index's files together,
/// not a cryptographic hash).
fn fnv_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn index_err(path: &Path, why: impl Into<String>) -> Error {
    Error::Index {
        path: path.display().to_string(),
        why: why.into(),
    }
}

impl EmbeddingIndex {
    /// An index of `(file, embedding)` rows, all of one length.
    pub fn new(model: &str, layers: Layers, rows: Vec<(String, Vec<f32>)>) -> Result<Self> {
        let dim = rows.first().map(|r| r.1.len()).unwrap_or(0);
        if let Some((f, v)) = rows.iter().find(|r| r.1.len() != dim) {
            return Err(index_err(
                Path::new(f),
                format!("embedding of {} dims, the others have {dim}", v.len()),
            ));
        }
        let n = rows.len();
        let mut files = Vec::with_capacity(n);
        let mut flat = Vec::with_capacity(n * dim);
        for (f, v) in rows {
            files.push(f);
            flat.extend(v);
        }
        Ok(Self {
            meta: IndexMeta {
                count: n,
                dim,
                embeddings_fnv: None,
                files_fnv: None,
                layers,
                model: model.to_string(),
            },
            files,
            embeddings: Array2::from_shape_vec((n, dim), flat).expect("n × dim values"),
        })
    }

    /// Embeds every file with `tagger` (one at a time; `progress(done, total)` after each)
    /// and indexes those that succeed. An error only when none does.
    pub fn build(
        tagger: &Tagger,
        layers: Layers,
        files: &[PathBuf],
        mut progress: impl FnMut(usize, usize),
    ) -> Result<Built> {
        let mut rows = Vec::new();
        let mut failed = Vec::new();
        for (i, f) in files.iter().enumerate() {
            match tagger.embed_with(f, layers) {
                Ok(e) => rows.push((f.display().to_string(), e)),
                Err(e) => failed.push((f.clone(), e)),
            }
            progress(i + 1, files.len());
        }
        if rows.is_empty() {
            return Err(match failed.pop() {
                Some((_, e)) if files.len() == 1 => e,
                _ => Error::Invalid(format!(
                    "none of the {} files could be embedded",
                    files.len()
                )),
            });
        }
        Ok(Built {
            index: Self::new(tagger.name(), layers, rows)?,
            failed,
        })
    }

    /// Writes `embeddings.npy`, `index.csv` and `meta.json` into `dir` (created if
    /// needed) in two phases: all three are written to temporary files first — a full
    /// disk or any write error then leaves the folder as it was — and only then renamed
    /// into place, `meta.json` last. `meta.json` records a checksum of the other two, so a
    /// folder whose renames were interrupted is refused by [`Self::load`] instead of
    /// pairing embeddings with the wrong file names.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| index_err(dir, e.to_string()))?;
        let (n, dim) = self.embeddings.dim();
        let flat = self.embeddings.as_standard_layout();
        let npy_bytes = npy::encode_f32(&[n, dim], flat.as_slice().expect("standard layout"));
        let mut csv = b"row,file\n".to_vec();
        {
            let mut w = csv::WriterBuilder::new()
                .quote_style(csv::QuoteStyle::NonNumeric)
                .from_writer(&mut csv);
            for (i, f) in self.files.iter().enumerate() {
                w.write_record([i.to_string().as_str(), f.as_str()])
                    .map_err(|e| index_err(dir, e.to_string()))?;
            }
            w.flush().map_err(|e| index_err(dir, e.to_string()))?;
        }
        let meta = IndexMeta {
            embeddings_fnv: Some(fnv_hex(&npy_bytes)),
            files_fnv: Some(fnv_hex(&csv)),
            ..self.meta.clone()
        };
        let meta_bytes = serde_json::to_vec(&meta).expect("plain values");
        let parts = [
            ("embeddings.npy", &npy_bytes),
            ("index.csv", &csv),
            ("meta.json", &meta_bytes),
        ];
        for (name, _) in &parts {
            npy::check_output(&dir.join(name))?;
        }
        // phase 1: every file written in full beside its final name
        let mut written: Vec<(PathBuf, PathBuf, std::fs::File)> = Vec::new();
        for (name, bytes) in &parts {
            let path = dir.join(name);
            let tmp = npy::temp_path(&path);
            let r = (|| -> std::io::Result<std::fs::File> {
                let mut f = std::fs::File::create(&tmp)?;
                std::io::Write::write_all(&mut f, bytes)?;
                Ok(f)
            })();
            match r {
                Ok(f) => written.push((tmp, path, f)),
                Err(e) => {
                    npy::remove_temp(&tmp);
                    for (t, _, _) in &written {
                        npy::remove_temp(t);
                    }
                    return Err(index_err(&path, e.to_string()));
                }
            }
        }
        // phase 2: renames (no space needed), meta.json last
        let mut pending = written.into_iter();
        while let Some((tmp, path, f)) = pending.next() {
            if let Err(e) = npy::commit(&tmp, &path, &f, npy::Durability::Default) {
                for (t, _, _) in pending {
                    npy::remove_temp(&t);
                }
                return Err(index_err(&path, e.to_string()));
            }
        }
        Ok(())
    }

    /// Reads an index folder, checking that its three files agree.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let meta_path = dir.join("meta.json");
        let bytes = std::fs::read(&meta_path).map_err(|e| index_err(&meta_path, e.to_string()))?;
        let meta: IndexMeta =
            serde_json::from_slice(&bytes).map_err(|e| index_err(&meta_path, e.to_string()))?;
        let npy_path = dir.join("embeddings.npy");
        let csv_path = dir.join("index.csv");
        // files of another save (an interrupted one, or copied in by hand) are refused
        for (path, want) in [
            (&npy_path, &meta.embeddings_fnv),
            (&csv_path, &meta.files_fnv),
        ] {
            if let Some(want) = want {
                let bytes = std::fs::read(path).map_err(|e| index_err(path, e.to_string()))?;
                if &fnv_hex(&bytes) != want {
                    return Err(index_err(
                        path,
                        "does not belong to this index's meta.json (checksum differs: an \
                         interrupted save, or a file from another index); rebuild the index",
                    ));
                }
            }
        }
        let embeddings = npy::read(&npy_path)?.to_f32_2d()?;
        let mut r =
            csv::Reader::from_path(&csv_path).map_err(|e| index_err(&csv_path, e.to_string()))?;
        let mut files = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| index_err(&csv_path, e.to_string()))?;
            match (rec.get(0).map(str::parse::<usize>), rec.get(1)) {
                (Some(Ok(row)), Some(f)) if row == i => files.push(f.to_string()),
                _ => {
                    return Err(index_err(
                        &csv_path,
                        format!("line {}: expected `{i},<file>`", i + 2),
                    ))
                }
            }
        }
        if files.len() != embeddings.nrows()
            || meta.count != files.len()
            || meta.dim != embeddings.ncols()
        {
            return Err(index_err(
                dir,
                format!(
                    "index.csv has {} rows, embeddings.npy {}×{}, meta.json {}×{}",
                    files.len(),
                    embeddings.nrows(),
                    embeddings.ncols(),
                    meta.count,
                    meta.dim
                ),
            ));
        }
        Ok(Self {
            meta,
            files,
            embeddings,
        })
    }

    /// The `k` files most similar to `query` (cosine), best first.
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(f32, &str)>> {
        if query.len() != self.meta.dim {
            return Err(Error::Invalid(format!(
                "query embedding has {} dims, the index {}",
                query.len(),
                self.meta.dim
            )));
        }
        let mut scored: Vec<(f32, &str)> = self
            .embeddings
            .outer_iter()
            .zip(&self.files)
            .map(|(r, n)| {
                (
                    mirkit_models::scores::cosine(query, r.as_slice().expect("row")),
                    n.as_str(),
                )
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0));
        scored.truncate(k);
        Ok(scored)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_load_search_round_trip_with_awkward_names() {
        let dir = mirkit_core::testing::TmpDir::new("mirkit-index-");
        let rows = vec![
            ("a.wav".to_string(), vec![1.0, 0.0]),
            (
                "b \"quoted\", with comma\nand newline.ogg".to_string(),
                vec![0.0, 1.0],
            ),
            ("c.mp3".to_string(), vec![1.0, 1.0]),
        ];
        let idx = EmbeddingIndex::new("m", Layers::All, rows).unwrap();
        idx.save(&*dir).unwrap();
        let meta = std::fs::read_to_string(dir.join("meta.json")).unwrap();
        assert!(
            meta.starts_with(r#"{"count":3,"dim":2,"embeddings_fnv":""#)
                && meta.ends_with(r#"","layers":"all","model":"m"}"#),
            "{meta}"
        );
        assert!(std::fs::read_to_string(dir.join("index.csv"))
            .unwrap()
            .starts_with("row,file\n0,\"a.wav\"\n"));
        let back = EmbeddingIndex::load(&*dir).unwrap();
        assert_eq!(
            (&back.files, &back.embeddings),
            (&idx.files, &idx.embeddings)
        );
        assert_eq!((back.meta.count, back.meta.dim), (3, 2));
        let hits = back.search(&[0.0, 2.0], 2).unwrap();
        assert_eq!(hits[0].1, idx.files[1]);
        assert_eq!(hits[1].1, "c.mp3");
        assert!(back.search(&[1.0], 1).is_err());
        // a CSV that disagrees with the embeddings is refused
        std::fs::write(dir.join("index.csv"), "row,file\n0,\"a.wav\"\n").unwrap();
        assert!(EmbeddingIndex::load(&*dir).is_err());
    }

    /// Issue #19 item 5: files of two saves are never used together, and a save that
    /// cannot complete leaves the folder as it was.
    #[test]
    fn mixed_or_failed_saves_are_refused() {
        let rows = |names: [&str; 2]| {
            names
                .iter()
                .zip([vec![1.0f32, 0.0], vec![0.0, 1.0]])
                .map(|(n, v)| (n.to_string(), v))
                .collect::<Vec<_>>()
        };
        let (a, b) = (
            mirkit_core::testing::TmpDir::new("mirkit-index-a-"),
            mirkit_core::testing::TmpDir::new("mirkit-index-b-"),
        );
        let ia = EmbeddingIndex::new("m", Layers::Embedding, rows(["x.wav", "y.wav"])).unwrap();
        let ib = EmbeddingIndex::new("m", Layers::Embedding, rows(["y.wav", "x.wav"])).unwrap();
        ia.save(&*a).unwrap();
        ib.save(&*b).unwrap();
        // same counts, names of the other save: sizes agree, the checksum does not
        std::fs::copy(b.join("index.csv"), a.join("index.csv")).unwrap();
        let e = EmbeddingIndex::load(&*a).unwrap_err().to_string();
        assert!(
            e.contains("index.csv") && e.contains("does not belong"),
            "{e}"
        );
        // meta.json cannot be replaced (a folder there): nothing is written or left
        let c = mirkit_core::testing::TmpDir::new("mirkit-index-c-");
        ia.save(&*c).unwrap();
        let before: Vec<Vec<u8>> = ["embeddings.npy", "index.csv"]
            .iter()
            .map(|f| std::fs::read(c.join(f)).unwrap())
            .collect();
        std::fs::remove_file(c.join("meta.json")).unwrap();
        std::fs::create_dir(c.join("meta.json")).unwrap();
        assert!(ib.save(&*c).is_err());
        for (f, b) in ["embeddings.npy", "index.csv"].iter().zip(&before) {
            assert_eq!(&std::fs::read(c.join(f)).unwrap(), b, "{f}");
        }
        let names: Vec<String> = std::fs::read_dir(&*c)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".part")), "{names:?}");
        // an index written before the checksums still loads
        let d = mirkit_core::testing::TmpDir::new("mirkit-index-d-");
        ia.save(&*d).unwrap();
        std::fs::write(
            d.join("meta.json"),
            r#"{"count":2,"dim":2,"layers":"embedding","model":"m"}"#,
        )
        .unwrap();
        assert_eq!(EmbeddingIndex::load(&*d).unwrap().files, ia.files);
    }
}
