"""Every Sora operation's API workflow, queued on a real ComfyUI server with the bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
API = ROOT / "workflows" / "api"

# workflow -> (operation node, frames of the saved video, sampling passes of the operation node)
EXPECTED = {
    "sora_image_to_video": ("SoraImageToVideo", 17, 1),
    "sora_extend_video": ("SoraExtendVideo", 17 + 2 * 12 + 8, 2),  # forward twice, then backward once
    "sora_loop": ("SoraLoopVideo", 16, 1),  # one period
    "sora_blend_videos": ("SoraBlendVideos", 17 + 11 + 17, 1),
    "sora_storyboard": ("SoraStoryboard", 33, 1),
    "sora_remix_video": ("SoraRemixVideo", 17, 1),
    "sora_recut_video": ("SoraRecutVideo", 17, 1),
}
OPERATION_WORKFLOWS = sorted(p for p in API.glob("*.json") if p.stem in EXPECTED)


def test_every_operation_has_a_workflow() -> None:
    assert sorted(p.stem for p in OPERATION_WORKFLOWS) == sorted(EXPECTED)


@pytest.fixture(scope="module")
def server(comfy_server):
    from sora_core.world.render import render
    from sora_core.world.scene import Background, ObjectSpec, Scene

    # The image-to-video workflow's start image: a frame of the synthetic world, put where Load Image looks.
    red_circle = ObjectSpec(shape="circle", colour="red", size="medium", motion="still", speed="slow", x=0.3, y=0.5)
    scene = Scene(objects=(red_circle,), background=Background(), width=64, height=64, frames=1)
    image = render(scene)[0].numpy()
    Image.fromarray(image).save(comfy_server.input_dir / "sora_example_start.png")
    return comfy_server


def saved_frames(entry: dict, server) -> list[np.ndarray]:
    item = next(i for out in entry["outputs"].values() for i in out.get("images", []) + out.get("videos", []))
    path = server.output_dir / item.get("subfolder", "") / item["filename"]
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.mark.parametrize("path", OPERATION_WORKFLOWS, ids=lambda p: p.stem)
def test_operation_workflow_runs_and_saves_its_clip(server, path: Path) -> None:
    graph = json.loads(path.read_text())
    node_type, frames, passes = EXPECTED[path.stem]
    op_id, op = next((k, v) for k, v in graph.items() if v["class_type"] == node_type)
    entry = server.client.run(graph, timeout=600)
    assert entry["status"]["status_str"] == "success", entry["status"]
    video = saved_frames(entry, server)
    assert len(video) == frames
    assert video[0].shape == (64, 64, 3)
    assert np.std(np.stack(video)) > 1.0  # pictures, not blank frames (what they show: docs/quality.md)
    progress = [m["data"]["value"] for m in entry["ws_messages"]
                if m["type"] == "progress" and m["data"]["node"] == op_id]
    assert progress == list(range(1, op["inputs"]["steps"] * passes + 1))


def test_operation_errors_name_the_input_and_server_goes_on(server) -> None:
    graph = json.loads((API / "sora_recut_video.json").read_text())
    op_id = next(k for k, v in graph.items() if v["class_type"] == "SoraRecutVideo")
    graph[op_id]["inputs"].update(start=0, end=17, seed=77)
    entry = server.client.wait(server.client.queue_prompt(graph), timeout=300)
    error = next(m["data"] for m in entry["ws_messages"] if m["type"] == "execution_error")
    assert error["node_type"] == "SoraRecutVideo"
    assert "covers the whole clip" in error["exception_message"]
    graph[op_id]["inputs"].update(start=5, end=9, seed=78)
    assert server.client.run(graph, timeout=300)["status"]["status_str"] == "success"
