"""ComfyUI nodes: a thin declarative layer over sora_core (no model math here)."""

from __future__ import annotations

from comfy_api.latest import ComfyExtension, io

from .encode import ENCODE_NODES
from .loaders import LOADER_NODES
from .operations import OPERATION_NODES
from .provenance import PROVENANCE_NODES
from .sampler import SAMPLER_NODES
from .vae import VAE_NODES

NODES: list[type[io.ComfyNode]] = [*LOADER_NODES, *ENCODE_NODES, *SAMPLER_NODES, *VAE_NODES, *PROVENANCE_NODES,
                                     *OPERATION_NODES]


class SoraExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return NODES


async def comfy_entrypoint() -> SoraExtension:
    return SoraExtension()
