#!/usr/bin/env bash
# Transfer defaults by measurement (issue #18 item 1): a linear head (`mirkit finetune
# --head linear`, seed 0, the data sets' own splits) on the penultimate layer
# (`--layers embedding`) and on every pooled layer (`--layers all`) of pretrained
# taggers, on Ballroom-8 (../shared/data/ballroom8) and drums5 (built by
# tools/build_drums5.py; pass its folder as $2). Prints one line per run:
#   set model layers dim accuracy macro-F1 seconds
# Usage: tools/transfer_defaults.sh [MIRKIT_BIN] [DRUMS5_DIR] [MODELS...]
set -euo pipefail
BIN=${1:-mirkit}
DRUMS=${2:-/tmp/drums5}
shift 2 || true
MODELS=${*:-musicnn-mtt vgg-mtt won2020-musicnn-mtat won2020-fcn-mtat}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
for set in ballroom8 drums5; do
  case $set in
    ballroom8) data=../shared/data/ballroom8/metadata.csv ;;
    drums5) data=$DRUMS/metadata.csv ;;
  esac
  for m in $MODELS mfcc; do
    for layers in embedding all; do
      [ "$m" = mfcc ] && [ "$layers" = all ] && continue
      run=$OUT/$set-$m-$layers
      "$BIN" -q finetune --data "$data" --from "$m" --head linear --layers "$layers" -o "$run" >/dev/null 2>&1 || { echo "$set $m $layers FAILED"; continue; }
      python3 -c "import json,sys; t=json.load(open(sys.argv[1])); r=t['run']; print(sys.argv[2], sys.argv[3], sys.argv[4], r['dim'], '%.3f' % t['accuracy'], '%.3f' % t['f1_macro'], '%.0f' % r['seconds'])" "$run/test.json" "$set" "$m" "$layers"
    done
  done
done
