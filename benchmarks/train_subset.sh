#!/usr/bin/env bash
# Full training run on the real bundles, then float and int8 accuracy on the dev test bundle.
#
#   benchmarks/train_subset.sh [OUTPUT_DIR]        (SEED=N to change the seed)
#
# Trains tflite_micro_speech on speech_commands_v0.02_subset (early stopping on its
# validation split), prints the wall time of `microspeech train` (process start to the
# written .tflite), then evaluates the float and int8 models on
# speech_commands_test_set_v0.02_dev mapped to yes/no/_unknown_/_silence_.
set -euo pipefail
usage="usage: benchmarks/train_subset.sh [OUTPUT_DIR]   (SEED=N to change the seed)"
case "${1:-}" in
    -h|--help) echo "$usage"; echo; sed -n '2s/^# //p;5,9s/^# \{0,1\}//p' "$0"; exit 0 ;;
    -*) echo "$usage" >&2; echo "error: unknown option $1" >&2; exit 2 ;;
esac
[ $# -le 1 ] || { echo "$usage" >&2; exit 2; }
OUTPUT=$(realpath -m "${1:-/tmp/microspeech-train-subset}")
# The folder is replaced: only one that is absent, empty or an earlier run of this script's.
if [ -e "$OUTPUT" ] && [ ! -d "$OUTPUT" ]; then
    echo "error: OUTPUT_DIR $OUTPUT is a file, not a folder" >&2
    exit 2
fi
if [ -n "$(ls -A "$OUTPUT" 2>/dev/null)" ] && [ ! -f "$OUTPUT/train.log" ]; then
    echo "error: OUTPUT_DIR $OUTPUT holds no earlier training run (no train.log): not replacing it" >&2
    exit 2
fi
cd "$(dirname "$0")/.."
SEED=${SEED:-0}
# Checked before the earlier run is deleted: a bad SEED failed in `microspeech train`, after that.
if ! [[ "$SEED" =~ ^[0-9]+$ ]] || [ "${#SEED}" -gt 10 ] || [ "$SEED" -gt 4294967295 ]; then
    echo "error: SEED=$SEED: expected a whole number from 0 to 4294967295" >&2
    exit 2
fi
SHARED=${MICROSPEECH_SHARED_DATA:-$(cd .. && pwd)/shared/data}
[ -d "$SHARED" ] || SHARED=/work/shared/data
CACHE=${MICROSPEECH_TEST_CACHE:-$HOME/.cache/microspeech/data}
for name in speech_commands_v0.02_subset speech_commands_test_set_v0.02_dev; do
    [ -f "$SHARED/$name.tar.xz" ] || { echo "error: $name.tar.xz not found in $SHARED" \
        "(set MICROSPEECH_SHARED_DATA)" >&2; exit 2; }
done

.venv/bin/python - "$SHARED" "$CACHE" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from bundles import machine_description
from microspeech.data.archive import extract_archive
print(machine_description(), flush=True)
shared, cache = Path(sys.argv[1]), Path(sys.argv[2])
for name in ("speech_commands_v0.02_subset", "speech_commands_test_set_v0.02_dev"):
    extract_archive(shared / f"{name}.tar.xz", cache / name)
PY

rm -rf "$OUTPUT"
start=$(date +%s.%N)
.venv/bin/microspeech train tflite_micro_speech --dataset "$CACHE/speech_commands_v0.02_subset" \
    --seed "$SEED" --output "$OUTPUT" --quiet
end=$(date +%s.%N)
.venv/bin/python - "$OUTPUT" "$start" "$end" <<'PY'
import json, sys
manifest = json.load(open(f"{sys.argv[1]}/manifest.json"))
wall = float(sys.argv[3]) - float(sys.argv[2])
# No ratio to MLTK here: a time measured elsewhere is no reference (benchmarks/mltk_training.py runs both).
print(f"train wall time: {wall:.1f} s = {wall / 60:.2f} min; epochs {manifest['epochs_run']}, "
      f"best epoch {manifest['best_epoch']}, best val_accuracy {manifest['best_val_accuracy']:.4f}")
PY
# Float and int8 side by side, with plots, into $OUTPUT/eval; then next to MLTK's shipped model.
.venv/bin/microspeech evaluate "$OUTPUT" --dataset "$CACHE/speech_commands_test_set_v0.02_dev"
.venv/bin/python benchmarks/evaluate_reference.py --model "$OUTPUT" \
    --dataset "$CACHE/speech_commands_test_set_v0.02_dev" --output "$OUTPUT/reference-comparison"
