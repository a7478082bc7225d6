"""Write the workflow files: each graph once as ComfyUI's UI format (workflows/NAME.json, loads on the
canvas and shows in the templates browser) and as its API-format twin (workflows/api/NAME.json,
what a script posts to /prompt).

The graphs are described here once; the tests convert every UI file back to the API format with the
live server's /object_info and check that it equals the twin, so the two cannot drift apart.

    python scripts/make_workflows.py
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "workflows"
BUNDLED = "sora-default (bundled with the node pack)"


@dataclass
class Node:
    id: int
    type: str
    widgets: dict[str, object] = field(default_factory=dict)  # widget inputs in schema order
    links: dict[str, tuple[int, int]] = field(default_factory=dict)  # input name -> (node id, output slot)
    title: str | None = None


OPERATIONS = ("SoraImageToVideo", "SoraExtendVideo", "SoraLoopVideo", "SoraBlendVideos", "SoraStoryboard",
              "SoraRemixVideo", "SoraRecutVideo")
# Output names/types of each node, in slot order (for the UI file's outputs and link types).
OUTPUTS: dict[str, list[tuple[str, str]]] = {
    "SoraCheckpointLoader": [("model", "SORA_MODEL"), ("text_encoder", "SORA_TEXT_ENCODER"), ("vae", "SORA_VAE")],
    "SoraModelLoader": [("model", "SORA_MODEL")],
    "SoraTextEncoderLoader": [("text_encoder", "SORA_TEXT_ENCODER")],
    "SoraVAELoader": [("vae", "SORA_VAE")],
    "SoraTextEncode": [("CONDITIONING", "CONDITIONING")],
    "SoraEmptyLatentVideo": [("LATENT", "LATENT")],
    "SoraSampler": [("LATENT", "LATENT")],
    "SoraVAEDecode": [("IMAGE", "IMAGE")],
    "CreateVideo": [("VIDEO", "VIDEO")],
    "SaveVideo": [],
    "SoraSaveVideo": [("filename", "STRING")],
    "LoadImage": [("IMAGE", "IMAGE"), ("MASK", "MASK")],
    **{op: [("frames", "IMAGE"), ("latent", "LATENT")] for op in OPERATIONS},
}
_OP_LINKS = {"model": "SORA_MODEL", "vae": "SORA_VAE", "positive": "CONDITIONING", "negative": "CONDITIONING"}
_SOURCE_LINKS = {"video": "IMAGE", "latent": "LATENT"}
# Link input name -> type, per node.
LINK_INPUTS: dict[str, dict[str, str]] = {
    "SoraEmptyLatentVideo": {"vae": "SORA_VAE"},
    "SoraTextEncode": {"text_encoder": "SORA_TEXT_ENCODER"},
    "SoraSampler": {"model": "SORA_MODEL", "positive": "CONDITIONING", "negative": "CONDITIONING",
                    "latent": "LATENT"},
    "SoraVAEDecode": {"samples": "LATENT", "vae": "SORA_VAE"},
    "CreateVideo": {"images": "IMAGE"},
    "SaveVideo": {"video": "VIDEO"},
    "SoraSaveVideo": {"video": "IMAGE,VIDEO"},
    "SoraImageToVideo": {**_OP_LINKS, "images": "IMAGE"},
    "SoraExtendVideo": {**_OP_LINKS, **_SOURCE_LINKS},
    "SoraLoopVideo": {**_OP_LINKS, **_SOURCE_LINKS},
    "SoraBlendVideos": {**_OP_LINKS, "video_a": "IMAGE", "video_b": "IMAGE"},
    "SoraStoryboard": {"model": "SORA_MODEL", "vae": "SORA_VAE", "negative": "CONDITIONING",
                       "text_encoder": "SORA_TEXT_ENCODER"},
    "SoraRemixVideo": {**_OP_LINKS, **_SOURCE_LINKS},
    "SoraRecutVideo": {**_OP_LINKS, **_SOURCE_LINKS},
}
# Widgets followed by an extra UI-only value (the "control after generate" combo).
CONTROL_AFTER_GENERATE = {("SoraSampler", "seed"), *((op, "seed") for op in OPERATIONS)}
# The start image of the image-to-video workflow: put a picture of this name into ComfyUI's input folder
# (or pick your own in the Load Image node).
EXAMPLE_IMAGE = "sora_example_start.png"


def text_to_video_tail(first_id: int, model: tuple[int, int], encoder: tuple[int, int], vae: tuple[int, int],
                       prompt: str, size: tuple[int, int, int], sampling: dict[str, object], prefix: str) -> list[Node]:
    i = first_id
    width, height, length = size
    return [
        Node(i, "SoraTextEncode", {"prompt": prompt, "expand_prompt": True}, {"text_encoder": encoder},
             title="Positive prompt"),
        Node(i + 1, "SoraTextEncode", {"prompt": "", "expand_prompt": False}, {"text_encoder": encoder},
             title="Negative prompt"),
        Node(i + 2, "SoraEmptyLatentVideo", {"width": width, "height": height, "length": length, "batch_size": 1},
             {"vae": vae}),
        Node(i + 3, "SoraSampler", sampling,
             {"model": model, "positive": (i, 0), "negative": (i + 1, 0), "latent": (i + 2, 0)}),
        Node(i + 4, "SoraVAEDecode", {}, {"samples": (i + 3, 0), "vae": vae}),
        Node(i + 5, "CreateVideo", {"fps": 16.0}, {"images": (i + 4, 0)}),
        Node(i + 6, "SaveVideo", {"filename_prefix": prefix, "format": "auto", "codec": "auto"}, {"video": (i + 5, 0)}),
    ]


def signed_tail(nodes: list[Node], prefix: str) -> list[Node]:
    """The same graph saved with SoraSaveVideo (watermark + C2PA + workflow metadata) instead of ComfyUI's nodes."""
    kept = [n for n in nodes if n.type not in ("CreateVideo", "SaveVideo")]
    decode = next(n for n in kept if n.type == "SoraVAEDecode")
    save = Node(decode.id + 1, "SoraSaveVideo", {
        "filename_prefix": prefix, "fps": 16.0, "format": "auto", "crf": 19, "watermark": True, "c2pa": True,
        "workflow_metadata": True, "label": "",
    }, {"video": (decode.id, 0)})
    return [*kept, save]


def save_tail(first_id: int, frames: tuple[int, int], prefix: str) -> list[Node]:
    return [
        Node(first_id, "CreateVideo", {"fps": 16.0}, {"images": frames}),
        Node(first_id + 1, "SaveVideo", {"filename_prefix": prefix, "format": "auto", "codec": "auto"},
             {"video": (first_id, 0)}),
    ]


def operation_workflows(sampling: dict[str, object]) -> dict[str, list[Node]]:
    """One workflow per Sora operation, on the bundled model (8 steps keep them quick on a CPU)."""
    model, encoder, vae = (1, 0), (1, 1), (1, 2)
    op_sampling = {**sampling, "mode": "native"}
    loader = Node(1, "SoraCheckpointLoader", {"ckpt_name": BUNDLED, "dtype": "default"})

    def prompts(first_id: int, prompt: str) -> list[Node]:
        return [
            Node(first_id, "SoraTextEncode", {"prompt": prompt, "expand_prompt": True}, {"text_encoder": encoder},
                 title="Positive prompt"),
            Node(first_id + 1, "SoraTextEncode", {"prompt": "", "expand_prompt": False}, {"text_encoder": encoder},
                 title="Negative prompt"),
        ]

    def t2v(first_id: int, prompt_ids: tuple[int, int], seed: int) -> list[Node]:
        """A 17-frame text-to-video clip to operate on: nodes first_id (latent) .. first_id + 2 (frames)."""
        return [
            Node(first_id, "SoraEmptyLatentVideo", {"width": 64, "height": 64, "length": 17, "batch_size": 1},
                 {"vae": vae}),
            Node(first_id + 1, "SoraSampler", {**sampling, "seed": seed},
                 {"model": model, "positive": (prompt_ids[0], 0), "negative": (prompt_ids[1], 0),
                  "latent": (first_id, 0)}),
            Node(first_id + 2, "SoraVAEDecode", {}, {"samples": (first_id + 1, 0), "vae": vae}),
        ]

    links = {"model": model, "vae": vae, "positive": (2, 0), "negative": (3, 0)}
    size = {"width": 64, "height": 64, "length": 17}
    return {
        "sora_image_to_video": [
            loader, *prompts(2, "a red circle moves to the right"),
            Node(4, "LoadImage", {"image": EXAMPLE_IMAGE}, title="Start image (64x64)"),
            Node(5, "SoraImageToVideo", {"frame_indices": "0", **size, **op_sampling}, {**links, "images": (4, 0)}),
            *save_tail(6, (5, 0), "sora/image_to_video"),
        ],
        "sora_extend_video": [
            loader, *prompts(2, "a blue square moves up"), *t2v(4, (2, 3), 1),
            Node(7, "SoraExtendVideo", {"direction": "forward", "new_frames": 12, "overlap_frames": 8, "times": 2,
                                        **op_sampling}, {**links, "latent": (5, 0)}, title="Extend forward twice"),
            Node(8, "SoraExtendVideo", {"direction": "backward", "new_frames": 8, "overlap_frames": 8, "times": 1,
                                        **op_sampling}, {**links, "video": (7, 0)}, title="Then extend backward"),
            *save_tail(9, (8, 0), "sora/extend_video"),
        ],
        "sora_loop": [
            loader, *prompts(2, "a green triangle moves to the left"),
            Node(4, "SoraLoopVideo", {**size, "length": 16, "regenerate_frames": 8, **op_sampling}, links),
            *save_tail(5, (4, 0), "sora/loop"),
        ],
        "sora_blend_videos": [
            loader, *prompts(2, "a yellow circle moves to the right"), *t2v(4, (2, 3), 1),
            *prompts(7, "a yellow circle moves down"), *t2v(9, (7, 8), 2),
            Node(12, "SoraBlendVideos", {"transition_frames": 11, "overlap_frames": 8, **op_sampling},
                 {**links, "video_a": (6, 0), "video_b": (11, 0)}),
            *save_tail(13, (12, 0), "sora/blend_videos"),
        ],
        "sora_storyboard": [
            loader,
            Node(3, "SoraTextEncode", {"prompt": "", "expand_prompt": False}, {"text_encoder": encoder},
                 title="Negative prompt"),
            Node(4, "SoraStoryboard", {
                "storyboard": "0: a red square moves to the right\n16: the red square moves up", "width": 64,
                "height": 64, "length": 33, "expand_prompt": True, **sampling,
            }, {"model": model, "vae": vae, "negative": (3, 0), "text_encoder": encoder}),
            *save_tail(5, (4, 0), "sora/storyboard"),
        ],
        "sora_remix_video": [
            loader, *prompts(2, "a white circle moves to the right"), *t2v(4, (2, 3), 1),
            *prompts(7, "a purple circle moves to the right"),
            Node(9, "SoraRemixVideo", {"strength": 0.6, **sampling},
                 {**links, "positive": (7, 0), "negative": (8, 0), "video": (6, 0)}),
            *save_tail(10, (9, 0), "sora/remix_video"),
        ],
        "sora_recut_video": [
            loader, *prompts(2, "a cyan square moves down"), *t2v(4, (2, 3), 1),
            Node(7, "SoraRecutVideo", {"start": 5, "end": 13, **op_sampling}, {**links, "latent": (5, 0)}),
            *save_tail(8, (7, 0), "sora/recut_video"),
        ],
    }


def workflows() -> dict[str, list[Node]]:
    bundled_sampling = {"seed": 1, "steps": 8, "cfg": 3.0, "shift": 3.0, "sampler": "unipc"}
    wan_sampling = {"seed": 1, "steps": 30, "cfg": 5.0, "shift": 5.0, "sampler": "unipc"}
    bundled = [
        Node(1, "SoraCheckpointLoader", {"ckpt_name": BUNDLED, "dtype": "default"}),
        *text_to_video_tail(2, (1, 0), (1, 1), (1, 2), "a red circle moves to the right", (64, 64, 17),
                            bundled_sampling, "sora/text_to_video"),
    ]
    return {
        "sora_text_to_video": bundled,
        "sora_text_to_video_signed": signed_tail(bundled, "sora/text_to_video_signed"),
        "sora_wan21_text_to_video": [
            Node(1, "SoraModelLoader", {"model_name": "wan2.1_t2v_1.3B_fp16.safetensors", "dtype": "default"}),
            Node(2, "SoraTextEncoderLoader", {"text_encoder_name": "umt5_xxl_fp16.safetensors", "dtype": "default"}),
            Node(3, "SoraVAELoader", {"vae_name": "wan_2.1_vae.safetensors", "dtype": "default"}),
            *text_to_video_tail(4, (1, 0), (2, 0), (3, 0), "a cat walks along a sunny beach, cinematic", (832, 480, 33),
                                wan_sampling, "sora/wan21_text_to_video"),
        ],
        **operation_workflows(bundled_sampling),
    }


def to_api(nodes: list[Node]) -> dict[str, dict]:
    return {
        str(n.id): {
            "class_type": n.type,
            "inputs": {**n.widgets, **{k: [str(src), slot] for k, (src, slot) in n.links.items()}},
            **({"_meta": {"title": n.title}} if n.title else {}),
        }
        for n in nodes
    }


def to_ui(nodes: list[Node]) -> dict:
    links, ui_nodes = [], []
    consumers: dict[tuple[int, int], list[int]] = {}
    for n in nodes:
        for name, (src, slot) in n.links.items():
            link_id = len(links) + 1
            links.append([link_id, src, slot, n.id, list(LINK_INPUTS[n.type]).index(name), LINK_INPUTS[n.type][name]])
            consumers.setdefault((src, slot), []).append(link_id)
    for col, n in enumerate(nodes):
        widgets = []
        for name, value in n.widgets.items():
            widgets.append(value)
            if (n.type, name) in CONTROL_AFTER_GENERATE:
                widgets.append("fixed")
        link_by_input = {name: next(lk[0] for lk in links if lk[3] == n.id and lk[4] == i)
                         for i, name in enumerate(LINK_INPUTS.get(n.type, {})) if name in n.links}
        ui_nodes.append({
            "id": n.id, "type": n.type, "pos": [40 + 320 * col, 120 + 40 * (col % 2)], "size": [300, 120],
            "flags": {}, "order": col, "mode": 0,
            "inputs": [{"name": name, "type": typ, "link": link_by_input.get(name)}
                       for name, typ in LINK_INPUTS.get(n.type, {}).items()],
            "outputs": [{"name": name, "type": typ, "links": consumers.get((n.id, slot), []), "slot_index": slot}
                        for slot, (name, typ) in enumerate(OUTPUTS[n.type])],
            "properties": {"Node name for S&R": n.type},
            "widgets_values": widgets,
            **({"title": n.title} if n.title else {}),
        })
    return {
        "last_node_id": max(n.id for n in nodes), "last_link_id": len(links), "nodes": ui_nodes, "links": links,
        "groups": [], "config": {}, "extra": {}, "version": 0.4,
    }


def main() -> None:
    (ROOT / "api").mkdir(parents=True, exist_ok=True)
    for name, nodes in workflows().items():
        (ROOT / f"{name}.json").write_text(json.dumps(to_ui(nodes), indent=2) + "\n")
        (ROOT / "api" / f"{name}.json").write_text(json.dumps(to_api(nodes), indent=2) + "\n")
        print(f"wrote workflows/{name}.json and workflows/api/{name}.json")


if __name__ == "__main__":
    main()
