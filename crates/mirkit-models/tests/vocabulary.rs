//! The vocabulary table against the tag lists of the compiled-in taggers.

use mirkit_models::registry;
use mirkit_models::vocabulary::{concepts, Translation, Vocabulary};

fn tags(model: &str) -> Vec<String> {
    registry::load_pretrained(model).unwrap().tags().to_vec()
}

/// Every tag the table names is one of its data set's 50 tags (a typo would silently
/// map nothing), no tag is in two rows, and every registry model's vocabulary is known.
#[test]
fn table_names_real_tags_once() {
    let sets = [
        (Vocabulary::Mtat, tags("won2020-fcn-mtat")),
        (Vocabulary::Msd, tags("won2020-fcn-msd")),
        (Vocabulary::Jamendo, tags("won2020-fcn-jamendo")),
    ];
    assert_eq!(
        tags("musicnn-mtt"),
        sets[0].1,
        "musicnn MTT = Won 2020 MTAT tags"
    );
    let rows = concepts();
    assert!(rows.len() >= 30);
    for (k, (v, list)) in sets.iter().enumerate() {
        let mut seen = std::collections::HashSet::new();
        for c in &rows {
            for t in &c.tags[k] {
                assert!(
                    list.contains(t),
                    "{}: {t:?} ({}) is not a tag",
                    v.name(),
                    c.name
                );
                assert!(seen.insert(t.clone()), "{}: {t:?} in two rows", v.name());
            }
        }
    }
    for e in registry::MODELS {
        assert!(Vocabulary::of_model(e.name).is_some(), "{}", e.name);
    }
    assert_eq!(Vocabulary::of_model("MTT_vgg"), Some(Vocabulary::Mtat));
    assert_eq!(
        Vocabulary::of_model("won2020-crnn-msd"),
        Some(Vocabulary::Msd)
    );
    assert_eq!(Vocabulary::of_model("mine.safetensors"), None);
    assert!(Vocabulary::parse("gtzan").is_err());
}

/// Translating MTAT outputs to MTAT is the identity on mapped tags; to MSD and Jamendo it
/// takes the maximum over synonyms; tags without a counterpart are listed.
#[test]
fn translations_take_the_maximum_over_synonyms() {
    let mtat = tags("won2020-fcn-mtat");
    let scores: Vec<f32> = (0..mtat.len()).map(|i| i as f32 / 100.0).collect();
    let at = |t: &str| scores[mtat.iter().position(|m| m == t).unwrap()];
    let same = Translation::new(&mtat, Vocabulary::Mtat, Vocabulary::Mtat).unwrap();
    let out = same.apply(&scores, mtat.len());
    for (t, s) in same.tags().iter().zip(&out) {
        // synonyms share the concept's maximum, which is at least the tag's own score
        assert!(*s >= at(t), "{t}");
    }
    let msd = Translation::new(&mtat, Vocabulary::Mtat, Vocabulary::Msd).unwrap();
    let out = msd.apply(&scores, mtat.len());
    let get = |t: &str| out[msd.tags().iter().position(|m| m == t).unwrap()];
    let female = ["female", "woman", "female vocal", "female voice"]
        .iter()
        .map(|t| at(t))
        .fold(f32::MIN, f32::max);
    assert_eq!(get("female vocalists"), female);
    assert_eq!(get("female vocalist"), female);
    assert_eq!(get("rock"), at("rock"));
    assert_eq!(
        get("instrumental"),
        at("no vocals").max(at("no vocal")).max(at("no voice"))
    );
    assert!(
        msd.unmapped().contains(&"jazz".to_string()),
        "MTAT has no jazz"
    );
    assert!(!msd.tags().contains(&"80s".to_string()));
    // two rows at once
    let two: Vec<f32> = scores.iter().chain(scores.iter().rev()).copied().collect();
    assert_eq!(msd.apply(&two, mtat.len()).len(), 2 * msd.tags().len());
    let jam = Translation::new(&mtat, Vocabulary::Mtat, Vocabulary::Jamendo).unwrap();
    assert!(jam.tags().contains(&"genre---classical".to_string()));
    assert!(Translation::new(&["x".to_string()], Vocabulary::Mtat, Vocabulary::Msd).is_err());
}
