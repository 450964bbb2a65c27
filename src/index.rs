//! Embedding indexes: one embedding per audio file of a collection, saved in a folder
//! that NumPy, pandas and any CSV/JSON reader open, and searched by cosine similarity.
//!
//! Layout of an index folder:
//! * `embeddings.npy` — float32 `(files, dims)`, row `i` for file `i`;
//! * `index.csv` — `row,file` with the file path quoted (RFC 4180);
//! * `meta.json` — `{"blocks", "count", "dim", "embeddings_fnv", "files_fnv", "layers",
//!   "model"}`: what made the vectors, so a query is embedded the same way, which columns
//!   are which layer (`blocks`: `[name, width]` pairs in column order, from `mirkit
//!   embed`), and checksums of the other two files, so files of different saves are never
//!   used together.
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
    /// `(layer name, width)` of the vector's blocks in column order, when known (indexes
    /// built by [`EmbeddingIndex::update_saving`]: `mirkit embed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks: Option<Vec<(String, usize)>>,
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
///
/// ```
/// use mirkit::index::EmbeddingIndex;
/// use mirkit::transfer::embed::Layers;
/// let tagger = mirkit::Tagger::default()?;
/// let files = mirkit::io::audio_files("data/clips")?; // the two clips of the repository
/// let built = EmbeddingIndex::build(&tagger, Layers::Embedding, &files, |done, total| {
///     eprintln!("{done}/{total}");
/// })?;
/// let index = built.index;
/// assert_eq!((index.meta.count, index.meta.dim), (2, 200));
/// // the file itself is its own nearest neighbour
/// let query = tagger.embed_with("data/clips/brahms_hungarian_dance_5.hq.ogg", index.meta.layers)?;
/// let hits = index.search(&query, 2)?;
/// assert!(hits[0].1.ends_with("brahms_hungarian_dance_5.hq.ogg") && hits[0].0 > 0.9999);
/// // saved as embeddings.npy + index.csv + meta.json, read back the same
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-index-{}", std::process::id()));
/// index.save(&dir)?;
/// let back = EmbeddingIndex::load(&dir)?;
/// assert_eq!((&back.files, &back.embeddings), (&index.files, &index.embeddings));
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), mirkit::Error>(())
/// ```
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

/// What [`EmbeddingIndex::update`] did.
pub struct Update {
    /// Files embedded and appended.
    pub added: usize,
    /// Rows dropped because their files are gone.
    pub removed: usize,
    /// Rows kept as they were.
    pub kept: usize,
    /// New files that could not be embedded, with why.
    pub failed: Vec<(PathBuf, Error)>,
}

impl Update {
    /// The error for an index left empty although `files` files were given: the one
    /// file's own error, or how many there were.
    pub fn nothing_embedded(mut self, files: usize) -> Error {
        match self.failed.pop() {
            Some((_, e)) if files == 1 => e,
            _ => Error::Invalid(format!("none of the {files} files could be embedded")),
        }
    }
}

/// Options of [`EmbeddingIndex::playlist`].
#[derive(Debug, Clone, Default)]
pub struct PlaylistOptions {
    /// λ of maximal marginal relevance in [0, 1): 0 ranks by similarity alone, higher
    /// values trade similarity for variety among the chosen tracks.
    pub diversity: f32,
    /// The seeds' own files (as indexed): never in the playlist, and their artists are
    /// the ones `exclude_seed_artists` leaves out.
    pub seed_files: Vec<String>,
    /// Leave out every track by a seed's artist.
    pub exclude_seed_artists: bool,
    /// At most this many tracks per artist.
    pub max_per_artist: Option<usize>,
    /// Which folder names a file's artist: 1 is the file's own folder, 2 its parent
    /// (`Artist/Album/track.flac`), and so on; 0 is read as 1.
    pub artist_depth: usize,
}

/// The artist of a file: the name of the folder `depth` levels above it, if any.
pub fn artist_of(file: &str, depth: usize) -> Option<String> {
    let mut p = Path::new(file).parent()?;
    for _ in 1..depth.max(1) {
        p = p.parent()?;
    }
    p.file_name().map(|s| s.to_string_lossy().into_owned())
}

/// The `k` best `(score, row)` of `scores`, best first, ties in row order.
fn top_k(scores: &[f32], k: usize) -> Vec<(f32, usize)> {
    let mut v: Vec<(f32, usize)> = scores.iter().copied().zip(0..).collect();
    top_k_pairs(&mut v, k)
}

fn top_k_pairs(v: &mut Vec<(f32, usize)>, k: usize) -> Vec<(f32, usize)> {
    let order = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
    if k < v.len() {
        if k == 0 {
            return Vec::new();
        }
        v.select_nth_unstable_by(k - 1, order);
        v.truncate(k);
    }
    v.sort_by(order);
    std::mem::take(v)
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

/// A file's path as the index stores it, refusing names that are not valid UTF-8:
/// `index.csv` holds UTF-8 text, and a name with replacement characters would point
/// `similar` at a file that does not exist.
pub fn utf8_name(path: &Path) -> Result<String> {
    path.to_str().map(str::to_string).ok_or_else(|| {
        Error::Invalid(format!(
            "{}: the file name is not valid UTF-8, so an index or tag output could not name \
             it; rename the file",
            path.display()
        ))
    })
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
                blocks: None,
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
        progress: impl FnMut(usize, usize),
    ) -> Result<Built> {
        let mut index = Self::new(tagger.name(), layers, Vec::new())?;
        let up = index.update_saving(tagger, files, progress, None)?;
        if index.meta.count == 0 {
            return Err(up.nothing_embedded(files.len()));
        }
        Ok(Built {
            index,
            failed: up.failed,
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
        // phase 2: renames (no space needed), meta.json last; an interrupt's cleanup
        // waits for them, and a SIGKILL between them is finished by the next `load`
        npy::commit_group(|| {
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
        })
    }

    /// Finishes a save that a killed process left between its renames (some files new,
    /// `meta.json` still old): the save's complete temporaries are still beside them
    /// (`NAME.part<pid>-<n>` of a process that no longer runs), so when a temporary
    /// `meta.json` is found whose checksums match, for each data file, either the file in
    /// place or one of its temporaries, those are renamed into place. Returns whether a
    /// save was finished.
    fn finish_interrupted_save(dir: &Path) -> bool {
        let meta_path = dir.join("meta.json");
        let matches = |p: &Path, want: &str| std::fs::read(p).is_ok_and(|b| fnv_hex(&b) == want);
        for cand in npy::stale_temps_of(&meta_path) {
            let Some(meta) = std::fs::read(&cand)
                .ok()
                .and_then(|b| serde_json::from_slice::<IndexMeta>(&b).ok())
            else {
                continue;
            };
            let (Some(e_fnv), Some(f_fnv)) = (&meta.embeddings_fnv, &meta.files_fnv) else {
                continue;
            };
            let mut renames = Vec::new();
            let complete = [("embeddings.npy", e_fnv), ("index.csv", f_fnv)]
                .into_iter()
                .all(|(name, want)| {
                    let path = dir.join(name);
                    if matches(&path, want) {
                        return true;
                    }
                    match npy::stale_temps_of(&path)
                        .into_iter()
                        .find(|t| matches(t, want))
                    {
                        Some(t) => {
                            renames.push((t, path));
                            true
                        }
                        None => false,
                    }
                });
            if complete {
                renames.push((cand, meta_path));
                return renames
                    .iter()
                    .all(|(from, to)| std::fs::rename(from, to).is_ok());
            }
        }
        false
    }

    /// Reads an index folder, checking that its three files agree. A save that was
    /// killed between renaming its files into place (the files disagree, the save's
    /// temporaries are still there) is finished first, so no work of that save is lost.
    pub fn load(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref();
        match Self::load_as_is(dir) {
            Err(Error::Index { .. }) if Self::finish_interrupted_save(dir) => Self::load_as_is(dir),
            r => r,
        }
    }

    fn load_as_is(dir: &Path) -> Result<Self> {
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

    /// The `k` files most similar to `query` (cosine), best first (ties in index order).
    /// Exact search: every row is scored, in parallel on the current rayon pool, and only
    /// the best `k` are sorted (docs/applications.md has the latency on 100,000 rows).
    pub fn search(&self, query: &[f32], k: usize) -> Result<Vec<(f32, &str)>> {
        let scored = self.scores(query)?;
        Ok(top_k(&scored, k)
            .into_iter()
            .map(|(s, i)| (s, self.files[i].as_str()))
            .collect())
    }

    /// The cosine similarity of `query` to every row, in row order.
    pub fn scores(&self, query: &[f32]) -> Result<Vec<f32>> {
        use rayon::prelude::*;
        if query.len() != self.meta.dim {
            return Err(Error::Invalid(format!(
                "query embedding has {} dims, the index {}",
                query.len(),
                self.meta.dim
            )));
        }
        if let Some(i) = query.iter().position(|v| !v.is_finite()) {
            return Err(Error::Invalid(format!(
                "query embedding value #{i} is {}",
                query[i]
            )));
        }
        let rows: Vec<&[f32]> = self
            .embeddings
            .outer_iter()
            .map(|r| r.to_slice().expect("standard-layout row"))
            .collect();
        Ok(rows
            .par_iter()
            .with_min_len(1024)
            .map(|r| mirkit_models::scores::cosine(query, r))
            .collect())
    }

    /// The row of a file, if the index holds it (exact path string as indexed).
    pub fn row_of(&self, file: &str) -> Option<usize> {
        self.files.iter().position(|f| f == file)
    }

    /// Brings the index up to date with `files` (a folder's current contents): rows of
    /// files no longer listed are dropped, files not yet indexed are embedded with
    /// `tagger` and appended, the others keep their vectors (a file is matched by its
    /// path as indexed; a changed file keeps its old vector unless removed first). The
    /// tagger must be the index's model. Returns what changed and the files that failed.
    pub fn update(
        &mut self,
        tagger: &Tagger,
        files: &[PathBuf],
        progress: impl FnMut(usize, usize),
    ) -> Result<Update> {
        self.update_saving(tagger, files, progress, None)
    }

    /// [`Self::update`] that also saves the index into `dir` (as [`Self::save`]: two
    /// phases, checksummed) whenever `every` has passed since the last save while files
    /// are being embedded, so a run that is killed keeps what it had embedded by its last
    /// save: the next `update` of the same folder embeds only the rest. An index built
    /// this way from an empty one ([`Self::new`] with no rows) is the one
    /// [`Self::build`] makes, row for row. The final state is not saved here (the caller
    /// saves it once it has looked at the result).
    ///
    /// ```
    /// use mirkit::index::EmbeddingIndex;
    /// use mirkit::transfer::embed::Layers;
    /// use std::time::Duration;
    /// let tagger = mirkit::Tagger::new("musicnn-mtt")?;
    /// let dir = std::env::temp_dir().join(format!("mirkit-doc-index-{}", std::process::id()));
    /// let files = [std::path::PathBuf::from("data/clips/sorohanro_-_solo-trumpet-06.hq.ogg")];
    /// let mut index = EmbeddingIndex::new(tagger.name(), Layers::Embedding, vec![])?;
    /// // saves into `dir` as it goes (here after every file)
    /// let up = index.update_saving(&tagger, &files, |_, _| {}, Some((&dir, Duration::ZERO)))?;
    /// assert_eq!((up.added, index.meta.count), (1, 1));
    /// index.save(&dir)?;
    /// assert_eq!(EmbeddingIndex::load(&dir)?.files, index.files);
    /// # std::fs::remove_dir_all(&dir).ok();
    /// # Ok::<(), mirkit::Error>(())
    /// ```
    pub fn update_saving(
        &mut self,
        tagger: &Tagger,
        files: &[PathBuf],
        mut progress: impl FnMut(usize, usize),
        save: Option<(&Path, std::time::Duration)>,
    ) -> Result<Update> {
        if tagger.name() != self.meta.model {
            return Err(Error::Invalid(format!(
                "the index was made with {}, not {}: embeddings of two models cannot be \
                 compared",
                self.meta.model,
                tagger.name()
            )));
        }
        let wanted: std::collections::HashSet<String> =
            files.iter().map(|f| f.display().to_string()).collect();
        let kept: Vec<usize> = (0..self.files.len())
            .filter(|&i| wanted.contains(&self.files[i]))
            .collect();
        let removed = self.files.len() - kept.len();
        let have: std::collections::HashSet<&str> =
            kept.iter().map(|&i| self.files[i].as_str()).collect();
        let new: Vec<&PathBuf> = files
            .iter()
            .filter(|f| !have.contains(f.display().to_string().as_str()))
            .collect();
        let mut rows: Vec<(String, Vec<f32>)> = kept
            .iter()
            .map(|&i| (self.files[i].clone(), self.embeddings.row(i).to_vec()))
            .collect();
        let mut failed = Vec::new();
        let mut added = 0;
        let model = self.meta.model.clone();
        let layers = self.meta.layers;
        let mut last_save = std::time::Instant::now();
        let mut blocks = self.meta.blocks.clone();
        for (i, f) in new.iter().enumerate() {
            // the width every row must have: the rows' own, else the index's (an index
            // made empty takes the first embedding's)
            let dim = match rows.first() {
                Some(r) => Some(r.1.len()),
                None => (self.meta.count > 0).then_some(self.meta.dim),
            };
            match utf8_name(f).and_then(|_| tagger.embed_parts(f, layers)) {
                Ok((e, parts)) if dim.is_none_or(|d| d == e.len()) => {
                    if rows.is_empty() {
                        blocks = Some(parts);
                    }
                    rows.push((f.display().to_string(), e));
                    added += 1;
                }
                Ok((e, _)) => failed.push((
                    (*f).clone(),
                    Error::Invalid(format!(
                        "{}: embedding of {} dims, the index has {}",
                        f.display(),
                        e.len(),
                        dim.unwrap_or(0)
                    )),
                )),
                Err(e) => failed.push(((*f).clone(), e)),
            }
            progress(i + 1, new.len());
            if let Some((dir, every)) = save {
                // (not after the last file: the caller saves the final state; never an
                // empty index over what the folder held)
                if i + 1 < new.len() && !rows.is_empty() && last_save.elapsed() >= every {
                    let mut partial = Self::new(&model, layers, rows.clone())?;
                    partial.meta.blocks = blocks.clone();
                    partial.save(dir)?;
                    last_save = std::time::Instant::now();
                }
            }
        }
        *self = Self::new(&model, layers, rows)?;
        self.meta.blocks = if self.meta.count > 0 { blocks } else { None };
        Ok(Update {
            added,
            removed,
            kept: kept.len(),
            failed,
        })
    }

    /// The sum of the unit-length `seeds` (the direction of their centroid, what
    /// several seeds are searched by); zero vectors add nothing.
    pub fn centroid(&self, seeds: &[Vec<f32>]) -> Result<Vec<f32>> {
        let dim = self.meta.dim;
        let mut centroid = vec![0f32; dim];
        for s in seeds {
            if s.len() != dim {
                return Err(Error::Invalid(format!(
                    "seed embedding has {} dims, the index {dim}",
                    s.len()
                )));
            }
            let norm = s.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                centroid.iter_mut().zip(s).for_each(|(c, v)| *c += v / norm);
            }
        }
        Ok(centroid)
    }

    /// A playlist of `n` files from the index around `seeds` (embeddings, e.g. rows of
    /// the index or of files outside it): candidates are ranked by cosine similarity to
    /// the seeds' centroid (of unit-length seeds), then chosen greedily by maximal
    /// marginal relevance (Carbonell & Goldstein 1998): each next track maximises
    /// `(1 − λ)·sim(track, centroid) − λ·max sim(track, chosen)`, with `λ =
    /// opts.diversity` (0: plain nearest neighbours). Artist rules use the folder
    /// `opts.artist_depth` levels above each file as its artist.
    pub fn playlist(
        &self,
        seeds: &[Vec<f32>],
        n: usize,
        opts: &PlaylistOptions,
    ) -> Result<Vec<(f32, &str)>> {
        if seeds.is_empty() {
            return Err(Error::Invalid("a playlist needs at least one seed".into()));
        }
        if !(0.0..1.0).contains(&opts.diversity) {
            return Err(Error::Invalid(format!(
                "diversity {} must be in [0, 1)",
                opts.diversity
            )));
        }
        let relevance = self.scores(&self.centroid(seeds)?)?;
        let artist = |i: usize| artist_of(&self.files[i], opts.artist_depth);
        let seed_artists: std::collections::HashSet<String> = opts
            .seed_files
            .iter()
            .filter_map(|f| artist_of(f, opts.artist_depth))
            .collect();
        let excluded: std::collections::HashSet<&str> =
            opts.seed_files.iter().map(|s| s.as_str()).collect();
        // candidates: the best few hundred by relevance, after the hard rules
        let pool_size = (20 * n).max(200);
        let mut eligible: Vec<(f32, usize)> = relevance
            .iter()
            .enumerate()
            .filter(|&(i, _)| !excluded.contains(self.files[i].as_str()))
            .filter(|&(i, _)| {
                !opts.exclude_seed_artists || artist(i).is_none_or(|a| !seed_artists.contains(&a))
            })
            .map(|(i, &s)| (s, i))
            .collect();
        let pool = top_k_pairs(&mut eligible, pool_size);
        let unit = |i: usize| -> Vec<f32> {
            let r = self.embeddings.row(i);
            let norm = r.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
            r.iter().map(|v| v / norm).collect()
        };
        let vecs: Vec<Vec<f32>> = pool.iter().map(|&(_, i)| unit(i)).collect();
        let mut max_sim = vec![f32::NEG_INFINITY; pool.len()];
        let mut taken = vec![false; pool.len()];
        let mut per_artist: std::collections::HashMap<String, usize> = Default::default();
        let mut out = Vec::new();
        let lambda = opts.diversity;
        while out.len() < n {
            let mut best: Option<(f32, usize)> = None;
            for (j, &(rel, i)) in pool.iter().enumerate() {
                if taken[j] {
                    continue;
                }
                if let (Some(cap), Some(a)) = (opts.max_per_artist, artist(i)) {
                    if per_artist.get(&a).copied().unwrap_or(0) >= cap {
                        continue;
                    }
                }
                let red = if out.is_empty() { 0.0 } else { max_sim[j] };
                let score = (1.0 - lambda) * rel - lambda * red;
                if best.is_none_or(|(b, _)| score > b) {
                    best = Some((score, j));
                }
            }
            let Some((_, j)) = best else { break };
            taken[j] = true;
            let (rel, i) = pool[j];
            if let Some(a) = artist(i) {
                *per_artist.entry(a).or_default() += 1;
            }
            for (k, v) in vecs.iter().enumerate() {
                if !taken[k] {
                    let s: f32 = v.iter().zip(&vecs[j]).map(|(a, b)| a * b).sum();
                    max_sim[k] = max_sim[k].max(s);
                }
            }
            out.push((rel, self.files[i].as_str()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two artists with two nearly identical tracks each near the seed direction, and a
    /// third artist further away.
    fn library() -> EmbeddingIndex {
        let rows = vec![
            ("A/x/a1.flac".to_string(), vec![1.0, 0.00, 0.0]),
            ("A/x/a2.flac".to_string(), vec![1.0, 0.01, 0.0]),
            ("B/y/b1.flac".to_string(), vec![0.9, 0.30, 0.0]),
            ("B/y/b2.flac".to_string(), vec![0.9, 0.31, 0.0]),
            ("C/z/c1.flac".to_string(), vec![0.5, 0.00, 0.8]),
            ("S/s/seed.flac".to_string(), vec![1.0, 0.1, 0.3]),
        ];
        EmbeddingIndex::new("m", Layers::Embedding, rows).unwrap()
    }

    #[test]
    fn playlist_rules_and_diversity() {
        let idx = library();
        let seed = vec![idx.embeddings.row(5).to_vec()];
        fn names(v: Vec<(f32, &str)>) -> Vec<String> {
            v.into_iter().map(|r| r.1.to_string()).collect()
        }
        let base = PlaylistOptions {
            seed_files: vec!["S/s/seed.flac".into()],
            artist_depth: 2,
            ..PlaylistOptions::default()
        };
        // λ = 0: nearest first, the seed's own file left out (expected orders worked out
        // with NumPy from the same vectors)
        let p = names(idx.playlist(&seed, 3, &base).unwrap());
        assert_eq!(p, ["A/x/a2.flac", "A/x/a1.flac", "B/y/b1.flac"]);
        // diversity: the near-duplicate a1 and b1 give way to other directions
        let div = PlaylistOptions {
            diversity: 0.5,
            ..base.clone()
        };
        let p = names(idx.playlist(&seed, 3, &div).unwrap());
        assert_eq!(p, ["A/x/a2.flac", "C/z/c1.flac", "B/y/b2.flac"]);
        // one track per artist
        let cap = PlaylistOptions {
            max_per_artist: Some(1),
            ..base.clone()
        };
        let p = names(idx.playlist(&seed, 5, &cap).unwrap());
        assert_eq!(p, ["A/x/a2.flac", "B/y/b1.flac", "C/z/c1.flac"]);
        // the seed's artist left out (the seed is artist A here)
        let ex = PlaylistOptions {
            seed_files: vec!["A/x/a1.flac".into()],
            exclude_seed_artists: true,
            ..base.clone()
        };
        let p = names(
            idx.playlist(&[idx.embeddings.row(0).to_vec()], 2, &ex)
                .unwrap(),
        );
        assert!(p.iter().all(|f| !f.starts_with("A/")), "{p:?}");
        assert_eq!(artist_of("A/x/a1.flac", 1).as_deref(), Some("x"));
        assert_eq!(artist_of("A/x/a1.flac", 2).as_deref(), Some("A"));
        assert_eq!(artist_of("a1.flac", 2), None);
        // errors
        assert!(idx.playlist(&[], 3, &base).is_err());
        assert!(idx.playlist(&[vec![1.0; 2]], 3, &base).is_err());
        let bad = PlaylistOptions {
            diversity: 1.0,
            ..base.clone()
        };
        assert!(idx.playlist(&seed, 3, &bad).is_err());
        assert!(idx.search(&[f32::NAN, 0.0, 0.0], 1).is_err());
    }

    /// The partial selection gives the full sort's first k, ties in row order.
    #[test]
    fn top_k_equals_a_full_sort() {
        let mut r = mirkit_core::rng::Rng::new(5);
        let scores: Vec<f32> = (0..5000)
            .map(|_| (r.uniform() * 50.0).round() as f32)
            .collect();
        let mut full: Vec<(f32, usize)> = scores.iter().copied().zip(0..).collect();
        full.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        for k in [0, 1, 7, 100, 4999, 5000, 6000] {
            assert_eq!(top_k(&scores, k), full[..k.min(5000)].to_vec(), "k = {k}");
        }
    }

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

    /// A save killed (SIGKILL) between its renames leaves new and old files side by side
    /// with the save's complete temporaries; `load` finishes that save instead of refusing
    /// the folder — at either point between the renames — and refuses it as before when
    /// the temporaries are not a complete set.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_save_killed_between_renames_is_finished_by_load() {
        let old = EmbeddingIndex::new(
            "m",
            Layers::Embedding,
            vec![("x.wav".into(), vec![1.0, 0.0])],
        )
        .unwrap();
        let new = EmbeddingIndex::new(
            "m",
            Layers::Embedding,
            vec![
                ("x.wav".into(), vec![1.0, 0.0]),
                ("y \"2\",\n.wav".into(), vec![0.5, 0.5]),
            ],
        )
        .unwrap();
        let saved = mirkit_core::testing::TmpDir::new("mirkit-index-new-");
        new.save(&*saved).unwrap();
        let bytes = |d: &Path, f: &str| std::fs::read(d.join(f)).unwrap();
        // a pid no process has (above Linux's largest pid_max)
        let dead = |f: &str, n: usize| format!("{f}.part4194999-{n}");
        let files = ["embeddings.npy", "index.csv", "meta.json"];
        // killed before the first rename: the old index is whole and is what loads
        let d = mirkit_core::testing::TmpDir::new("mirkit-index-killed-");
        old.save(&*d).unwrap();
        for (k, f) in files.iter().enumerate() {
            std::fs::write(d.join(dead(f, k)), bytes(&saved, f)).unwrap();
        }
        assert_eq!(EmbeddingIndex::load(&*d).unwrap().files, old.files);
        // killed after one or two of the three renames
        for renamed in 1..3 {
            let d = mirkit_core::testing::TmpDir::new("mirkit-index-killed-");
            old.save(&*d).unwrap();
            for (k, f) in files.iter().enumerate() {
                let to = if k < renamed {
                    f.to_string()
                } else {
                    dead(f, k)
                };
                std::fs::write(d.join(to), bytes(&saved, f)).unwrap();
            }
            let got = EmbeddingIndex::load(&*d).unwrap();
            assert_eq!(got.files, new.files, "killed after {renamed} rename(s)");
            for f in files {
                assert_eq!(bytes(&d, f), bytes(&saved, f), "{f}");
            }
            assert!(npy::stale_temps_of(&d.join("meta.json")).is_empty());
        }
        // the same with the data file's temporary truncated: not a complete set, refused
        let d = mirkit_core::testing::TmpDir::new("mirkit-index-killed-");
        old.save(&*d).unwrap();
        std::fs::write(d.join("embeddings.npy"), bytes(&saved, "embeddings.npy")).unwrap();
        let csv = bytes(&saved, "index.csv");
        std::fs::write(d.join(dead("index.csv", 1)), &csv[..csv.len() - 3]).unwrap();
        std::fs::write(d.join(dead("meta.json", 2)), bytes(&saved, "meta.json")).unwrap();
        let e = EmbeddingIndex::load(&*d).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
    }
}
