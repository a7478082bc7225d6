"""sora_core's DiT against ComfyUI's own Wan model code (comfy.ldm.wan) on the same weights."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).with_name("comfy_wan_parity.py")


def test_dit_matches_comfyui_wan_model(comfy_server):
    proc = subprocess.run(
        [str(comfy_server.python), str(SCRIPT)], cwd=comfy_server.comfy_dir, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(results) == 3
    for r in results:
        assert r["rel_err"] < 1e-5, r
