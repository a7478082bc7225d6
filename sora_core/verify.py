"""Check a file's provenance: the invisible watermark in its pictures and its C2PA manifest, as one report.

:func:`verify_file` gives a :class:`VerifyReport`; ``to_text()`` is what ``python -m sora_core verify FILE``
prints for a person, ``to_dict()`` what ``--json`` prints for scripts::

    {"file": "clip.mp4",
     "watermark": {"found": true, "confidence": 1.0, "payload": "1a2b3c4d", "score": 18.3, ...},
     "c2pa": {"state": "trusted" | "valid" | "invalid" | "absent", "generator": "sora_core", ...},
     "payload_matches_manifest": true}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .provenance import C2paReport, verify_c2pa
from .watermark import FALSE_POSITIVE_RATE, WatermarkDetection, detect_watermark_file

__all__ = ["VerifyReport", "verify_file"]

_STATE_WORDS = {
    "trusted": "valid, signed by a trusted certificate",
    "valid": "valid (intact and signed), but the signer is not trusted here",
    "invalid": "INVALID: the file or its manifest was changed after signing, or the signature is bad",
    "absent": "none",
}


@dataclass
class VerifyReport:
    """The watermark and C2PA findings for one file. ``watermark_error`` says why the pictures could not be read."""

    path: Path
    watermark: WatermarkDetection | None
    c2pa: C2paReport
    watermark_error: str | None = None

    @property
    def manifest_payload(self) -> str | None:
        mark = self.c2pa.generation.get("watermark") if self.c2pa.generation else None
        return mark.get("payload") if isinstance(mark, dict) else None

    @property
    def payload_matches_manifest(self) -> bool | None:
        """Whether the payload read from the pictures is the one the manifest recorded (None: nothing to compare)."""
        if self.watermark is None or self.watermark.payload is None or self.manifest_payload is None:
            return None
        return self.watermark.payload_hex() == self.manifest_payload

    def to_dict(self) -> dict[str, Any]:
        wm = self.watermark
        watermark: dict[str, Any] = {"found": False, "confidence": 0.0, "payload": None}
        if wm is not None:
            watermark = {
                "found": wm.found, "confidence": wm.confidence, "payload": wm.payload_hex(), "score": wm.score,
                "payload_crc_ok": wm.crc_ok, "false_positive_bound": wm.false_positive_bound,
                "threshold_false_positive_rate": FALSE_POSITIVE_RATE, "frames_read": wm.frames, "period_px": wm.period,
            }
        if self.watermark_error:
            watermark["error"] = self.watermark_error
        return {"file": str(self.path), "watermark": watermark, "c2pa": self.c2pa.to_dict(),
                "payload_matches_manifest": self.payload_matches_manifest}

    def to_text(self) -> str:
        lines = [str(self.path)]
        wm = self.watermark
        if wm is None:
            lines.append(f"  watermark: could not be checked ({self.watermark_error})")
        elif wm.found:
            payload = wm.payload_hex() or "unreadable (damaged)"
            lines.append(f"  watermark: FOUND, confidence {wm.confidence:.6f} (score {wm.score:.1f}, read from "
                         f"{wm.frames} frame{'s' if wm.frames != 1 else ''}), payload {payload}")
            if wm.resized:
                lines.append(f"             the pattern repeats every {wm.period:.1f} px: the video was resized")
        else:
            lines.append(f"  watermark: not found (score {wm.score:.1f}; a mark needs a false-positive chance "
                         f"<= {FALSE_POSITIVE_RATE:g}, this has {wm.false_positive_bound:.2g})")
        c2 = self.c2pa
        lines.append(f"  C2PA:      {_STATE_WORDS.get(c2.state, c2.state)}")
        if c2.state == "absent" and c2.message:
            lines.append(f"             {c2.message}")
        if c2.state == "invalid" and (c2.errors or c2.message):
            lines.append(f"             {', '.join(c2.errors) or c2.message}")
        if c2.state in ("trusted", "valid", "invalid") and c2.generator:
            if c2.digital_source_type and c2.digital_source_type.endswith("/trainedAlgorithmicMedia"):
                lines.append("             made by a trained algorithm (AI-generated: c2pa.created, "
                             "trainedAlgorithmicMedia)")
            lines.append(f"             generator {c2.generator} {c2.generator_version or ''}".rstrip())
            signer = c2.signer or "unknown signer"
            if c2.development_certificate:
                signer += " - a local development certificate, not trusted"
            lines.append(f"             signed by {signer}")
            gen = c2.generation
            for key, label in (("model", "model"), ("prompt_sha256", "prompt SHA-256"),
                               ("workflow_sha256", "workflow SHA-256")):
                if gen.get(key):
                    lines.append(f"             {label}: {gen[key]}")
        match = self.payload_matches_manifest
        if match is not None:
            lines.append("  the watermark payload " + ("matches" if match else "does NOT match")
                         + " the one recorded in the C2PA manifest")
        return "\n".join(lines)


def verify_file(path: str | os.PathLike[str], *, trust_anchors: str | None = None) -> VerifyReport:
    """Check ``path`` for the watermark and a C2PA manifest. Missing files raise FileNotFoundError."""
    from .errors import InputError

    path = Path(path)
    c2pa = verify_c2pa(path, trust_anchors=trust_anchors)
    try:
        watermark, error = detect_watermark_file(path), None
    except InputError as exc:  # not a picture we can decode: report C2PA alone
        watermark, error = None, str(exc)
    return VerifyReport(path=path, watermark=watermark, c2pa=c2pa, watermark_error=error)
