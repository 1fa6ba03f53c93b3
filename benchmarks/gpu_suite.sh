#!/usr/bin/env bash
# The GPU suite in one command, on a bare GPU machine without network (docs/gpu.md):
#
#   bash benchmarks/gpu_suite.sh [--small] [--skip-train] [gpu_suite.py options ...]
#
# 1. wheels: every *.whl in benchmarks/wheels/ (or in $WHEELS) is installed with
#    `pip install --no-index --no-deps` into $MATTN_SUITE_SITE (default /tmp/mattn-gpu-suite-site),
#    which goes first on PYTHONPATH; the machine's own packages are left as they are.
# 2. mattn itself, with --no-deps, into the same folder (unless this checkout's mattn is
#    importable already, as in a developer's virtualenv).
# 3. benchmarks/gpu_suite.py: clips, end-to-end videos/s, detector faces/s, MTCNN frames/s,
#    the share of time per stage, GPU memory, hardware decoders (nvdec_probe.py).
# 4. benchmarks/gpu_train_smoke.py: AMP training, killed and resumed, evaluated.
#
# Without CUDA, or with --small, everything runs at small settings (a few minutes on two CPU
# cores), so that a machine without a GPU can check that the suite still works.
# $PYTHON chooses the interpreter (default python3). Exit status 1 if any part failed.

set -u -o pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${PYTHON:-python3}"
wheels="${WHEELS:-$here/wheels}"
site="${MATTN_SUITE_SITE:-/tmp/mattn-gpu-suite-site}"
part_timeout_s="${SUITE_PART_TIMEOUT_S:-900}"

small=""
train=1
suite_options=()
for option in "$@"; do
  case "$option" in
    --small) small="--small" ;;
    --skip-train) train=0 ;;
    *) suite_options+=("$option") ;;
  esac
done

say() { printf '%-8s %s\n' "$1" "$2"; }
started=$SECONDS
failed=()

# --- 1. wheels placed beside the suite (there is no network to fetch them) ---------------------
shopt -s nullglob
wheel_files=("$wheels"/*.whl)
shopt -u nullglob
pip_offline=(-m pip install -q --no-index --no-deps --no-compile --upgrade --target "$site")
if ((${#wheel_files[@]})); then
  if "$python" "${pip_offline[@]}" "${wheel_files[@]}"; then
    say wheels "installed ${#wheel_files[@]} wheel(s) from $wheels into $site"
  else
    say wheels "FAIL: pip could not install the wheels in $wheels"
    failed+=(wheels)
  fi
else
  say wheels "none in $wheels (set WHEELS=DIR for another folder)"
fi
export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"

# --- 2. mattn itself ---------------------------------------------------------------------------
installed_at="$(cd / && "$python" -c 'import deepfake_cli, os; print(os.path.dirname(os.path.dirname(os.path.realpath(deepfake_cli.__file__))))' 2>/dev/null)"
if [ "$installed_at" = "$(realpath "$repo")" ]; then
  say mattn "this checkout is importable already ($installed_at)"
elif "$python" "${pip_offline[@]}" --no-build-isolation "$repo" >"$site.pip.log" 2>&1; then
  say mattn "installed from $repo into $site (--no-deps)"
else
  export PYTHONPATH="$repo:$PYTHONPATH"
  say mattn "not installed (pip said: $(tail -n 1 "$site.pip.log")); running it from $repo"
fi

if [ -z "$small" ] && ! "$python" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  small="--small"
  say suite "no CUDA GPU: small settings on the CPU"
fi
export PYTHONUNBUFFERED=1
cd "$repo" || exit 1

# --- 3. the measurements -----------------------------------------------------------------------
timeout "$part_timeout_s" "$python" "$here/gpu_suite.py" $small ${suite_options[@]+"${suite_options[@]}"} \
  || failed+=(measurements)

# --- 4. the training smoke test ----------------------------------------------------------------
if ((train)); then
  timeout "$part_timeout_s" "$python" "$here/gpu_train_smoke.py" $small || failed+=(training)
fi

seconds=$((SECONDS - started))
if ((${#failed[@]})); then
  say suite "FAIL (${failed[*]}) in $seconds s"
  exit 1
fi
say suite "PASS in $seconds s (target on a GPU machine: under 480 s)"
