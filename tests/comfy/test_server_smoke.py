"""The test server itself: it starts with the pack installed, answers the API, runs a graph, rejects a bad one."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pytest

from tests.comfy.client import PromptRejected

if TYPE_CHECKING:
    from tests.comfy.conftest import ComfyServer

pytestmark = pytest.mark.comfy


def _pack_import_report(server: ComfyServer) -> str:
    """What the log says about the pack: the traceback of a failed import and its import-times line."""
    lines = server.log_text().splitlines()
    keep: list[str] = []
    for i, line in enumerate(lines):
        if "Cannot import" in line and server.pack_name in line:
            start = max((j for j in range(i) if lines[j].startswith("Traceback")), default=max(0, i - 40))
            keep.extend(lines[start : i + 1])
    keep.extend(server.pack_import_lines())
    return "\n".join(keep) or server.log_tail()


def test_pack_imported(comfy_server: ComfyServer) -> None:
    import_lines = comfy_server.pack_import_lines()
    assert import_lines, f"ComfyUI's import report does not list the pack; log tail:\n{comfy_server.log_tail()}"
    failed = [line for line in import_lines if "IMPORT FAILED" in line]
    assert not failed, f"the pack failed to import:\n{_pack_import_report(comfy_server)}"


def test_pack_registers_nodes(comfy_server: ComfyServer) -> None:
    info = comfy_server.client.object_info()
    module = f"custom_nodes.{comfy_server.pack_name}"
    ours = sorted(name for name, node in info.items() if node.get("python_module") == module)
    assert ours, f"no node of the pack in /object_info; the log about it:\n{_pack_import_report(comfy_server)}"


def test_object_info_and_system_stats(comfy_server: ComfyServer) -> None:
    client = comfy_server.client
    stats = client.system_stats()
    assert stats["system"]["comfyui_version"] == "0.3.75"
    assert stats["devices"][0]["type"] == "cpu"
    save = client.object_info("SaveImage")
    assert save["output_node"] is True
    assert "images" in save["input"]["required"]
    with pytest.raises(KeyError):
        client.object_info("NoSuchNode")
    client.interrupt()  # nothing running: a no-op that must still answer 200
    assert client.queue() == {"queue_running": [], "queue_pending": []}


def test_native_workflow_runs(comfy_server: ComfyServer) -> None:
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 24, "batch_size": 1, "color": 0xFF0000}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "smoke/empty"}},
        "3": {"class_type": "EmptyHunyuanLatentVideo", "inputs": {"width": 64, "height": 64, "length": 9,
                                                                  "batch_size": 1}},
        "4": {"class_type": "SaveLatent", "inputs": {"samples": ["3", 0], "filename_prefix": "smoke/latent"}},
    }  # fmt: skip
    entry = comfy_server.client.run(graph, timeout=60)

    types = [m["type"] for m in entry["ws_messages"]]
    assert types[0] == "execution_start" and types[-2:] == ["execution_success", "executing"], types
    assert {m["data"]["node"] for m in entry["ws_messages"] if m["type"] == "executed"} == {"2", "4"}

    (image,) = entry["outputs"]["2"]["images"]
    assert image["subfolder"] == "smoke" and image["type"] == "output"
    png = comfy_server.client.view(image["filename"], image["subfolder"], image["type"])
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert (comfy_server.output_dir / "smoke" / image["filename"]).read_bytes() == png
    (latent,) = entry["outputs"]["4"]["latents"]
    assert re.fullmatch(r"latent_\d+_\.latent", latent["filename"]), latent
    assert (comfy_server.output_dir / "smoke" / latent["filename"]).stat().st_size > 0


def test_bad_prompt_is_rejected_with_node_errors(comfy_server: ComfyServer) -> None:
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": "abc", "height": 24, "batch_size": 1, "color": 0}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "smoke/bad"}},
    }
    with pytest.raises(PromptRejected) as rejected:
        comfy_server.client.queue_prompt(graph)
    err = rejected.value
    assert err.status == 400
    assert err.error["type"] == "prompt_outputs_failed_validation"
    (node_error,) = err.node_errors["1"]["errors"]
    assert node_error["type"] == "invalid_input_type"
    assert node_error["extra_info"]["input_name"] == "width"
    assert err.node_errors["1"]["class_type"] == "EmptyImage"

    with pytest.raises(PromptRejected) as unknown:
        comfy_server.client.queue_prompt({"1": {"class_type": "NoSuchNode", "inputs": {}}})
    assert unknown.value.error["type"] == "invalid_prompt"
    assert unknown.value.node_errors == {}
