#!/usr/bin/env python3
"""Counts the public items of each crate whose doc comment holds an example (a ``` block),
and checks that every entry point a user starts from (ENTRY below) has one.

Usage: python3 tools/doc_examples.py [--list]   (exit 1 if an entry point lacks an example)

The scan is textual (a `pub fn/struct/enum/trait/const/type` line and the `///` block
above it, attributes skipped), enough for this workspace's formatting (rustfmt).
"""
import pathlib, re, sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
ITEM = re.compile(r"^\s*pub (?:(?:const |async |unsafe )*fn|struct|enum|trait|type|const|static) (\w+)")

# (crate folder, item name or "file.rs:name"): the types and functions a user starts from
ENTRY = [
    (".", "Tagger"), (".", "tag_file"), (".", "embed_file"), (".", "tag_samples"),
    (".", "thumbnail_file"), (".", "EmbeddingIndex"), (".", "features_to_npy"),
    (".", "rosa.rs:load"), (".", "rosa.rs:stft"), (".", "rosa.rs:melspectrogram"),
    (".", "rosa.rs:mfcc"), (".", "rosa.rs:power_to_db"), (".", "rosa.rs:time_stretch"),
    (".", "rosa.rs:pitch_shift"), (".", "rosa.rs:write_wav"),
    ("crates/mirkit-core", "AudioBuffer"), ("crates/mirkit-core", "Rng"),
    ("crates/mirkit-core", "TimeFrequency"), ("crates/mirkit-core", "write_f32"),
    ("crates/mirkit-io", "load.rs:load"), ("crates/mirkit-io", "info"),
    ("crates/mirkit-io", "resample"), ("crates/mirkit-io", "write_wav"),
    ("crates/mirkit-io", "AudioStream"),
    ("crates/mirkit-dsp", "FeatureExtractor"), ("crates/mirkit-dsp", "FeatureConfig"),
    ("crates/mirkit-dsp", "stft.rs:stft"), ("crates/mirkit-dsp", "mel_filterbank"),
    ("crates/mirkit-dsp", "db.rs:power_to_db"),
    ("crates/mirkit-augment", "time_stretch"), ("crates/mirkit-augment", "pitch_shift"),
    ("crates/mirkit-augment", "Augment"),
    ("crates/mirkit-nn", "bce_with_logits"), ("crates/mirkit-nn", "AdamW"),
    ("crates/mirkit-models", "load_pretrained"), ("crates/mirkit-models", "Pretrained"),
    ("crates/mirkit-models", "seeded"), ("crates/mirkit-models", "Vocabulary"),
    ("crates/mirkit-train", "Dataset"), ("crates/mirkit-train", "AudioSet"),
    ("crates/mirkit-train", "trainer.rs:train"), ("crates/mirkit-train", "classification_metrics"),
    ("crates/mirkit-train", "write_toy_set"),
    ("crates/mirkit-transfer", "extract"), ("crates/mirkit-transfer", "Head"),
    ("crates/mirkit-transfer", "FineTune"),
]


def scan(crate):
    """{item name: has example} over the crate's src (names may repeat: any with one wins)."""
    items = {}
    for f in sorted((ROOT / crate / "src").rglob("*.rs")):
        if crate == "." and "cli" in f.parts:
            continue
        lines = f.read_text().splitlines()
        for i, line in enumerate(lines):
            m = ITEM.match(line)
            if not m:
                continue
            j, doc = i - 1, []
            while j >= 0 and (lines[j].strip().startswith("///") or lines[j].strip().startswith("#[")):
                doc.append(lines[j])
                j -= 1
            has = any("```" in d for d in doc)
            for key in (m.group(1), f"{f.name}:{m.group(1)}"):
                items[key] = items.get(key, False) or has
    return items


def main():
    crates = ["."] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "crates").iterdir()
                           if (p / "src").is_dir() and "weights" not in p.name)
    scans = {c: scan(c) for c in crates}
    print(f"{'crate':28} {'public items':>12} {'with example':>12}")
    for c in crates:
        plain = {k: v for k, v in scans[c].items() if ":" not in k}
        n, k = len(plain), sum(plain.values())
        print(f"{(c if c != '.' else 'mirkit (facade)'):28} {n:12} {k:12}  ({100 * k / max(n, 1):.0f} %)")
    missing = [(c, name) for c, name in ENTRY if not scans[c].get(name)]
    unknown = [(c, name) for c, name in ENTRY if name not in scans[c]]
    print(f"entry points with an example: {len(ENTRY) - len(missing)} of {len(ENTRY)}")
    for c, name in missing:
        print(f"  missing: {c} {name}{' (not found)' if (c, name) in unknown else ''}")
    if "--list" in sys.argv:
        for c in crates:
            print(c, sorted(k for k, v in scans[c].items() if v and ":" not in k))
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
