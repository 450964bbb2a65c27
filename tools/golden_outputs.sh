#!/usr/bin/env bash
# Runs a fixed set of mirkit commands with the binary BIN and writes every output under
# OUT, so two builds can be compared byte for byte (restructurings must not change any
# output): tag JSON/CSV (several models, segments), feature .npy (log-mel, MFCC,
# spectrogram, a folder), embeddings (a file, an index, a similarity query), augmented
# WAV + record, and seeded train / finetune runs (logs, metrics, weights).
#
# Usage: tools/golden_outputs.sh BIN OUT        then: diff -r OUT_A OUT_B
# Needs ../shared/data/ballroom8 (real recordings) for the training runs.
set -euo pipefail
BIN=$(realpath "$1"); OUT=$(realpath -m "$2")
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CLIPS=$ROOT/data/clips
TR=$CLIPS/sorohanro_-_solo-trumpet-06.hq.ogg
BR=$CLIPS/brahms_hungarian_dance_5.hq.ogg
rm -rf "$OUT"; mkdir -p "$OUT"
cd "$OUT"
export RAYON_NUM_THREADS=2
run() { "$BIN" "$@" > /dev/null 2>> "$OUT/stderr.txt"; }
# tagging
run tag "$BR" --format json --segments -o tag_default.json
run tag "$CLIPS" --format csv --segments -o tag_folder.csv
run tag "$TR" --model won2020-musicnn-mtat --format json --segments -o tag_won_musicnn.json
run tag "$BR" --model won2020-fcn-mtat --format json -o tag_won_fcn.json
run tag "$BR" --format json -o tag_png.json --png taggram.png
run features "$BR" -o logmel_png.npy --db --png logmel.png
run tag "$TR" --model vgg-msd --format json -o tag_vgg.json
"$BIN" tag "$BR" --top-k 7 > tag_table.txt 2>/dev/null
# features
run features "$TR" -o logmel.npy --db
run features "$BR" -o mfcc.npy --mfcc 20 --lifter 22
run features "$TR" -o spec.npy --n-mels 0 --sr native --n-fft 1024 --hop-length 256
run features "$TR" -o won.npy --preset won2020
run features "$CLIPS" -o feats_folder --db
# embeddings
run embed "$TR" -o emb_file.npy
run embed "$TR" -o emb_layers.npy --layers all --model won2020-musicnn-mtat
run embed "$CLIPS" -o index
"$BIN" similar "$TR" --index index -k 2 > similar.txt 2>/dev/null
# augmentation
run augment "$TR" -o aug.wav --pitch-shift -2:2 --time-stretch 0.9:1.1 --gain -3 --noise-snr 20 --seed 7 --record aug.json
# training (seeded) on a small real set: 2 classes x 6 clips of Ballroom-8
DATA=$OUT/data
for c in Waltz Tango; do
  mkdir -p "$DATA/$c"; for f in $(ls "$ROOT/../shared/data/ballroom8/$c" | head -6); do
    ln -s "$ROOT/../shared/data/ballroom8/$c/$f" "$DATA/$c/$f"; done; done
run train --data "$DATA" --out train --epochs 2 --channels 4 --batch-size 4 --eval-chunks 1 --seed 3
run finetune --data "$DATA" --out head --from musicnn-mtt --head linear --seed 3
run finetune --data "$DATA" --out mlp --from musicnn-mtt --head mlp --layers embedding --seed 3
run finetune --data "$DATA" --out knn --from mfcc --head knn --seed 3
run eval --data "$DATA" --model train/best.safetensors --split valid --eval-chunks 1 --seed 3 --json eval_train.json
run eval --data "$DATA" --model knn/head.safetensors --seed 3 --json eval_knn.json
run finetune --data "$DATA" --out ft --from won2020-musicnn-mtat --head network --epochs 1 --batch-size 4 --eval-chunks 1 --seed 3
rm -rf "$DATA"
# timings are not outputs to compare: the seconds column of log.csv, "seconds" fields
# in JSON and in the training state kept in safetensors metadata (replaced by a text
# file with the normalised header and the SHA-256 of the tensor data)
find . -name log.csv -exec sed -i -E 's/,[0-9.]+$/,T/' {} \;
python3 - <<'PY'
import hashlib, json, pathlib, re, struct
T = re.compile(r'("[a-z_]*seconds"\s*:\s*)[0-9.e+-]+')
for p in pathlib.Path(".").rglob("*"):
    if p.suffix == ".json":
        p.write_text(T.sub(r"\1T", p.read_text()))
    elif p.suffix == ".safetensors":
        b = p.read_bytes()
        n = struct.unpack("<Q", b[:8])[0]
        # metadata order follows a hash map: sort it
        head = json.dumps(json.loads(b[8:8 + n]), sort_keys=True)
        head = T.sub(r"\1T", head.replace('\\"', '"'))
        p.with_suffix(".safetensors.txt").write_text(
            head + "\n" + hashlib.sha256(b[8 + n:]).hexdigest() + "\n")
        p.unlink()
PY
echo "outputs under $OUT"
