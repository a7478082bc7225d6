"""SoraSaveVideo and SoraVerifyVideo inside a real ComfyUI server, driven over HTTP like a user's script."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import pytest

from sora_core import provenance, videoio
from sora_core.verify import verify_file

ROOT = Path(__file__).resolve().parents[2]
SIGNED = ROOT / "workflows" / "api" / "sora_text_to_video_signed.json"


def node_of(graph: dict, class_type: str) -> tuple[str, dict]:
    return next((k, v) for k, v in graph.items() if v["class_type"] == class_type)


def signed_graph(**save_inputs) -> dict:
    graph = json.loads(SIGNED.read_text())
    node_of(graph, "SoraSampler")[1]["inputs"]["steps"] = 2
    node_of(graph, "SoraSaveVideo")[1]["inputs"].update(save_inputs)
    return graph


def saved_files(entry: dict, server) -> list[Path]:
    items = [i for out in entry["outputs"].values() for i in out.get("images", [])]
    return [server.output_dir / i.get("subfolder", "") / i["filename"] for i in items]


def test_nodes_are_listed_with_tooltips(comfy_server):
    for node_id in ("SoraSaveVideo", "SoraVerifyVideo"):
        info = comfy_server.client.object_info(node_id)
        assert info["category"] == "Sora/provenance" and info["description"]
        inputs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        for name, spec in inputs.items():
            assert spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    save = comfy_server.client.object_info("SoraSaveVideo")
    assert save["input"]["required"]["video"][0] == "IMAGE,VIDEO"
    assert save["output_node"] is True


def test_signed_workflow_writes_a_marked_signed_video_with_workflow_metadata(comfy_server):
    graph = signed_graph()
    entry = comfy_server.client.run(graph, timeout=300)
    assert entry["status"]["status_str"] == "success"
    (path,) = saved_files(entry, comfy_server)
    assert path.suffix == ".mp4" and path.parent.name == "sora"
    assert videoio.probe_video(path).frames == 17
    report = verify_file(path)
    assert report.watermark.found
    assert report.c2pa.state == "valid" and report.c2pa.development_certificate
    assert report.c2pa.digital_source_type == provenance.DIGITAL_SOURCE_TYPE
    # The manifest binds the hash of exactly the graph that was run (ComfyUI's "prompt").
    assert report.c2pa.generation["prompt_sha256"] == provenance.sha256_json(graph)
    assert report.payload_matches_manifest in (True, None)
    assert json.loads(videoio.read_metadata(path)["prompt"]) == graph  # ComfyUI's own metadata survives signing


def test_switches_label_and_formats(comfy_server):
    entry = comfy_server.client.run(signed_graph(watermark=False, c2pa=False, workflow_metadata=False,
                                                 filename_prefix="sora/plain"), timeout=300)
    (plain,) = saved_files(entry, comfy_server)
    report = verify_file(plain)
    assert not report.watermark.found and report.c2pa.state == "absent"
    assert "prompt" not in videoio.read_metadata(plain)

    entry = comfy_server.client.run(signed_graph(format="webp", label="AI-generated", filename_prefix="sora/anim"),
                                    timeout=300)
    (webp,) = saved_files(entry, comfy_server)
    assert webp.suffix == ".webp" and verify_file(webp).c2pa.state == "valid"


def test_verify_node_reports_on_an_uploaded_file_and_on_a_linked_path(comfy_server):
    entry = comfy_server.client.run(signed_graph(filename_prefix="sora/to_check"), timeout=300)
    (path,) = saved_files(entry, comfy_server)
    shutil.copy(path, comfy_server.input_dir / "to_check.mp4")
    graph = {"1": {"class_type": "SoraVerifyVideo", "inputs": {"file": "to_check.mp4"}}}
    entry = comfy_server.client.run(graph, timeout=120)
    (text,) = entry["outputs"]["1"]["text"]
    assert "watermark: FOUND" in text and "C2PA:      valid" in text

    # Chained: the save node's filename output into the verify node's path input, in one graph.
    chained = signed_graph(filename_prefix="sora/chained")
    save_id, _ = node_of(chained, "SoraSaveVideo")
    chained["99"] = {"class_type": "SoraVerifyVideo", "inputs": {"file": "to_check.mp4", "path": [save_id, 0]}}
    entry = comfy_server.client.run(chained, timeout=300)
    (text,) = entry["outputs"]["99"]["text"]
    assert "sora/chained" in text and "watermark: FOUND" in text


def test_verify_node_refuses_a_missing_file(comfy_server):
    from tests.comfy.client import PromptRejected

    graph = {"1": {"class_type": "SoraVerifyVideo", "inputs": {"file": "nope.mp4"}}}
    with pytest.raises(PromptRejected) as info:
        comfy_server.client.queue_prompt(copy.deepcopy(graph))
    assert "nope.mp4" in json.dumps(info.value.node_errors)
