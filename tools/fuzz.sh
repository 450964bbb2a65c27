#!/usr/bin/env bash
# Coverage-guided fuzzing of mirkit's input parsers (issue #19 item 1) with cargo-fuzz
# (libFuzzer) on the nightly toolchain:  cargo install cargo-fuzz
#
#   tools/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     (default 600 s; all targets)
#
# Targets (fuzz/fuzz_targets/): decode (any bytes as an audio file through info + load),
# features (the extractor with arbitrary parameters and samples), npy (any bytes as .npy),
# records (any text as an augmentation record, replayed), weights (safetensors through
# every model/head/checkpoint loader), manifests (CSV/MTAT/Jamendo/GTZAN data-set lists),
# index (an embedding index folder, and tag JSON as `tag --resume` reads it). Seed corpora
# come from the repository: the format fixtures, the .npy fixtures, a recorded chain, and
# for the last three files made by the library itself (`fuzz/src/seeds.rs`: the taggers'
# weight headers, a trained model, heads, manifests, an index, tag records).
# Each run has a 2 GB RSS limit and a 10 s per-input timeout; a crash, leak of the limit
# or timeout leaves its input in fuzz/artifacts/TARGET/ (minimise with
# `cargo +nightly fuzz tmin TARGET FILE`, then keep it as a regression test).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(decode features npy records weights manifests index)
mkdir -p fuzz/corpus/{decode,features,npy,records,weights,manifests,index}
cp -n tests/fixtures/formats/* fuzz/corpus/decode/ 2>/dev/null || true
cp -n tests/fixtures/*.npy fuzz/corpus/npy/ 2>/dev/null || true
if [ ! -e fuzz/corpus/records/seed.json ]; then
  cat > fuzz/corpus/records/seed.json <<'JSON'
[{"params":{"bins_per_octave":12.0,"n_steps":1.5,"phase_lock":0.0},"transform":"pitch_shift"},{"params":{"db":-3.0},"transform":"gain"},{"params":{"pink":1.0,"seed":7.0,"snr_db":20.0},"transform":"noise"}]
JSON
fi
if [ -z "$(ls -A fuzz/corpus/weights)" ]; then
  (cd fuzz && cargo +nightly fuzz build seeds)
  fuzz/target/x86_64-unknown-linux-gnu/release/seeds
fi
export MIRKIT_FUZZ_TMP="${MIRKIT_FUZZ_TMP:-/dev/shm}"
for t in "${targets[@]}"; do
  echo "== $t: ${secs} s"
  cargo +nightly fuzz run "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 2>&1 \
    | grep -E "^(stat::|Done|==[0-9]+==|SUMMARY|#[0-9]+[[:space:]]+DONE)|panicked|ERROR|crash-|timeout-|oom-" || true
done
