#!/usr/bin/env bash
# Idempotent set-up of the paploss environment on a fresh machine.
#
# Creates a virtual environment (default: .venv in the repository root, override with
# PAPLOSS_VENV), installs torch 2.14.1 + torchvision 0.29.1 (pinned here), mmcv built from its PyPI
# sdist with CPU ops (the wheel is cached under ${PAPLOSS_CACHE:-~/.cache/paploss}/wheels so it is
# built once per machine), mmengine and mmdet, and the project itself in editable mode with all
# extras. The versions of mmcv, mmengine and mmdet are pinned in pyproject.toml only.
#
# The terminal gets one status line per step (venv, torch, mmcv, mmdet, paploss); pip's and the
# compiler's own output go to a log file, ${PAPLOSS_CACHE:-~/.cache/paploss}/logs/setup-*.log,
# whose last lines are printed only when a step fails.
# A stamp file records a finished set-up; a second run with unchanged inputs returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PAPLOSS_VENV:-$ROOT/.venv}"
CACHE="${PAPLOSS_CACHE:-$HOME/.cache/paploss}"
PYTHON="${PAPLOSS_PYTHON:-python3.11}"
WHEELS="$CACHE/wheels"
STEPS=5

log() { printf '[setup] %s\n' "$*" >&2; }

# The pin NAME==VERSION of a dependency in pyproject.toml (the mmdet extra).
pin_of() {
    sed -n "s/^[[:space:]]*\"$1==\\([^\"]*\\)\".*/\\1/p" "$ROOT/pyproject.toml" | head -n 1
}
MMCV_VERSION="$(pin_of mmcv)"
MMENGINE_VERSION="$(pin_of mmengine)"
MMDET_VERSION="$(pin_of mmdet)"
for pin in "mmcv:$MMCV_VERSION" "mmengine:$MMENGINE_VERSION" "mmdet:$MMDET_VERSION"; do
    if [[ -z "${pin#*:}" ]]; then
        log "error: pyproject.toml pins no ${pin%%:*}==VERSION"
        exit 2
    fi
done

# The stamp depends on everything that decides what gets installed.
stamp_key="$(cat "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -c1-16)"
STAMP="$VENV/.paploss-setup-$stamp_key"
if [[ -f "$STAMP" ]]; then
    log "environment $VENV is up to date"
    exit 0
fi

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    log "error: $PYTHON not found; set PAPLOSS_PYTHON to a Python >= 3.10 interpreter"
    exit 2
fi

mkdir -p "$CACHE/logs" "$WHEELS"
LOG="$CACHE/logs/setup-$(date +%Y%m%d-%H%M%S)-$$.log"
: >"$LOG"

# step N TEXT: the status line of step N, finished by done/fail on the same line.
step_start=0
step() {
    step_start=$SECONDS
    printf '[setup] %s/%s %s ... ' "$1" "$STEPS" "$2" >&2
}
done_step() { printf 'done (%s s)\n' "$((SECONDS - step_start))" >&2; }
# quiet CMD...: run CMD with its output in the log; on failure print the log's tail and exit.
quiet() {
    printf '\n$ %s\n' "$*" >>"$LOG"
    local rc=0
    "$@" >>"$LOG" 2>&1 || rc=$?
    if [[ $rc -ne 0 ]]; then
        printf 'FAILED (exit %s)\n' "$rc" >&2
        log "last lines of $LOG:"
        tail -n 40 "$LOG" | sed 's/^/    /' >&2
        log "error: set-up failed; the whole output is in $LOG"
        exit 1
    fi
}

step 1 "virtual environment $VENV"
if [[ ! -x "$VENV/bin/python" ]]; then
    quiet "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
quiet "${PIP[@]}" install --upgrade pip
done_step

step 2 "torch 2.14.1, torchvision 0.29.1 and build tools"
quiet "${PIP[@]}" install "torch==2.14.1" "torchvision==0.29.1" "setuptools<81" wheel ninja numpy
done_step

torch_tag="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
mmcv_wheel="$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"+torch"$torch_tag"-*.whl 2>/dev/null | head -n 1 || true)"
if [[ -z "$mmcv_wheel" ]]; then
    step 3 "mmcv $MMCV_VERSION: building its CPU ops from the sdist (about 8 minutes on 2 cores, once per machine)"
    build="$(mktemp -d)"
    quiet "${PIP[@]}" download --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$build"
    quiet tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers need C++20; mmcv 2.1.0's setup.py hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    # CFLAGS replaces Python's default flags; without -g0 the build takes ~19 min instead of ~8.
    (
        cd "$src"
        export MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" CFLAGS="-DNDEBUG -g0 -fwrapv -O3 -Wall"
        quiet "${PIP[@]}" wheel --no-deps --no-build-isolation -w "$build/dist" .
    )
    built="$(ls "$build"/dist/mmcv-*.whl)"
    # Tag the cached wheel with the torch it was compiled against (its ops link to that ABI).
    mmcv_wheel="$WHEELS/$(basename "$built" | sed "s/^mmcv-$MMCV_VERSION-/mmcv-$MMCV_VERSION+torch$torch_tag-/")"
    cp "$built" "$mmcv_wheel.tmp" && mv "$mmcv_wheel.tmp" "$mmcv_wheel"
    rm -rf "$build"
else
    step 3 "mmcv $MMCV_VERSION from the cached wheel $(basename "$mmcv_wheel")"
fi
# pip refuses a file name whose version differs from the metadata; install through a correctly named copy.
tmpd="$(mktemp -d)"
cp "$mmcv_wheel" "$tmpd/$(basename "$mmcv_wheel" | sed "s/+torch$torch_tag//")"
quiet "${PIP[@]}" install --no-deps "$tmpd"/*.whl
rm -rf "$tmpd"
done_step

step 4 "mmengine $MMENGINE_VERSION and mmdet $MMDET_VERSION"
quiet "${PIP[@]}" install "mmengine==$MMENGINE_VERSION" "mmdet==$MMDET_VERSION"
done_step

step 5 "paploss[mmdet,dashboard,dev] (editable) and the other dependencies"
quiet "${PIP[@]}" install -e "$ROOT[mmdet,dashboard,dev]"
quiet "$VENV/bin/python" -c "import paploss, mmdet, mmcv.ops"
done_step

rm -f "$VENV"/.paploss-setup-*
touch "$STAMP"
log "environment ready: $VENV (pip and build output: $LOG)"
