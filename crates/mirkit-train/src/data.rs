//! Data sets: which files, which labels, which split.
//!
//! Loaders for the layouts music-classification work uses: a folder per class, a CSV
//! manifest (one class or many tags per file), MagnaTagATune's `annotations_final.csv`
//! with split lists, GTZAN's folder layout with optional (fault-filtered) split lists,
//! and MTG-Jamendo's TSVs. Every parsing problem names the file and the 1-based line.

use crate::error::{invalid, io_err, Result, TrainError};
use mirkit_core::rng::Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Single-label classification, multi-label tagging or regression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// Exactly one class per item (softmax, cross-entropy, accuracy).
    MultiClass,
    /// Any number of tags per item (sigmoid, binary cross-entropy, ROC/PR-AUC).
    MultiLabel,
    /// One or more continuous targets per item ([`Item::values`]; identity output,
    /// mean squared error or Huber loss, R² and Spearman's ρ). The data set's
    /// `classes` name the targets.
    Regression,
}

impl Task {
    /// `"multiclass"`, `"multilabel"` or `"regression"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::MultiClass => "multiclass",
            Task::MultiLabel => "multilabel",
            Task::Regression => "regression",
        }
    }
    /// Parses [`Task::as_str`].
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "multiclass" => Ok(Task::MultiClass),
            "multilabel" => Ok(Task::MultiLabel),
            "regression" => Ok(Task::Regression),
            _ => Err(invalid("task", s, "multiclass, multilabel or regression")),
        }
    }
}

/// One audio file and its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    /// The audio file.
    pub path: PathBuf,
    /// Indices into [`Dataset::classes`] (exactly one for [`Task::MultiClass`]; none for
    /// [`Task::Regression`]).
    pub labels: Vec<usize>,
    /// Regression targets, one per entry of [`Dataset::classes`] (empty for
    /// classification and tagging).
    pub values: Vec<f32>,
    /// Split name (`train`, `valid`, `test`), if the source gives one.
    pub split: Option<String>,
}

/// A labelled collection of audio files.
///
/// ```
/// use mirkit_train::data::{CsvOptions, Dataset, Task};
/// use mirkit_train::toy::{write_toy_set, ToyOptions};
/// let dir = std::env::temp_dir().join(format!("mirkit-doc-{}-{}", std::process::id(), line!()));
/// let opts = ToyOptions { clips_per_class: 3, seconds: 4.0, sample_rate: 16000, seed: 0 };
/// let manifest = write_toy_set(&dir, &opts)?; // path,label,tempo_bpm,split
/// let ds = Dataset::csv_manifest(&manifest, &CsvOptions::default())?;
/// assert_eq!((ds.task, ds.n_classes(), ds.items.len()), (Task::MultiClass, 4, 12));
/// let test = ds.split("test")?; // the manifest's split column
/// assert_eq!(test.len(), 4);
/// // the same files as one folder per class (CLASS/file.wav)
/// let by_folder = Dataset::folder_per_class(&dir)?;
/// assert_eq!(by_folder.classes, ds.classes);
/// # std::fs::remove_dir_all(&dir).ok();
/// # Ok::<(), mirkit_train::TrainError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Class or tag names, in output order.
    pub classes: Vec<String>,
    /// Single- or multi-label.
    pub task: Task,
    /// The files.
    pub items: Vec<Item>,
}

fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| io_err(path, e))
}

fn sorted_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    v.sort();
    Ok(v)
}

/// Options of [`Dataset::csv_manifest`].
#[derive(Debug, Clone)]
pub struct CsvOptions {
    /// Column with the audio path (relative to the manifest's folder or absolute).
    pub path_column: String,
    /// Column with the class or the tags.
    pub label_column: String,
    /// Column with the split, if any.
    pub split_column: Option<String>,
    /// Multi-label: the label column holds tags separated by this character
    /// (e.g. `;` or `|`). `None`: one class per row.
    pub tag_separator: Option<char>,
    /// Fixed class list (unknown labels are errors); `None`: the sorted set of labels seen.
    pub classes: Option<Vec<String>>,
    /// Regression: read these numeric columns as the targets (the task becomes
    /// [`Task::Regression`], `classes` are these names, `label_column` and
    /// `tag_separator` are not used). Every value must parse as a finite number.
    pub value_columns: Option<Vec<String>>,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            path_column: "path".into(),
            label_column: "label".into(),
            split_column: Some("split".into()),
            tag_separator: None,
            classes: None,
            value_columns: None,
        }
    }
}

impl Dataset {
    /// Number of classes or tags.
    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// `root/<class>/**/<audio files>`: the sorted sub-folder names are the classes. No
    /// split is recorded (see [`Dataset::stratified_split`]).
    pub fn folder_per_class(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref();
        let mut classes = Vec::new();
        let mut items = Vec::new();
        for dir in sorted_dir(root)? {
            if !dir.is_dir() {
                continue;
            }
            let files = mirkit_io::audio_files(&dir)?;
            if files.is_empty() {
                continue;
            }
            let c = classes.len();
            classes.push(dir.file_name().unwrap().to_string_lossy().into_owned());
            items.extend(files.into_iter().map(|path| Item {
                path,
                labels: vec![c],
                values: Vec::new(),
                split: None,
            }));
        }
        if classes.len() < 2 {
            return Err(invalid(
                "folder",
                root.display(),
                "needs at least two sub-folders (one per class) holding audio files",
            ));
        }
        Ok(Self {
            classes,
            task: Task::MultiClass,
            items,
        })
    }

    /// A CSV manifest with a header row (see [`CsvOptions`]); paths are relative to the
    /// manifest's folder.
    pub fn csv_manifest(path: impl AsRef<Path>, opts: &CsvOptions) -> Result<Self> {
        let path = path.as_ref();
        let file = path.display().to_string();
        let base = path.parent().unwrap_or(Path::new("."));
        let text = read_text(path)?;
        // RFC 4180 through the csv crate; blank lines are skipped, line numbers are the
        // file's own (1-based) for error messages
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(text.trim_start_matches('\u{feff}').as_bytes());
        let mut records = reader
            .records()
            .filter(|r| !matches!(r, Ok(rec) if rec.iter().all(|f| f.trim().is_empty())));
        let parse_err = |line: usize, why: String| TrainError::Parse {
            file: file.clone(),
            line,
            why,
        };
        let line_of = |r: &csv::StringRecord| r.position().map(|p| p.line() as usize).unwrap_or(0);
        let header = match records.next() {
            None => return Err(parse_err(1, "empty manifest".into())),
            Some(Err(e)) => return Err(parse_err(1, e.to_string())),
            Some(Ok(h)) => h.iter().map(str::to_string).collect::<Vec<_>>(),
        };
        let col = |name: &str| -> Result<usize> {
            header.iter().position(|h| h.trim() == name).ok_or_else(|| {
                parse_err(
                    1,
                    format!("no column {name:?} (columns: {})", header.join(", ")),
                )
            })
        };
        let pc = col(&opts.path_column)?;
        let sc = match &opts.split_column {
            Some(s) => header.iter().position(|h| h.trim() == s),
            None => None,
        };
        let split_of = |f: &[&str]| {
            sc.map(|c| f[c].trim().to_string())
                .filter(|s| !s.is_empty())
        };
        // every data row, checked for CSV errors and field count, with its line number
        let mut recs = Vec::new();
        for rec in records {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line() as usize).unwrap_or(0);
                parse_err(line, e.to_string())
            })?;
            let line = line_of(&rec);
            let f: Vec<&str> = rec.iter().collect();
            if f.len() != header.len() {
                return Err(parse_err(
                    line,
                    format!("{} fields, header has {}", f.len(), header.len()),
                ));
            }
            recs.push((line, rec));
        }
        if let Some(names) = &opts.value_columns {
            if names.is_empty() {
                return Err(invalid("value_columns", "[]", "name at least one column"));
            }
            let vcs = names.iter().map(|n| col(n)).collect::<Result<Vec<_>>>()?;
            let mut items = Vec::new();
            for (line, rec) in &recs {
                let (line, f) = (*line, rec.iter().collect::<Vec<&str>>());
                let mut values = Vec::with_capacity(vcs.len());
                for (&c, name) in vcs.iter().zip(names) {
                    let v: f32 = f[c].trim().parse().map_err(|_| {
                        parse_err(line, format!("{name} = {:?} is not a number", f[c]))
                    })?;
                    if !v.is_finite() {
                        return Err(parse_err(line, format!("{name} = {v} is not finite")));
                    }
                    values.push(v);
                }
                items.push(Item {
                    path: base.join(f[pc].trim()),
                    labels: Vec::new(),
                    values,
                    split: split_of(&f),
                });
            }
            return Ok(Self {
                classes: names.clone(),
                task: Task::Regression,
                items,
            });
        }
        let lc = col(&opts.label_column)?;
        let mut rows = Vec::new();
        for (line, rec) in &recs {
            let (line, f) = (*line, rec.iter().collect::<Vec<&str>>());
            let labels: Vec<String> = match opts.tag_separator {
                Some(sep) => f[lc]
                    .split(sep)
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect(),
                None => vec![f[lc].trim().to_string()],
            };
            if opts.tag_separator.is_none() && labels[0].is_empty() {
                return Err(parse_err(line, "empty label".into()));
            }
            rows.push((line, base.join(f[pc].trim()), labels, split_of(&f)));
        }
        let task = if opts.tag_separator.is_some() {
            Task::MultiLabel
        } else {
            Task::MultiClass
        };
        let classes = match &opts.classes {
            Some(c) => c.clone(),
            None => {
                let mut c: Vec<String> = rows.iter().flat_map(|r| r.2.iter().cloned()).collect();
                c.sort();
                c.dedup();
                c
            }
        };
        let index: HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let mut items = Vec::new();
        for (line, p, labels, split) in rows {
            let mut idx = Vec::new();
            for l in &labels {
                match index.get(l.as_str()) {
                    Some(&i) => idx.push(i),
                    None => {
                        return Err(TrainError::UnknownClass {
                            file: file.clone(),
                            line,
                            class: l.clone(),
                            known: classes.join(", "),
                        })
                    }
                }
            }
            idx.sort_unstable();
            idx.dedup();
            items.push(Item {
                path: p,
                labels: idx,
                values: Vec::new(),
                split,
            });
        }
        Ok(Self {
            classes,
            task,
            items,
        })
    }

    /// MagnaTagATune: `annotations_final.csv` (tab-separated `clip_id`, 188 tag columns of
    /// 0/1, `mp3_path`) with audio under `audio_root`. Tags: `tags` if given (e.g. the
    /// common top-50 list), else the 50 most frequent. Splits from optional list files
    /// (one `mp3_path` per line, optionally `index<TAB>mp3_path`, as in the common top-50
    /// split files); items in no list keep no split.
    pub fn mtat(
        annotations: impl AsRef<Path>,
        audio_root: impl AsRef<Path>,
        tags: Option<&[String]>,
        splits: &[(&str, &Path)],
    ) -> Result<Self> {
        let path = annotations.as_ref();
        let file = path.display().to_string();
        let text = read_text(path)?;
        let mut lines = text.lines().enumerate();
        let (_, header) = lines.next().ok_or_else(|| TrainError::Parse {
            file: file.clone(),
            line: 1,
            why: "empty file".into(),
        })?;
        let header: Vec<&str> = header.split('\t').map(|s| s.trim_matches('"')).collect();
        let (Some(0), Some(last)) = (
            header.iter().position(|h| *h == "clip_id"),
            header.iter().position(|h| *h == "mp3_path"),
        ) else {
            return Err(TrainError::Parse {
                file,
                line: 1,
                why: "expected columns clip_id … mp3_path (tab-separated)".into(),
            });
        };
        let tag_names: Vec<String> = header[1..last].iter().map(|s| s.to_string()).collect();
        let mut rows: Vec<(String, Vec<usize>)> = Vec::new();
        let mut counts = vec![0usize; tag_names.len()];
        for (i, line) in lines {
            if line.trim().is_empty() {
                continue;
            }
            let f: Vec<&str> = line.split('\t').map(|s| s.trim_matches('"')).collect();
            if f.len() != header.len() {
                return Err(TrainError::Parse {
                    file: file.clone(),
                    line: i + 1,
                    why: format!("{} fields, header has {}", f.len(), header.len()),
                });
            }
            let mut on = Vec::new();
            for (t, v) in f[1..last].iter().enumerate() {
                match *v {
                    "1" => {
                        on.push(t);
                        counts[t] += 1;
                    }
                    "0" => {}
                    other => {
                        return Err(TrainError::Parse {
                            file: file.clone(),
                            line: i + 1,
                            why: format!(
                                "tag {:?} has value {other:?}, expected 0 or 1",
                                tag_names[t]
                            ),
                        })
                    }
                }
            }
            rows.push((f[last].to_string(), on));
        }
        let chosen: Vec<usize> = match tags {
            Some(list) => {
                list.iter()
                    .map(|t| {
                        tag_names.iter().position(|n| n == t).ok_or_else(|| {
                            TrainError::UnknownClass {
                                file: file.clone(),
                                line: 1,
                                class: t.clone(),
                                known: tag_names.join(", "),
                            }
                        })
                    })
                    .collect::<Result<_>>()?
            }
            None => {
                let mut idx: Vec<usize> = (0..tag_names.len()).collect();
                idx.sort_by(|a, b| counts[*b].cmp(&counts[*a]).then(a.cmp(b)));
                idx.truncate(50);
                idx
            }
        };
        let remap: HashMap<usize, usize> =
            chosen.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        let split_of = read_split_lists(splits)?;
        let root = audio_root.as_ref();
        let items = rows
            .into_iter()
            .map(|(mp3, on)| {
                let mut labels: Vec<usize> =
                    on.iter().filter_map(|t| remap.get(t).copied()).collect();
                labels.sort_unstable();
                Item {
                    split: split_of.get(mp3.as_str()).cloned(),
                    path: root.join(&mp3),
                    labels,
                    values: Vec::new(),
                }
            })
            .collect();
        Ok(Self {
            classes: chosen.iter().map(|&t| tag_names[t].clone()).collect(),
            task: Task::MultiLabel,
            items,
        })
    }

    /// GTZAN: `root/<genre>/<genre>.000NN.wav` (also accepts `root/genres/...`). With
    /// split lists (e.g. the fault-filtered `train_filtered.txt` / `valid_filtered.txt` /
    /// `test_filtered.txt`, lines like `blues/blues.00029.wav`), only listed files are kept.
    pub fn gtzan(root: impl AsRef<Path>, splits: &[(&str, &Path)]) -> Result<Self> {
        let mut root = root.as_ref().to_path_buf();
        if root.join("genres").is_dir() {
            root = root.join("genres");
        }
        let mut ds = Self::folder_per_class(&root)?;
        if splits.is_empty() {
            return Ok(ds);
        }
        let split_of = read_split_lists(splits)?;
        ds.items.retain_mut(|it| {
            let rel = it
                .path
                .strip_prefix(&root)
                .map(|r| r.to_string_lossy().replace('\\', "/"))
                .unwrap_or_default();
            match split_of.get(rel.as_str()) {
                Some(s) => {
                    it.split = Some(s.clone());
                    true
                }
                None => false,
            }
        });
        Ok(ds)
    }

    /// MTG-Jamendo: split TSVs (`TRACK_ID PATH ... TAGS…`, tags like `genre---rock`, one
    /// per trailing column), audio under `audio_root`. `tags`: the class list (e.g. the
    /// top-50); `None` = every tag seen, sorted.
    pub fn jamendo(
        tsvs: &[(&str, &Path)],
        audio_root: impl AsRef<Path>,
        tags: Option<&[String]>,
    ) -> Result<Self> {
        let mut rows = Vec::new();
        for (split, path) in tsvs {
            let file = path.display().to_string();
            let text = read_text(path)?;
            let mut lines = text.lines().enumerate();
            let (_, header) = lines.next().ok_or_else(|| TrainError::Parse {
                file: file.clone(),
                line: 1,
                why: "empty file".into(),
            })?;
            let header: Vec<&str> = header.split('\t').collect();
            let pc = header.iter().position(|h| *h == "PATH");
            let tc = header.iter().position(|h| *h == "TAGS");
            let (Some(pc), Some(tc)) = (pc, tc) else {
                return Err(TrainError::Parse {
                    file,
                    line: 1,
                    why: "expected columns PATH and TAGS (tab-separated)".into(),
                });
            };
            for (i, line) in lines {
                if line.trim().is_empty() {
                    continue;
                }
                let f: Vec<&str> = line.split('\t').collect();
                if f.len() <= tc {
                    return Err(TrainError::Parse {
                        file: file.clone(),
                        line: i + 1,
                        why: format!("{} fields, need at least {}", f.len(), tc + 1),
                    });
                }
                let t: Vec<String> = f[tc..]
                    .iter()
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect();
                rows.push((file.clone(), i + 1, split.to_string(), f[pc].to_string(), t));
            }
        }
        let classes: Vec<String> = match tags {
            Some(t) => t.to_vec(),
            None => {
                let mut c: Vec<String> = rows.iter().flat_map(|r| r.4.iter().cloned()).collect();
                c.sort();
                c.dedup();
                c
            }
        };
        let index: HashMap<&str, usize> = classes
            .iter()
            .enumerate()
            .map(|(i, c)| (c.as_str(), i))
            .collect();
        let root = audio_root.as_ref();
        let items = rows
            .into_iter()
            .map(|(_, _, split, p, t)| {
                // Tags outside a given class list (e.g. outside the top-50) are dropped.
                let mut labels: Vec<usize> = t
                    .iter()
                    .filter_map(|x| index.get(x.as_str()).copied())
                    .collect();
                labels.sort_unstable();
                labels.dedup();
                Item {
                    path: root.join(p),
                    labels,
                    values: Vec::new(),
                    split: Some(split),
                }
            })
            .collect();
        Ok(Self {
            classes,
            task: Task::MultiLabel,
            items,
        })
    }

    /// The items of one split, in data-set order.
    pub fn split(&self, name: &str) -> Result<Vec<Item>> {
        let v: Vec<Item> = self
            .items
            .iter()
            .filter(|i| i.split.as_deref() == Some(name))
            .cloned()
            .collect();
        if v.is_empty() {
            let have: std::collections::BTreeSet<&str> = self
                .items
                .iter()
                .filter_map(|i| i.split.as_deref())
                .collect();
            return Err(TrainError::EmptySplit {
                split: name.into(),
                why: format!(
                    " (splits present: {})",
                    if have.is_empty() {
                        "none".to_string()
                    } else {
                        have.into_iter().collect::<Vec<_>>().join(", ")
                    }
                ),
            });
        }
        Ok(v)
    }

    /// Assigns `train`/`valid`/`test` per class in the given proportions (seeded; items
    /// that already have a split keep it). Proportions are rounded per class, test first.
    /// Regression is stratified by the first target: the items in target order are cut
    /// into consecutive groups of `round(1 / min(valid, test))` (at least 2) that play
    /// the part of classes, so every split spans the range of the target.
    pub fn stratified_split(&mut self, valid: f64, test: f64, seed: u64) -> Result<()> {
        if !(valid >= 0.0 && test >= 0.0 && valid + test < 1.0) {
            return Err(invalid(
                "valid+test",
                valid + test,
                "fractions must be >= 0 and sum below 1",
            ));
        }
        let mut by_class: BTreeMap<Vec<usize>, Vec<usize>> = BTreeMap::new();
        let open: Vec<usize> = (0..self.items.len())
            .filter(|&i| self.items[i].split.is_none())
            .collect();
        if self.task == Task::Regression {
            let mut by_value = open;
            let first = |i: usize| self.items[i].values.first().copied().unwrap_or(0.0);
            by_value.sort_by(|&a, &b| first(a).total_cmp(&first(b)).then(a.cmp(&b)));
            let smallest = [valid, test]
                .into_iter()
                .filter(|f| *f > 0.0)
                .fold(f64::INFINITY, f64::min);
            let group = if smallest.is_finite() {
                ((1.0 / smallest).round() as usize).max(2)
            } else {
                by_value.len().max(1)
            };
            for (rank, i) in by_value.into_iter().enumerate() {
                by_class.entry(vec![rank / group]).or_default().push(i);
            }
        } else {
            for i in open {
                by_class
                    .entry(self.items[i].labels.clone())
                    .or_default()
                    .push(i);
            }
        }
        let mut rng = Rng::new(seed);
        for (_, mut idx) in by_class {
            rng.shuffle(&mut idx);
            let n = idx.len() as f64;
            let nt = (n * test).round() as usize;
            let nv = (n * valid).round() as usize;
            for (k, &i) in idx.iter().enumerate() {
                self.items[i].split = Some(
                    if k < nt {
                        "test"
                    } else if k < nt + nv {
                        "valid"
                    } else {
                        "train"
                    }
                    .into(),
                );
            }
        }
        Ok(())
    }

    /// Target matrix (`n × classes`, row-major) of `items`: multi-hot labels, or the
    /// values for [`Task::Regression`].
    pub fn targets(&self, items: &[Item]) -> Vec<f32> {
        if self.task == Task::Regression {
            return value_rows(items);
        }
        multi_hot(
            items.iter().map(|it| it.labels.as_slice()),
            self.classes.len(),
        )
    }
}

/// Regression targets of `items`, row-major (`rows × targets`).
pub fn value_rows<'a>(items: impl IntoIterator<Item = &'a Item>) -> Vec<f32> {
    items
        .into_iter()
        .flat_map(|it| it.values.iter().copied())
        .collect()
}

/// Multi-hot matrix (`rows × classes`, row-major) of per-row class indices.
pub fn multi_hot<'a>(rows: impl IntoIterator<Item = &'a [usize]>, classes: usize) -> Vec<f32> {
    let mut y = Vec::new();
    for labels in rows {
        let start = y.len();
        y.resize(start + classes, 0.0);
        for &l in labels {
            y[start + l] = 1.0;
        }
    }
    y
}

fn read_split_lists(splits: &[(&str, &Path)]) -> Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    for (name, path) in splits {
        let text = read_text(path)?;
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.is_empty() {
                continue;
            }
            let rel = l.rsplit('\t').next().unwrap_or(l).trim();
            if rel.is_empty() {
                return Err(TrainError::Parse {
                    file: path.display().to_string(),
                    line: i + 1,
                    why: "empty path".into(),
                });
            }
            out.insert(rel.to_string(), name.to_string());
        }
    }
    Ok(out)
}

/// Per-target standardisation of regression values: the training split's mean and
/// population standard deviation of each target. Networks and heads learn the
/// standardised values `(v − mean) / std`, so a learning rate, a weight decay or a Huber
/// δ means the same for tempo in BPM as for valence in [−1, 1]; predictions are turned
/// back into the targets' units with [`TargetScaling::restore`]. A constant target keeps
/// a scale of 1, so standardising never divides by zero.
///
/// ```
/// use mirkit_train::data::TargetScaling;
/// let s = TargetScaling::fit(&[vec![100.0], vec![140.0]], 1)?;
/// assert_eq!((s.mean.as_slice(), s.std.as_slice()), (&[120.0f32][..], &[20.0f32][..]));
/// assert_eq!(s.standardise(&[160.0]), vec![2.0]);
/// let mut p = vec![-0.5];
/// s.restore(&mut p);
/// assert_eq!(p, vec![110.0]);
/// # Ok::<(), mirkit_train::TrainError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct TargetScaling {
    /// Training mean of each target.
    pub mean: Vec<f32>,
    /// Training (population) standard deviation of each target, 1 for a constant one.
    pub std: Vec<f32>,
}

impl TargetScaling {
    /// Metadata key and value that mark a regression model file.
    pub const TASK: (&'static str, &'static str) = ("task", "regression");
    /// Metadata key of the means in a model file (a JSON array).
    pub const MEAN_KEY: &'static str = "target_mean";
    /// Metadata key of the standard deviations in a model file (a JSON array).
    pub const STD_KEY: &'static str = "target_std";

    /// Mean and standard deviation of each of `targets` columns over `rows` (accumulated
    /// in f64). Errors on no rows, a row of another width or a non-finite value.
    pub fn fit(rows: &[Vec<f32>], targets: usize) -> Result<Self> {
        if rows.is_empty() || targets == 0 {
            return Err(invalid(
                "regression targets",
                format!("{} rows × {targets}", rows.len()),
                "need at least one row and one target",
            ));
        }
        if let Some(r) = rows.iter().find(|r| r.len() != targets) {
            return Err(TrainError::Mismatch {
                what: "target values per row vs targets".into(),
                got: r.len(),
                expected: targets,
            });
        }
        if let Some(v) = rows.iter().flatten().find(|v| !v.is_finite()) {
            return Err(invalid("regression target", v, "must be finite"));
        }
        let n = rows.len() as f64;
        let mut mean = vec![0f64; targets];
        for r in rows {
            for (m, x) in mean.iter_mut().zip(r) {
                *m += *x as f64 / n;
            }
        }
        let mut var = vec![0f64; targets];
        for r in rows {
            for ((s, x), m) in var.iter_mut().zip(r).zip(&mean) {
                *s += (*x as f64 - m).powi(2) / n;
            }
        }
        Ok(Self {
            mean: mean.iter().map(|m| *m as f32).collect(),
            std: var
                .iter()
                .map(|s| {
                    if s.sqrt() > 1e-8 {
                        s.sqrt() as f32
                    } else {
                        1.0
                    }
                })
                .collect(),
        })
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.mean.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.mean.is_empty()
    }

    /// `(v − mean) / std` of one row of values.
    pub fn standardise(&self, row: &[f32]) -> Vec<f32> {
        row.iter()
            .zip(&self.mean)
            .zip(&self.std)
            .map(|((v, m), s)| (v - m) / s)
            .collect()
    }

    /// Standardised values back in the targets' units, in place (`z · std + mean`), for
    /// a row-major `rows × targets` matrix.
    pub fn restore(&self, values: &mut [f32]) {
        let c = self.len().max(1);
        for (i, v) in values.iter_mut().enumerate() {
            *v = *v * self.std[i % c] + self.mean[i % c];
        }
    }

    /// Writes the scaling into a model file's metadata ([`Self::TASK`],
    /// [`Self::MEAN_KEY`], [`Self::STD_KEY`]).
    pub fn to_metadata(&self, meta: &mut HashMap<String, String>) {
        let json = |v: &[f32]| serde_json::to_string(v).expect("finite floats");
        meta.insert(Self::TASK.0.into(), Self::TASK.1.into());
        meta.insert(Self::MEAN_KEY.into(), json(&self.mean));
        meta.insert(Self::STD_KEY.into(), json(&self.std));
    }

    /// Whether a model file's metadata marks a regression model ([`Self::TASK`]).
    pub fn is_regression(meta: &HashMap<String, String>) -> bool {
        meta.get(Self::TASK.0).map(String::as_str) == Some(Self::TASK.1)
    }

    /// The scaling stored by [`Self::to_metadata`] for `targets` outputs: `None` when the
    /// metadata marks no regression model; an error naming `file` when the marked scaling
    /// is missing, malformed, of another width, non-finite or has a non-positive standard
    /// deviation.
    pub fn from_metadata(
        meta: &HashMap<String, String>,
        targets: usize,
        file: &str,
    ) -> Result<Option<Self>> {
        if !Self::is_regression(meta) {
            return Ok(None);
        }
        let bad = |why: String| TrainError::Checkpoint {
            file: file.to_string(),
            why,
        };
        let (Some(m), Some(s)) = (meta.get(Self::MEAN_KEY), meta.get(Self::STD_KEY)) else {
            return Err(bad(format!(
                "a regression model without {} and {} in its metadata",
                Self::MEAN_KEY,
                Self::STD_KEY
            )));
        };
        let parse = |key: &str, text: &str| -> Result<Vec<f32>> {
            serde_json::from_str::<Vec<f32>>(text).map_err(|e| bad(format!("metadata {key}: {e}")))
        };
        let (mean, std) = (parse(Self::MEAN_KEY, m)?, parse(Self::STD_KEY, s)?);
        if mean.len() != targets || std.len() != targets {
            return Err(bad(format!(
                "{}/{} target means/deviations for {targets} outputs",
                mean.len(),
                std.len()
            )));
        }
        if mean.iter().any(|v| !v.is_finite()) || std.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return Err(bad(
                "target means must be finite and deviations finite and > 0".into(),
            ));
        }
        Ok(Some(Self { mean, std }))
    }
}
