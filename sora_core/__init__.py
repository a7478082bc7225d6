"""sora_core: a standalone PyTorch video engine (spacetime-patch DiT, causal video VAE, flow matching).

No ComfyUI import anywhere in this package; the ComfyUI nodes in ../nodes wrap it.
"""

__version__ = "0.1.0"
