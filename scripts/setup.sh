#!/usr/bin/env bash
# Idempotent set-up of the paploss environment on a fresh machine.
#
# Creates a virtual environment (default: .venv in the repository root, override with
# PAPLOSS_VENV), installs torch 2.14.1 + torchvision 0.29.1 (pinned here), mmcv built from its PyPI
# sdist with CPU ops (the wheel is cached under ${PAPLOSS_CACHE:-~/.cache/paploss}/wheels so it is
# built once per machine) and the project itself in editable mode with all extras (mmengine, mmdet
# and the rest). The versions of mmcv, mmengine and mmdet are pinned in pyproject.toml only.
# A stamp file records a finished set-up; a second run with unchanged inputs returns in seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PAPLOSS_VENV:-$ROOT/.venv}"
CACHE="${PAPLOSS_CACHE:-$HOME/.cache/paploss}"
PYTHON="${PAPLOSS_PYTHON:-python3.11}"
WHEELS="$CACHE/wheels"

log() { printf '[setup] %s\n' "$*" >&2; }

# mmcv's pin (the mmdet extra in pyproject.toml): its wheel is built here, before the extras.
MMCV_VERSION="$(sed -n 's/^[[:space:]]*"mmcv==\([^"]*\)".*/\1/p' "$ROOT/pyproject.toml" | head -n 1)"
if [[ -z "$MMCV_VERSION" ]]; then
    log "error: pyproject.toml pins no mmcv==VERSION"
    exit 2
fi

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

if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

log "installing torch, torchvision and build requirements"
"${PIP[@]}" install -q --upgrade pip
"${PIP[@]}" install -q "torch==2.14.1" "torchvision==0.29.1" "setuptools<81" wheel ninja numpy

mkdir -p "$WHEELS"
torch_tag="$("$VENV/bin/python" -c 'import torch; print(torch.__version__.split("+")[0])')"
mmcv_wheel="$(ls "$WHEELS"/mmcv-"$MMCV_VERSION"+torch"$torch_tag"-*.whl 2>/dev/null | head -n 1 || true)"
if [[ -z "$mmcv_wheel" ]]; then
    log "building mmcv $MMCV_VERSION with CPU ops from its sdist (about 8 minutes on 2 cores)"
    build="$(mktemp -d)"
    "${PIP[@]}" download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$build"
    tar -xzf "$build"/mmcv-"$MMCV_VERSION".tar.gz -C "$build"
    src="$build/mmcv-$MMCV_VERSION"
    # torch >= 2.10 headers need C++20; mmcv 2.1.0's setup.py hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    # CFLAGS replaces Python's default flags; without -g0 the build takes ~19 min instead of ~8.
    (cd "$src" && MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS="$(nproc)" \
        CFLAGS="-DNDEBUG -g0 -fwrapv -O3 -Wall" \
        "${PIP[@]}" wheel -q --no-deps --no-build-isolation -w "$build/dist" .)
    built="$(ls "$build"/dist/mmcv-*.whl)"
    # Tag the cached wheel with the torch it was compiled against (its ops link to that ABI).
    mmcv_wheel="$WHEELS/$(basename "$built" | sed "s/^mmcv-$MMCV_VERSION-/mmcv-$MMCV_VERSION+torch$torch_tag-/")"
    cp "$built" "$mmcv_wheel.tmp" && mv "$mmcv_wheel.tmp" "$mmcv_wheel"
    rm -rf "$build"
fi
log "installing mmcv from $mmcv_wheel"
# pip refuses a file name whose version differs from the metadata; install through a correctly named copy.
tmpd="$(mktemp -d)"
cp "$mmcv_wheel" "$tmpd/$(basename "$mmcv_wheel" | sed "s/+torch$torch_tag//")"
"${PIP[@]}" install -q --no-deps "$tmpd"/*.whl
rm -rf "$tmpd"

log "installing mmengine, mmdet and paploss[mmdet,dashboard,dev] (editable)"
"${PIP[@]}" install -q -e "$ROOT[mmdet,dashboard,dev]"

"$VENV/bin/python" -c "import paploss, mmdet, mmcv.ops" >/dev/null
rm -f "$VENV"/.paploss-setup-*
touch "$STAMP"
log "environment ready: $VENV"
