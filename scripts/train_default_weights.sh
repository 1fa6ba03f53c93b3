#!/usr/bin/env bash
# Build the bundled default model, deepfake_cli/bundled/mattn-sbi-b0-160.safetensors, with
# mattn's own commands from files in this repository (model card: weights/README.md).
#
#   bash scripts/train_default_weights.sh [WORK_DIR]
#
# 1. Real faces, no fakes: the open-faces photographs (scripts/default_data/open-faces: 244
#    frontal photos of 142 people, CC BY 4.0, citations in its README) as a plain real/ folder
#    (links, no copies), and frames 0-58 of the carphone clip in three qualities as lossless
#    stills (scripts/prepare_default_video.py; sources in scripts/default_data/carphone);
# 2. `mattn extract-faces` finds and crops one face per photo or frame (stills are one-frame
#    videos) and holds out 30% of the identity groups as validation (`--group-by name-prefix`:
#    a person's photos, or the three qualities of one carphone segment, stay on one side);
# 3. `mattn train` trains MAT (EfficientNet-B0, 160 px; settings in scripts/default_train.toml)
#    from scratch on the real faces against self-blended fakes made on the fly, with video-side
#    degradations, deterministically on the CPU (about an hour on 2 cores);
# 4. the stage-2 epoch with the best validation video AUC is copied into the package; its
#    metrics and the decision threshold calibrated on validation are in its provenance (`mattn
#    weights info`), the run's log in WORK/run/log.csv. If its sha256 changed, set
#    DEFAULT_WEIGHTS_SHA256 in deepfake_cli/model/weights.py.
# Nothing in deepfake_cli/bundled/examples/ (frames 60-119 of the carphone clip) or tests/ is used.
set -euo pipefail
cd "$(dirname "$0")/.."
REPOSITORY="$(pwd)"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK/photos/real"
export OMP_WAIT_POLICY=PASSIVE

for photo in "$REPOSITORY"/scripts/default_data/open-faces/*/*.jpg; do
  ln -sf "$photo" "$WORK/photos/real/$(basename "$photo")"
done
python "$REPOSITORY/scripts/prepare_default_video.py" "$WORK/photos"
# Relative paths from inside WORK: the training config recorded in the weights is then the same
# wherever WORK is, so a rebuild gives a byte-identical file.
cd "$WORK"
mattn extract-faces photos -o faces --layout folders --group-by name-prefix \
  --crop-size 184 --val-fraction 0.3 --test-fraction 0 --quiet
mattn train --data faces --out run --recipe paper --device cpu \
  --config "$REPOSITORY/scripts/default_train.toml"
cp run/best.safetensors "$REPOSITORY/deepfake_cli/bundled/mattn-sbi-b0-160.safetensors"
sha256sum "$REPOSITORY/deepfake_cli/bundled/mattn-sbi-b0-160.safetensors"
echo "work files in $WORK; the bundled file's sha256 is DEFAULT_WEIGHTS_SHA256 in deepfake_cli/model/weights.py"
