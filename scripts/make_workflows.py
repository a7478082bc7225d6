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
}
# Link input name -> type, per node.
LINK_INPUTS: dict[str, dict[str, str]] = {
    "SoraTextEncode": {"text_encoder": "SORA_TEXT_ENCODER"},
    "SoraSampler": {"model": "SORA_MODEL", "positive": "CONDITIONING", "negative": "CONDITIONING",
                    "latent": "LATENT"},
    "SoraVAEDecode": {"samples": "LATENT", "vae": "SORA_VAE"},
    "CreateVideo": {"images": "IMAGE"},
    "SaveVideo": {"video": "VIDEO"},
    "SoraSaveVideo": {"video": "IMAGE,VIDEO"},
}
# Widgets followed by an extra UI-only value (the "control after generate" combo).
CONTROL_AFTER_GENERATE = {("SoraSampler", "seed")}


def text_to_video_tail(first_id: int, model: tuple[int, int], encoder: tuple[int, int], vae: tuple[int, int],
                       prompt: str, size: tuple[int, int, int], sampling: dict[str, object], prefix: str) -> list[Node]:
    i = first_id
    width, height, length = size
    return [
        Node(i, "SoraTextEncode", {"prompt": prompt, "expand_prompt": True}, {"text_encoder": encoder},
             title="Positive prompt"),
        Node(i + 1, "SoraTextEncode", {"prompt": "", "expand_prompt": False}, {"text_encoder": encoder},
             title="Negative prompt"),
        Node(i + 2, "SoraEmptyLatentVideo", {"width": width, "height": height, "length": length, "batch_size": 1}),
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
