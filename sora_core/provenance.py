"""C2PA Content Credentials for the files sora_core writes: sign, read back, verify (through c2pa-python).

A signed file says, in a manifest bound to its bytes by hashes, that it was created by a trained algorithm
(``c2pa.created`` with IPTC digitalSourceType ``trainedAlgorithmicMedia``), which generator and version made
it, and the SHA-256 of the prompt and of the workflow that made it (the texts themselves stay private), plus
the payload of the invisible watermark, so a copy that lost its manifest can still be tied to it.

Certificates live in a config folder, never in a node or on a command line: ``$SORA_C2PA_DIR``, else
``~/.config/sora_core/c2pa/``:

==============  ==================================================================================================
``cert.pem``    your signing certificate chain, PEM: the end-entity certificate first, then intermediates
``key.pem``     its private key, PEM (EC P-256/384/521 -> ES256/384/512, RSA -> PS256, Ed25519)
``trust.pem``   optional: root certificates to trust when verifying; a file that chains to one reads "trusted"
``dev/``        made on first use when ``cert.pem``/``key.pem`` are absent: a local development CA and signing
                certificate. Files signed with it validate but read as untrusted ("valid", not "trusted").
==============  ==================================================================================================

C2PA needs, of the end-entity certificate: KeyUsage digitalSignature (critical), an Authority Key Identifier,
and ExtendedKeyUsage emailProtection (c2pa-rs refuses others unless configured). No time-stamp authority is
used (everything stays offline), so a signature is checked against the certificate's validity at read time.
Thumbnails are off: on stills they would embed a copy of the picture as large as the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .errors import InputError, SoraError

__all__ = [
    "DIGITAL_SOURCE_TYPE",
    "GENERATION_LABEL",
    "GENERATOR",
    "SIGNABLE_TYPES",
    "C2paReport",
    "SigningIdentity",
    "config_dir",
    "ensure_dev_identity",
    "load_identity",
    "payload_for",
    "sha256_json",
    "sha256_text",
    "sign_file",
    "verify_c2pa",
    "write_with_provenance",
]

GENERATOR = "sora_core"
DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
GENERATION_LABEL = "org.comfyui-open-sora.generation"  # this project's assertion: hashes, model, watermark
WATERMARK_ALGORITHM = "sora_core.watermark.v1"
DEV_ORG = "sora_core development certificate (untrusted)"
SIGNABLE_TYPES: dict[str, str] = {
    ".mp4": "video/mp4", ".mov": "video/quicktime", ".m4v": "video/mp4",
    ".png": "image/png", ".webp": "image/webp", ".gif": "image/gif", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
}


_CERT_HINT = ("the end-entity certificate needs KeyUsage digitalSignature (critical), an Authority Key Identifier "
              "and ExtendedKeyUsage emailProtection, and must be within its validity period")


class ProvenanceError(SoraError):
    """Signing or verifying failed in a way the user can fix (certificate, key, file type)."""


# ----------------------------------------------------------------------------------------------------------------
# Hashes and the watermark payload


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    """SHA-256 of a JSON value in canonical form (sorted keys, no spaces): the same graph gives the same hash."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return sha256_text(value)
    return sha256_text(json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str))


def payload_for(*parts: str | None) -> int:
    """A 32-bit watermark payload from the file's hashes (and a random salt when there are none)."""
    text = "\n".join(p for p in parts if p) or secrets.token_hex(16)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


# ----------------------------------------------------------------------------------------------------------------
# Certificates


def config_dir() -> Path:
    """Where certificates are looked for: ``$SORA_C2PA_DIR``, else ``~/.config/sora_core/c2pa``."""
    env = os.environ.get("SORA_C2PA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "sora_core" / "c2pa"


@dataclass(frozen=True)
class SigningIdentity:
    """A certificate chain and key to sign with. ``development``: the locally generated, untrusted one."""

    chain_pem: bytes
    key_pem: bytes
    alg: str  # "ES256", "PS256", ... (c2pa's names)
    development: bool
    source: Path  # the folder the files came from


def _algorithm_for(key: Any) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, ec.EllipticCurvePrivateKey):
        algs = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if key.curve.name not in algs:
            raise ProvenanceError(f"EC curve {key.curve.name} is not supported by C2PA; use P-256, P-384 or P-521")
        return algs[key.curve.name]
    if isinstance(key, rsa.RSAPrivateKey):
        return "PS256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ED25519"
    raise ProvenanceError(f"unsupported private key type {type(key).__name__}; use EC (P-256), RSA or Ed25519")


def _load_key(key_pem: bytes, where: Path) -> Any:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        return load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ProvenanceError(f"{where}: not an unencrypted PEM private key ({exc})") from exc


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _dev_is_current(folder: Path) -> bool:
    from cryptography import x509

    paths = [folder / n for n in ("cert.pem", "key.pem", "root.pem")]
    if not all(p.is_file() for p in paths):
        return False
    try:
        cert = x509.load_pem_x509_certificates(paths[0].read_bytes())[0]
    except ValueError:
        return False
    # Renew a month before it runs out: files are checked against the certificate's validity when read.
    return cert.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=30)


def ensure_dev_identity(folder: Path | None = None) -> Path:
    """Make (once) a development CA and signing certificate under ``folder`` (default: the config's ``dev/``).

    EC P-256 keys; the CA: CA:TRUE, keyCertSign + cRLSign; the signing certificate: KeyUsage digitalSignature
    (critical), AKI, SKI, EKU emailProtection, valid ten years. Returns the folder.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    folder = Path(folder) if folder is not None else config_dir() / "dev"
    if _dev_is_current(folder):
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)  # tolerate small clock skew
    until = now + dt.timedelta(days=3650)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ORG),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    root_key = ec.generate_private_key(ec.SECP256R1())
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root = (
        x509.CertificateBuilder().subject_name(name("sora_core dev root CA")).issuer_name(name("sora_core dev root CA"))
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(name(f"sora_core dev signer ({os.uname().nodename})"))
        .issuer_name(root.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False)
        .sign(root_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    key_pem = key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    _write_private(folder / "key.pem", key_pem)
    _write_private(folder / "root.pem", root.public_bytes(pem), 0o644)
    _write_private(folder / "cert.pem", cert.public_bytes(pem) + root.public_bytes(pem), 0o644)
    return folder


def load_identity(folder: Path | None = None) -> SigningIdentity:
    """The user's ``cert.pem`` + ``key.pem`` in the config folder, else the development identity (made if needed)."""
    folder = Path(folder) if folder is not None else config_dir()
    cert, key = folder / "cert.pem", folder / "key.pem"
    development = not cert.exists() and not key.exists()
    if not development and not (cert.is_file() and key.is_file()):
        missing = key if cert.exists() else cert
        raise ProvenanceError(f"{missing} is missing: put both cert.pem and key.pem in {folder} (or neither, to "
                              "sign with a locally generated development certificate)")
    if development:
        folder = ensure_dev_identity(folder / "dev")
        cert, key = folder / "cert.pem", folder / "key.pem"
    key_pem, chain_pem = key.read_bytes(), cert.read_bytes()
    if b"-----BEGIN CERTIFICATE-----" not in chain_pem:
        raise ProvenanceError(f"{cert}: no PEM certificate in it")
    return SigningIdentity(chain_pem, key_pem, _algorithm_for(_load_key(key_pem, key)), development, folder)


def _trust_anchors(folder: Path | None = None) -> str | None:
    path = (Path(folder) if folder is not None else config_dir()) / "trust.pem"
    return path.read_text() if path.is_file() else None


# ----------------------------------------------------------------------------------------------------------------
# Signing


def _mime_type(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in SIGNABLE_TYPES:
        raise ProvenanceError(f"{path}: C2PA cannot be embedded in {suffix or 'this'} files here; supported: "
                              f"{', '.join(sorted(SIGNABLE_TYPES))} (WebM is not: use .mp4 for VP9/AV1)")
    return SIGNABLE_TYPES[suffix]


def can_sign(path: str | os.PathLike[str]) -> bool:
    """Whether a C2PA manifest can be embedded in files of this type."""
    return Path(path).suffix.lower() in SIGNABLE_TYPES


def _manifest(path: Path, *, prompt_sha256: str | None, workflow_sha256: str | None, model: str | None,
              watermark_payload: int | None, extra: Mapping[str, Any] | None, title: str | None) -> dict:
    agent = {"name": GENERATOR, "version": __version__}
    generation: dict[str, Any] = {"generator": GENERATOR, "version": __version__}
    if model:
        generation["model"] = model
    if prompt_sha256:
        generation["prompt_sha256"] = prompt_sha256
    if workflow_sha256:
        generation["workflow_sha256"] = workflow_sha256
    if watermark_payload is not None:
        generation["watermark"] = {"algorithm": WATERMARK_ALGORITHM, "payload": f"{watermark_payload:08x}"}
    if extra:
        generation.update(extra)
    return {
        "claim_generator_info": [agent],
        "title": title or path.name,
        "format": _mime_type(path),
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": [
                {"action": "c2pa.created", "digitalSourceType": DIGITAL_SOURCE_TYPE, "softwareAgent": agent},
            ]}},
            {"label": GENERATION_LABEL, "data": generation},
        ],
    }


def _signer(identity: SigningIdentity) -> Any:
    from c2pa import C2paSignerInfo, C2paSigningAlg, Signer

    alg = getattr(C2paSigningAlg, identity.alg)
    try:
        return Signer.from_info(C2paSignerInfo(alg, identity.chain_pem, identity.key_pem, None))  # None: no TSA
    except Exception as exc:  # c2pa raises its own error types, all with a readable message
        raise ProvenanceError(f"c2pa refused the certificate in {identity.source}: {exc} ({_CERT_HINT})") from exc


def sign_file(path: str | os.PathLike[str], *, prompt_sha256: str | None = None, workflow_sha256: str | None = None,
              model: str | None = None, watermark_payload: int | None = None,
              extra: Mapping[str, Any] | None = None, identity: SigningIdentity | None = None,
              title: str | None = None) -> SigningIdentity:
    """Embed a C2PA manifest in ``path`` (MP4, PNG, WebP, GIF, ...), in place and atomically.

    The manifest says: created by a trained algorithm, by sora_core at this version, with these hashes (pass
    :func:`sha256_text` / :func:`sha256_json` of the prompt and workflow) and watermark payload. Signs with
    ``identity`` (default: :func:`load_identity`). Returns the identity used (``development`` tells whether it
    was the untrusted local one).
    """
    from c2pa import Builder, Context

    path = Path(path)
    mime = _mime_type(path)
    if not path.is_file():
        raise FileNotFoundError(2, f"no such file to sign: {path}", str(path))
    identity = identity or load_identity()
    manifest = _manifest(path, prompt_sha256=prompt_sha256, workflow_sha256=workflow_sha256, model=model,
                         watermark_payload=watermark_payload, extra=extra, title=title)
    context = Context.from_dict({"builder": {"thumbnail": {"enabled": False}}})
    signer = _signer(identity)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.c2pa.tmp")
    try:
        builder = Builder(manifest, context=context)
        with open(path, "rb") as src, open(tmp, "w+b") as dst:  # c2pa needs the destination readable too
            builder.sign(signer, mime, src, dst)
        os.replace(tmp, path)
    except ProvenanceError:
        raise
    except Exception as exc:
        hint = f" ({_CERT_HINT}; the certificate came from {identity.source})" if "certificat" in str(exc) else ""
        raise ProvenanceError(f"C2PA signing of {path} failed: {exc}{hint}") from exc
    finally:
        tmp.unlink(missing_ok=True)
        signer.close()
    return identity


# ----------------------------------------------------------------------------------------------------------------
# Reading and verifying


@dataclass
class C2paReport:
    """The C2PA side of a verification.

    ``state``: "trusted" (valid, and the signer chains to a trust anchor), "valid" (intact and well signed,
    signer not trusted here, e.g. the development certificate), "invalid" (the file or manifest was changed, or
    the signature is bad), "absent" (no manifest). The other fields summarise the active manifest.
    """

    state: str
    generator: str | None = None
    generator_version: str | None = None
    digital_source_type: str | None = None
    actions: list[str] = field(default_factory=list)
    signer: str | None = None
    issuer: str | None = None
    development_certificate: bool = False
    signed_at: str | None = None
    generation: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # validation failure codes, e.g. assertion.bmffHash.mismatch
    message: str | None = None  # why nothing could be read, when state is "absent" or "invalid"

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state, "generator": self.generator, "generator_version": self.generator_version,
            "digital_source_type": self.digital_source_type, "actions": self.actions, "signer": self.signer,
            "issuer": self.issuer, "development_certificate": self.development_certificate,
            "signed_at": self.signed_at, "generation": self.generation, "errors": self.errors,
            "message": self.message,
        }


def _summarise(store: dict, state: str, failures: list[str]) -> C2paReport:
    manifest = store.get("manifests", {}).get(store.get("active_manifest") or "", {})
    report = C2paReport(state=state, errors=failures)
    info = (manifest.get("claim_generator_info") or [{}])[0]
    report.generator, report.generator_version = info.get("name"), info.get("version")
    for assertion in manifest.get("assertions", []):
        label, data = assertion.get("label", ""), assertion.get("data") or {}
        if label.startswith("c2pa.actions"):
            for action in data.get("actions", []):
                report.actions.append(action.get("action", ""))
                report.digital_source_type = report.digital_source_type or action.get("digitalSourceType")
        elif label == GENERATION_LABEL:
            report.generation = data
    signature = manifest.get("signature_info") or {}
    report.signer = signature.get("common_name")
    report.issuer = signature.get("issuer")
    report.signed_at = signature.get("time")
    report.development_certificate = DEV_ORG in (report.issuer or "") or DEV_ORG in (report.signer or "")
    return report


def verify_c2pa(path: str | os.PathLike[str], *, trust_anchors: str | None = None) -> C2paReport:
    """Read and validate the C2PA manifest of ``path``.

    ``trust_anchors``: PEM roots to trust (default: ``trust.pem`` in the config folder, if there). Nothing is
    fetched from the network: no OCSP, no remote manifests.
    """
    from c2pa import Context, Reader

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(2, f"no such file: {path}", str(path))
    suffix = path.suffix.lower()
    if suffix not in SIGNABLE_TYPES:
        return C2paReport(state="absent", message=f"C2PA is not supported in {suffix or 'this'} files")
    anchors = trust_anchors if trust_anchors is not None else _trust_anchors()
    settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
    if anchors:
        settings["trust"] = {"user_anchors": anchors}
    context = Context.from_dict(settings)
    try:
        with open(path, "rb") as fh:
            reader = Reader.try_create(SIGNABLE_TYPES[suffix], fh, context=context)
            if reader is None:
                return C2paReport(state="absent", message="no C2PA manifest in the file")
            with reader:
                store = json.loads(reader.json())
                raw_state = (reader.get_validation_state() or "").lower()
    except Exception as exc:  # a manifest that cannot even be parsed is as good as a broken one
        return C2paReport(state="invalid", message=f"the C2PA data cannot be read: {exc}")
    failures = [str(s.get("code")) for s in store.get("validation_status") or [] if s.get("code")]
    results = store.get("validation_results") or {}
    for part in (results.get("activeManifest") or {}, *[i for i in results.get("ingredientDeltas") or []]):
        for item in (part.get("failure") or []) if isinstance(part, dict) else []:
            if item.get("code") and item["code"] not in failures:
                failures.append(item["code"])
    state = raw_state if raw_state in ("trusted", "valid", "invalid") else "invalid"
    # 'Valid' with an untrusted signer lists signingCredential.untrusted as a failure code; it is not damage.
    failures = [f for f in failures if f != "signingCredential.untrusted"]
    return _summarise(store, state, failures)


def check_signable(path: str | os.PathLike[str]) -> None:
    """Raise :class:`InputError` when a C2PA manifest cannot be embedded in this kind of file."""
    if not can_sign(path):
        raise InputError(f"{path}: C2PA is not supported for {Path(path).suffix or 'this'} files; use .mp4, .png, "
                         ".webp or .gif (or switch C2PA off)")


# ----------------------------------------------------------------------------------------------------------------
# Writing a marked file (what the CLI and the save node do)


@dataclass(frozen=True)
class WrittenFile:
    """What :func:`write_with_provenance` did. ``notes``: things a user should know (e.g. WebM is not signed)."""

    path: Path
    watermark_payload: int | None
    signed: bool
    development_certificate: bool
    notes: tuple[str, ...] = ()


def write_with_provenance(path: str | os.PathLike[str], frames: Any, *, fps: float, watermark: bool = True,
                          c2pa: bool = True, prompt_sha256: str | None = None, workflow_sha256: str | None = None,
                          model: str | None = None, metadata: Mapping[str, str] | None = None, crf: int = 19,
                          codec: str | None = None, payload: int | None = None,
                          identity: SigningIdentity | None = None) -> WrittenFile:
    """Watermark ``frames`` [T, H, W, 3] (on their device), write them to ``path``, then sign it with C2PA.

    All or nothing: the file appears at ``path`` only once it is written and signed. ``payload`` defaults to
    :func:`payload_for` of the hashes. A type C2PA cannot hold (WebM) is written unsigned, with a note.
    """
    from .videoio import write_video
    from .watermark import embed_watermark

    path = Path(path)
    notes: list[str] = []
    if watermark:
        payload = payload_for(prompt_sha256, workflow_sha256) if payload is None else payload
        frames = embed_watermark(frames, payload)
    else:
        payload = None
    sign = c2pa and can_sign(path)
    if c2pa and not sign:
        notes.append(f"C2PA cannot be embedded in {path.suffix} files: {path.name} carries the watermark only "
                     "(write .mp4 for a signed video)")
    if not sign:
        write_video(path, frames, fps=fps, crf=crf, codec=codec, metadata=metadata)
        return WrittenFile(path, payload, False, False, tuple(notes))
    identity = identity or load_identity()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.unsigned{path.suffix}")
    try:
        write_video(tmp, frames, fps=fps, crf=crf, codec=codec, metadata=metadata)
        sign_file(tmp, prompt_sha256=prompt_sha256, workflow_sha256=workflow_sha256, model=model,
                  watermark_payload=payload, identity=identity, title=path.name)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    if identity.development:
        notes.append(f"signed with the local development certificate (untrusted); put your own cert.pem and key.pem "
                     f"in {config_dir()} to sign as yourself")
    return WrittenFile(path, payload, True, identity.development, tuple(notes))
