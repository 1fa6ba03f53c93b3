#!/usr/bin/env bash
# Rebuild the bundled demo model, weights/mattn-demo-b0.safetensors, with mattn's own commands.
#
#   bash scripts/train_default_weights.sh [WORK_DIR]
#
# 1. scripts/prepare_demo_data.py writes openly licensed real faces as short clips (carphone
#    frames 0-59, Grace Hopper and Eileen Collins portraits; see scripts/demo_data/README.md);
# 2. `mattn extract-faces` crops them (plain real/ folder layout, 30% of the clips held out as val);
# 3. `mattn train` trains a small MAT (EfficientNet-B0, 64 px; settings in scripts/demo_train.toml)
#    on real faces against self-blended fakes made on the fly, deterministically on the CPU;
# 4. the best epoch by validation video AUC (real val clips vs their self-blends) is copied to
#    weights/; its metrics are in its provenance (`mattn weights info`) and RUN/log.csv.
# The examples in examples/ (carphone frames 60-119) are never used.
set -euo pipefail
cd "$(dirname "$0")/.."
REPOSITORY="$(pwd)"
WORK="${1:-$(mktemp -d)}"
mkdir -p "$WORK"
export OMP_WAIT_POLICY=PASSIVE

python scripts/prepare_demo_data.py "$WORK/videos"
# Relative paths from inside WORK: the training config recorded in the weights is then the same
# wherever WORK is, so a rebuild gives a byte-identical file.
cd "$WORK"
mattn extract-faces videos -o faces --layout folders --frames 10 \
  --crop-size 80 --val-fraction 0.3 --test-fraction 0 --quiet
mattn train --data faces --out run --recipe paper --device cpu \
  --config "$REPOSITORY/scripts/demo_train.toml"
cp run/best.safetensors "$REPOSITORY/weights/mattn-demo-b0.safetensors"
sha256sum "$REPOSITORY/weights/mattn-demo-b0.safetensors"
echo "work files in $WORK; the sha256 must equal DEFAULT_WEIGHTS_SHA256 in deepfake_cli/model/weights.py"
