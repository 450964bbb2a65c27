//! Tag vocabularies of the three tagging data sets — MagnaTagATune top-50 (`mtat`),
//! Million Song Dataset top-50 (`msd`) and MTG-Jamendo top-50 (`jamendo`) — mapped to
//! each other, so a model trained on one data set's tags can answer in another's (the
//! review's "classifying across data sets").
//!
//! The mapping is the table `data/vocabularies.csv` in this crate (compiled in): one row
//! per concept, and in each vocabulary's column the tags that mean it (`|`-separated;
//! empty where the data set has no such tag). It groups synonyms within a vocabulary
//! (MTAT's `female`, `woman`, `female vocal`, `female voice`) and equal meanings across
//! vocabularies (MSD's `Hip-Hop`, Jamendo's `genre---hiphop`). Tags in no row (MTAT's
//! `sitar`, MSD's `80s`, Jamendo's `mood/theme---film`) have no counterpart.
//!
//! A translated score of a target tag is the **maximum** over the source tags of its
//! concept: the model's evidence for the concept under any of its names (a mean would
//! be pulled down by rarely used synonyms, which taggers score low).
//!
//! ```
//! use mirkit_models::vocabulary::{Vocabulary, Translation};
//! let mtat: Vec<String> = ["rock", "classical", "sitar", "woman", "female"]
//!     .iter().map(|s| s.to_string()).collect();
//! let t = Translation::new(&mtat, Vocabulary::Mtat, Vocabulary::Msd)?;
//! assert_eq!(t.tags(), ["rock", "female vocalists", "female vocalist"]);
//! // scores of one clip under the MTAT model → the MSD vocabulary
//! let out = t.apply(&[0.9, 0.1, 0.5, 0.2, 0.6], mtat.len());
//! assert_eq!(out, vec![0.9, 0.6, 0.6]);
//! # Ok::<(), mirkit_models::ModelError>(())
//! ```

use crate::error::{ModelError, Result};

const TABLE: &str = include_str!("../data/vocabularies.csv");

/// A tagging data set's vocabulary.
///
/// ```
/// use mirkit_models::vocabulary::Vocabulary;
/// assert_eq!(Vocabulary::parse("msd")?, Vocabulary::Msd);
/// assert_eq!(Vocabulary::of_model("won2020-fcn-jamendo"), Some(Vocabulary::Jamendo));
/// assert_eq!(Vocabulary::of_model("MTT_vgg"), Some(Vocabulary::Mtat));
/// assert!(Vocabulary::parse("gtzan").is_err());
/// # Ok::<(), mirkit_models::ModelError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vocabulary {
    /// MagnaTagATune top-50 (musicnn, Won 2020 `*-mtat`).
    Mtat,
    /// Million Song Dataset top-50 (musicnn `*-msd`, Won 2020 `*-msd`).
    Msd,
    /// MTG-Jamendo top-50 (Won 2020 `*-jamendo`).
    Jamendo,
}

impl Vocabulary {
    /// All three, in the table's column order.
    pub const ALL: [Vocabulary; 3] = [Vocabulary::Mtat, Vocabulary::Msd, Vocabulary::Jamendo];

    /// `mtat`, `msd` or `jamendo` (the table's column names).
    pub fn name(self) -> &'static str {
        match self {
            Vocabulary::Mtat => "mtat",
            Vocabulary::Msd => "msd",
            Vocabulary::Jamendo => "jamendo",
        }
    }

    /// Parses [`Vocabulary::name`] (also `mtt`, MagnaTagATune's other short name).
    pub fn parse(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "mtat" | "mtt" => Ok(Vocabulary::Mtat),
            "msd" => Ok(Vocabulary::Msd),
            "jamendo" => Ok(Vocabulary::Jamendo),
            _ => Err(ModelError::Input(format!(
                "unknown vocabulary {s:?} (known: mtat, msd, jamendo)"
            ))),
        }
    }

    /// The vocabulary a registry model was trained on, from its name (`musicnn-mtt`,
    /// `won2020-fcn-msd`, `MTT_vgg`...); `None` for other models.
    pub fn of_model(name: &str) -> Option<Self> {
        let lower = name.to_ascii_lowercase();
        let n = lower.trim_end_matches(".safetensors");
        let last = n.rsplit(['-', '_', '/']).next().unwrap_or("");
        let first = n.split(['-', '_']).next().unwrap_or("");
        Self::parse(last).or_else(|_| Self::parse(first)).ok()
    }

    fn column(self) -> usize {
        match self {
            Vocabulary::Mtat => 1,
            Vocabulary::Msd => 2,
            Vocabulary::Jamendo => 3,
        }
    }
}

/// One row of the table: a concept and its tags in each vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct Concept {
    /// The concept's name (`female voice`).
    pub name: String,
    /// Its tags in MTAT, MSD and Jamendo (in [`Vocabulary::ALL`] order).
    pub tags: [Vec<String>; 3],
}

/// The mapping table, parsed.
pub fn concepts() -> Vec<Concept> {
    TABLE
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let cell = |i: usize| -> Vec<String> {
                f.get(i)
                    .map(|c| {
                        c.split('|')
                            .map(str::trim)
                            .filter(|t| !t.is_empty())
                            .map(str::to_string)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            Concept {
                name: f[0].to_string(),
                tags: [cell(1), cell(2), cell(3)],
            }
        })
        .collect()
}

/// How a model's outputs (in `from`'s vocabulary) become scores of `to`'s tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Translation {
    tags: Vec<String>,
    sources: Vec<Vec<usize>>,
    unmapped: Vec<String>,
}

impl Translation {
    /// The translation of a model whose outputs are `model_tags` (in `from`'s
    /// vocabulary) into `to`'s tags. Target tags come in the table's row order (and a
    /// row's own order); a target tag is kept only if the model outputs one of its
    /// concept's source tags. An error if nothing maps.
    pub fn new(model_tags: &[String], from: Vocabulary, to: Vocabulary) -> Result<Self> {
        let index = |t: &str| model_tags.iter().position(|m| m == t);
        let (mut tags, mut sources, mut unmapped) = (vec![], vec![], vec![]);
        for c in concepts() {
            let src: Vec<usize> = c.tags[from.column() - 1]
                .iter()
                .filter_map(|t| index(t))
                .collect();
            for t in &c.tags[to.column() - 1] {
                if src.is_empty() {
                    unmapped.push(t.clone());
                } else {
                    tags.push(t.clone());
                    sources.push(src.clone());
                }
            }
        }
        if tags.is_empty() {
            return Err(ModelError::Input(format!(
                "no tag of the model maps to the {} vocabulary",
                to.name()
            )));
        }
        Ok(Self {
            tags,
            sources,
            unmapped,
        })
    }

    /// The target tags that have a counterpart, in output order.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// Target tags of the table without a counterpart among the model's outputs.
    pub fn unmapped(&self) -> &[String] {
        &self.unmapped
    }

    /// The model's output indices behind target tag `i`.
    pub fn sources(&self, i: usize) -> &[usize] {
        &self.sources[i]
    }

    /// Rows of model outputs (row-major, rows of `width` scores) translated: for each
    /// target tag the maximum over its source outputs.
    pub fn apply(&self, scores: &[f32], width: usize) -> Vec<f32> {
        let mut out = Vec::with_capacity(scores.len() / width.max(1) * self.tags.len());
        for row in scores.chunks(width.max(1)) {
            for src in &self.sources {
                out.push(
                    src.iter()
                        .map(|&j| row[j])
                        .fold(f32::NEG_INFINITY, f32::max),
                );
            }
        }
        out
    }
}
