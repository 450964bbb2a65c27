//! Embedding indexes: one embedding per audio file of a collection, saved in a folder
//! that NumPy, pandas and any CSV/JSON reader open, and searched by cosine similarity.
//!
//! Layout of an index folder:
//! * `embeddings.npy` — float32 `(files, dims)`, row `i` for file `i`;
//! * `index.csv` — `row,file` with the file path quoted (RFC 4180);
//! * `meta.json` — `{"count", "dim", "layers", "model"}`: what made the vectors, so a
//!   query is embedded the same way.
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
    /// needed), each file atomically.
    pub fn save(&self, dir: impl AsRef<Path>) -> Result<()> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| index_err(dir, e.to_string()))?;
        let (n, dim) = self.embeddings.dim();
        npy::write_f32(
            dir.join("embeddings.npy"),
            &[n, dim],
            self.embeddings.as_slice().expect("standard layout"),
        )?;
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
        npy::write_atomic(&dir.join("index.csv"), |w| {
            std::io::Write::write_all(w, &csv)
        })?;
        let meta = serde_json::to_vec(&self.meta).expect("plain values");
        npy::write_atomic(&dir.join("meta.json"), |w| {
            std::io::Write::write_all(w, &meta)
        })?;
        Ok(())
    }

    /// Reads an index folder, checking that its three files agree.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        let meta_path = dir.join("meta.json");
        let bytes = std::fs::read(&meta_path).map_err(|e| index_err(&meta_path, e.to_string()))?;
        let meta: IndexMeta =
            serde_json::from_slice(&bytes).map_err(|e| index_err(&meta_path, e.to_string()))?;
        let embeddings = npy::read(dir.join("embeddings.npy"))?.to_f32_2d()?;
        let csv_path = dir.join("index.csv");
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
        assert_eq!(
            std::fs::read_to_string(dir.join("meta.json")).unwrap(),
            r#"{"count":3,"dim":2,"layers":"all","model":"m"}"#
        );
        assert!(std::fs::read_to_string(dir.join("index.csv"))
            .unwrap()
            .starts_with("row,file\n0,\"a.wav\"\n"));
        let back = EmbeddingIndex::load(&*dir).unwrap();
        assert_eq!(back, idx);
        let hits = back.search(&[0.0, 2.0], 2).unwrap();
        assert_eq!(hits[0].1, idx.files[1]);
        assert_eq!(hits[1].1, "c.mp3");
        assert!(back.search(&[1.0], 1).is_err());
        // a CSV that disagrees with the embeddings is refused
        std::fs::write(dir.join("index.csv"), "row,file\n0,\"a.wav\"\n").unwrap();
        assert!(EmbeddingIndex::load(&*dir).is_err());
    }
}
