"""ComfyUI entry point: ComfyUI imports this package from custom_nodes/ and calls comfy_entrypoint().

pytest also imports this file (the repo root is a package, parent of tests/), where ComfyUI is absent; only that
case is tolerated, every other import error propagates so ComfyUI logs it as IMPORT FAILED.
"""

import os
import sys

# A pack installed by `git clone` into custom_nodes is not pip-installed: make `import sora_core` work.
_PACK_DIR = os.path.dirname(os.path.abspath(__file__))
if _PACK_DIR not in sys.path:
    sys.path.append(_PACK_DIR)

if __package__:  # pytest may import this file as a plain module (e.g. a checkout folder named "my-clone")
    try:
        from .nodes import comfy_entrypoint
    except ModuleNotFoundError as exc:
        if not (exc.name or "").startswith("comfy"):  # comfy, comfy_api: not running inside ComfyUI
            raise
    else:
        __all__ = ["comfy_entrypoint"]
