"""The node pack inside a real ComfyUI server, driven only over HTTP and the websocket."""

from __future__ import annotations

import copy
import io
import json
import struct
import threading
from pathlib import Path

import av
import pytest
import torch
from PIL import Image

from sora_core.loading.safetensors_io import read_metadata
from sora_core.pipeline import DEFAULT_CHECKPOINT
from tests.comfy.client import PromptRejected
from tests.comfy.test_operations import EXPECTED as OPERATION_EXPECTATIONS
from tests.weights import write_tiny_wan_files

ROOT = Path(__file__).resolve().parents[2]
WORKFLOWS = ROOT / "workflows"
API_WORKFLOWS = sorted((WORKFLOWS / "api").glob("*.json"))
NODE_IDS = [
    "SoraCheckpointLoader", "SoraModelLoader", "SoraTextEncoderLoader", "SoraVAELoader", "SoraTextEncode",
    "SoraEmptyLatentVideo", "SoraSampler", "SoraVAEDecode", "SoraVAEEncode", "SoraImageToVideo", "SoraExtendVideo",
    "SoraLoopVideo", "SoraBlendVideos", "SoraStoryboard", "SoraRemixVideo", "SoraRecutVideo",
]
# The Wan 2.1 workflow asks for 832x480, 81 frames, 30 steps; on the tiny random test weights a smaller run
# exercises exactly the same graph (sizes are checked against what was asked).
SMALL_RUN = {"SoraEmptyLatentVideo": {"width": 64, "height": 48, "length": 9}, "SoraSampler": {"steps": 2}}


@pytest.fixture(scope="module")
def server(comfy_server):
    write_tiny_wan_files(comfy_server.models_dir)
    return comfy_server


def load_api(path: Path) -> dict:
    return json.loads(path.read_text())


def node_of(graph: dict, class_type: str) -> tuple[str, dict]:
    return next((k, v) for k, v in graph.items() if v["class_type"] == class_type)


def video_outputs(entry: dict, server) -> list[Path]:
    paths = []
    for output in entry["outputs"].values():
        for item in output.get("images", []) + output.get("videos", []):
            paths.append(server.output_dir / item.get("subfolder", "") / item["filename"])
    return [p for p in paths if p.suffix in (".mp4", ".webm", ".webp", ".png")]


BUNDLED_DEFAULTS = json.loads(read_metadata(DEFAULT_CHECKPOINT)["sampling_defaults"])


def test_object_info_lists_every_node_with_tooltips(server):
    info = server.client.object_info()
    for node_id in NODE_IDS:
        assert node_id in info, f"{node_id} missing from /object_info"
        node = info[node_id]
        assert node["category"].startswith("Sora"), node["category"]
        inputs = {**node["input"].get("required", {}), **node["input"].get("optional", {})}
        assert inputs, node_id
        for name, (_, options) in inputs.items():
            assert options.get("tooltip"), f"{node_id}.{name} has no tooltip"
        assert node["description"]
        # The loaders default to the bundled model, so the sampling settings default to what it was made for.
        for name in ("steps", "cfg", "shift", "sampler"):
            if name in inputs:
                assert inputs[name][1]["default"] == BUNDLED_DEFAULTS[name], f"{node_id}.{name}"


def test_workflows_show_in_the_template_browser(server):
    templates = server.client.get_json("/workflow_templates")
    assert sorted(templates[server.pack_name]) == sorted(p.stem for p in WORKFLOWS.glob("*.json"))


# The operations' workflows make clips of other lengths: tests/comfy/test_operations.py runs them.
TEXT_TO_VIDEO_WORKFLOWS = [p for p in API_WORKFLOWS if p.stem not in OPERATION_EXPECTATIONS]


@pytest.mark.parametrize("path", TEXT_TO_VIDEO_WORKFLOWS, ids=lambda p: p.stem)
def test_api_workflow_runs_and_writes_the_video_asked_for(server, path):
    graph = load_api(path)
    if "wan21" in path.stem:
        for class_type, values in SMALL_RUN.items():
            node_of(graph, class_type)[1]["inputs"].update(values)
    # Workflows that share a sampler setup would hit ComfyUI's cache (and send no progress): one seed each.
    node_of(graph, "SoraSampler")[1]["inputs"]["seed"] = 100 + API_WORKFLOWS.index(path)
    previews_before = server.client.binary_frames
    entry = server.client.run(graph, timeout=300)
    assert entry["status"]["status_str"] == "success"
    latent = node_of(graph, "SoraEmptyLatentVideo")[1]["inputs"]
    files = video_outputs(entry, server)
    assert files, entry["outputs"]
    with av.open(str(files[0])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == latent["length"]
    assert frames[0].shape == (latent["height"], latent["width"], 3)
    progress = [m for m in entry["ws_messages"] if m["type"] == "progress"]
    sampler_id = node_of(graph, "SoraSampler")[0]
    steps = node_of(graph, "SoraSampler")[1]["inputs"]["steps"]
    assert [m["data"]["value"] for m in progress if m["data"]["node"] == sampler_id] == list(range(1, steps + 1))
    # A latent preview per step, as binary websocket frames: event 1 (PREVIEW_IMAGE), image type, then a JPEG.
    assert server.client.binary_frames - previews_before == steps
    frame = server.client.last_binary_frame
    assert struct.unpack(">I", frame[:4])[0] == 1
    with Image.open(io.BytesIO(frame[8:])) as preview:
        assert preview.format == "JPEG"
        # ComfyUI scales latent previews up to 512 px on the long side; the frame's aspect ratio is kept.
        assert max(preview.size) == 512
        assert preview.size[0] * latent["height"] == preview.size[1] * latent["width"]


def ui_to_api(ui: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to the API format the way the frontend does, from /object_info."""
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        info = object_info[node["type"]]
        order = info["input_order"].get("required", []) + info["input_order"].get("optional", [])
        specs = {**info["input"].get("required", {}), **info["input"].get("optional", {})}
        linked = {i["name"]: links[i["link"]] for i in node.get("inputs", []) if i.get("link") is not None}
        values = list(node.get("widgets_values", []))
        inputs: dict = {}
        for name in order:
            typ, options = specs[name]
            if name in linked:
                link = linked[name]
                inputs[name] = [str(link[1]), link[2]]
                continue
            is_widget = typ in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO") or isinstance(typ, list)
            if not is_widget:
                continue
            inputs[name] = values.pop(0)
            if options.get("control_after_generate"):
                values.pop(0)  # the UI-only "fixed/increment/randomize" value
        entry = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        api[str(node["id"])] = entry
    return api


@pytest.mark.parametrize("path", API_WORKFLOWS, ids=lambda p: p.stem)
def test_ui_workflow_is_the_same_graph_as_its_api_twin(server, path):
    ui = json.loads((WORKFLOWS / path.name).read_text())
    assert ui_to_api(ui, server.client.object_info()) == load_api(path)


def bundled_graph(**sampler_inputs) -> dict:
    graph = load_api(WORKFLOWS / "api" / "sora_text_to_video.json")
    node_of(graph, "SoraSampler")[1]["inputs"].update(sampler_inputs)
    return graph


def test_interrupt_stops_sampling_within_two_steps_and_server_goes_on(server):
    client = server.client
    graph = bundled_graph(steps=400, seed=5)
    sampler_id = node_of(graph, "SoraSampler")[0]
    seen: dict = {}

    def on_message(msg: dict) -> None:
        data = msg["data"]
        if msg["type"] == "progress" and data.get("node") == sampler_id:
            seen["last"] = data["value"]
            if data["value"] >= 3 and "sent_at" not in seen:
                seen["sent_at"] = data["value"]
                threading.Thread(target=client.interrupt).start()

    entry = client.wait(client.queue_prompt(graph), timeout=300, on_message=on_message)
    types = [m["type"] for m in entry["ws_messages"]]
    assert "execution_interrupted" in types, types
    assert seen["last"] - seen["sent_at"] <= 2, seen
    assert client.run(bundled_graph(steps=2, seed=6), timeout=120)["status"]["status_str"] == "success"


def rejected(server, graph: dict) -> dict:
    with pytest.raises(PromptRejected) as info:
        server.client.queue_prompt(graph)
    assert info.value.status == 400
    return info.value.node_errors


def test_bad_workflows_get_400_naming_the_input_and_server_goes_on(server):
    base = bundled_graph(steps=2)
    latent_id, _ = node_of(base, "SoraEmptyLatentVideo")
    sampler_id, _ = node_of(base, "SoraSampler")
    decode_id, _ = node_of(base, "SoraVAEDecode")

    wrong_type = copy.deepcopy(base)
    wrong_type[decode_id]["inputs"]["vae"] = [latent_id, 0]  # a LATENT wired into a SORA_VAE input
    errors = rejected(server, wrong_type)
    assert any(e["extra_info"].get("input_name") == "vae" for e in errors[decode_id]["errors"]), errors

    out_of_range = copy.deepcopy(base)
    out_of_range[sampler_id]["inputs"]["steps"] = 0
    errors = rejected(server, out_of_range)
    assert errors[sampler_id]["errors"][0]["type"] == "value_smaller_than_min"
    assert errors[sampler_id]["errors"][0]["extra_info"]["input_name"] == "steps"

    not_4k1 = copy.deepcopy(base)
    not_4k1[latent_id]["inputs"]["length"] = 16
    errors = rejected(server, not_4k1)
    assert {e["extra_info"]["input_name"] for e in errors[latent_id]["errors"]} == {"width", "height", "length"}
    assert all("length=16 is not 4k+1; use 13 or 17" in e["details"] for e in errors[latent_id]["errors"])

    missing_file = load_api(WORKFLOWS / "api" / "sora_wan21_text_to_video.json")
    loader_id, _ = node_of(missing_file, "SoraModelLoader")
    missing_file[loader_id]["inputs"]["model_name"] = "no_such_model.safetensors"
    errors = rejected(server, missing_file)
    error = errors[loader_id]["errors"][0]
    assert error["type"] == "custom_validation_failed"
    assert "no_such_model.safetensors is not in ComfyUI's models/diffusion_models folder" in error["details"]

    assert server.client.run(bundled_graph(steps=2, seed=9), timeout=120)["status"]["status_str"] == "success"


def test_runtime_error_says_what_to_fix_and_server_goes_on(server):
    """A latent with the wrong channel count passes validation (types match) and fails at run time."""
    graph = load_api(WORKFLOWS / "api" / "sora_text_to_video.json")
    latent_id, _ = node_of(graph, "SoraEmptyLatentVideo")
    graph[latent_id] = {"class_type": "EmptyLTXVLatentVideo",
                        "inputs": {"width": 64, "height": 64, "length": 9, "batch_size": 1}}  # 128 channels
    entry = server.client.wait(server.client.queue_prompt(graph), timeout=120)
    error = next(m["data"] for m in entry["ws_messages"] if m["type"] == "execution_error")
    assert error["node_type"] == "SoraSampler"
    assert "use SoraEmptyLatentVideo" in error["exception_message"]
    assert server.client.run(bundled_graph(steps=2, seed=3), timeout=120)["status"]["status_str"] == "success"


def write_vae_checkpoint(models_dir: Path, spatial: int) -> str:
    """A project checkpoint whose VAE compresses ``spatial``x in space (the bundled DiT and text encoder beside a
    tiny random VAE): with 4, a model whose latents are not on Wan 2.1's 8x grid; with the other factor than the
    bundled VAE's, a model the bundled model's latents do not fit."""
    from sora_core.config import VAEConfig
    from sora_core.loading import save_project_file
    from sora_core.pipeline import load_models
    from sora_core.train.vae_stage import vae_config_for
    from sora_core.vae import WanVAE

    models = load_models("default")
    torch.manual_seed(0)
    vae = WanVAE(vae_config_for(spatial, VAEConfig(base_dim=8)))
    name = f"sora_test_vae{spatial}x.safetensors"
    save_project_file(models_dir / "checkpoints" / name,
                      {"dit": models.dit, "vae": vae, "text_encoder": models.text_encoder})
    return name


def test_a_4x_vae_model_gets_latents_on_its_grid_and_a_wrong_grid_is_refused(server):
    """The empty latent takes its grid from the connected VAE: a 4x-VAE checkpoint makes the size asked for;
    without the VAE connected the latent is on Wan's 8x grid, and the sampler says what to connect. A latent
    of the bundled model is refused by another grid's VAE decoder and by an operation on that model too."""
    from sora_core.pipeline import load_models

    name = write_vae_checkpoint(server.models_dir, 4)
    graph = bundled_graph(steps=2, seed=12)
    node_of(graph, "SoraCheckpointLoader")[1]["inputs"]["ckpt_name"] = name
    latent_id, latent = node_of(graph, "SoraEmptyLatentVideo")
    latent["inputs"].update(width=64, height=48, length=9)
    entry = server.client.run(graph, timeout=300)
    with av.open(str(video_outputs(entry, server)[0])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 9 and frames[0].shape == (48, 64, 3)

    del graph[latent_id]["inputs"]["vae"]  # sized for Wan 2.1's 8x VAE: would decode to 32x24
    node_of(graph, "SoraSampler")[1]["inputs"]["seed"] = 13
    entry = server.client.wait(server.client.queue_prompt(graph), timeout=120)
    error = next(m["data"] for m in entry["ws_messages"] if m["type"] == "execution_error")
    assert error["node_type"] == "SoraSampler"
    assert "compresses 8x in space" in error["exception_message"]
    assert "connect it to SoraEmptyLatentVideo's vae input" in error["exception_message"]

    # The bundled model's latent, decoded by a VAE of the other grid or continued by an operation on its model.
    bundled = load_models("default").vae.config.spatial_factor
    other = 8 if bundled == 4 else 4
    other_name = name if other == 4 else write_vae_checkpoint(server.models_dir, other)
    decoded_wrong = bundled_graph(steps=2, seed=15)
    decoded_wrong["90"] = {"class_type": "SoraCheckpointLoader",
                           "inputs": {"ckpt_name": other_name, "dtype": "default"}}
    node_of(decoded_wrong, "SoraVAEDecode")[1]["inputs"]["vae"] = ["90", 2]
    extended_wrong = load_api(WORKFLOWS / "api" / "sora_extend_video.json")
    extended_wrong["90"] = decoded_wrong["90"]
    node_of(extended_wrong, "SoraSampler")[1]["inputs"].update(steps=2, seed=16)
    forward = next(n for n in extended_wrong.values() if n["inputs"].get("direction") == "forward")
    forward["inputs"].update(model=["90", 0], vae=["90", 2])
    for graph, node_type in ((decoded_wrong, "SoraVAEDecode"), (extended_wrong, "SoraExtendVideo")):
        entry = server.client.wait(server.client.queue_prompt(graph), timeout=120)
        error = next((m["data"] for m in entry["ws_messages"] if m["type"] == "execution_error"), None)
        assert error is not None, f"{node_type} took a latent of another VAE's grid"
        assert error["node_type"] == node_type
        assert (f"sized for a VAE that compresses {bundled}x in space, but this VAE works with {other}x"
                in error["exception_message"])
    assert server.client.run(bundled_graph(steps=2, seed=14), timeout=120)["status"]["status_str"] == "success"


def test_view_serves_the_video(server):
    entry = server.client.run(bundled_graph(steps=2, seed=4), timeout=120)
    item = next(i for out in entry["outputs"].values() for i in out.get("images", []))
    data = server.client.view(item["filename"], item.get("subfolder", ""), item.get("type", "output"))
    with av.open(io.BytesIO(data)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 17


def test_readme_script_queues_a_workflow_and_prints_its_video(server):
    """scripts/queue_workflow.py, as the README shows it: a script that posts a workflow and gets the file."""
    import subprocess
    import sys

    workflow = WORKFLOWS / "api" / "sora_text_to_video.json"
    cmd = [
        sys.executable, str(ROOT / "scripts" / "queue_workflow.py"), str(workflow),
        "--server", server.base_url, "--set", "5.seed=11", "--set", "4.length=5",
    ]  # fmt: skip
    graph = load_api(workflow)
    assert graph["5"]["class_type"] == "SoraSampler" and graph["4"]["class_type"] == "SoraEmptyLatentVideo"
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    relative, url = proc.stdout.strip().splitlines()[0].split("\t")
    with av.open(str(server.output_dir / relative)) as container:
        assert sum(1 for _ in container.decode(video=0)) == 5
    assert url.startswith(server.base_url + "/view?")
    # A bad override is refused by the server with the input named, and the script exits non-zero.
    bad = subprocess.run([*cmd[:-2], "--set", "4.length=6"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "length" in bad.stderr + bad.stdout
