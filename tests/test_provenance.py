"""C2PA signing and verification, certificates, the combined report, and the CLI's verify / marked generate."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import pytest
import torch

from sora_core import provenance as pv
from sora_core import videoio
from sora_core import watermark as wm
from sora_core.cli import main
from sora_core.verify import verify_file
from tests.clips import make_clip, media_offset

PROMPT_SHA = pv.sha256_text("a red circle moves to the right")
WORKFLOW_SHA = pv.sha256_json({"steps": 8, "cfg": 3.0})


@pytest.fixture
def c2pa_dir(tmp_path, monkeypatch):
    folder = tmp_path / "c2pa"
    monkeypatch.setenv("SORA_C2PA_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def clip():
    return make_clip("shapes", 17, 128, 224, seed=1)


def signed(tmp_path, clip, suffix: str):
    path = tmp_path / f"clip{suffix}"
    videoio.write_video(path, clip[:1] if suffix == ".png" else clip, fps=16)
    identity = pv.sign_file(path, prompt_sha256=PROMPT_SHA, workflow_sha256=WORKFLOW_SHA, model="tiny",
                            watermark_payload=0x1234ABCD)
    return path, identity


# ----- certificates -------------------------------------------------------------------------------------------


def test_dev_identity_is_made_once_with_the_extensions_c2pa_needs(c2pa_dir):
    from cryptography import x509
    from cryptography.x509.oid import ExtendedKeyUsageOID

    identity = pv.load_identity()
    assert identity.development and identity.alg == "ES256"
    dev = c2pa_dir / "dev"
    assert (dev / "key.pem").stat().st_mode & 0o077 == 0  # private key readable by the owner only
    ee = x509.load_pem_x509_certificates((dev / "cert.pem").read_bytes())[0]
    usage = ee.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in ee.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    ee.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    assert ee.not_valid_after_utc > dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=365)
    again = pv.load_identity()
    assert again.chain_pem == identity.chain_pem and again.key_pem == identity.key_pem


def _own_identity(folder, *, eku: bool = True) -> None:
    """A user's own CA and signing certificate (EC P-384), written as cert.pem/key.pem/trust.pem."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    name = lambda cn: x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])  # noqa: E731
    ca_key, key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP384R1())
    ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ku = dict(content_commitment=False, key_encipherment=False, data_encipherment=False, key_agreement=False,
              encipher_only=False, decipher_only=False)
    ca = (x509.CertificateBuilder().subject_name(name("Studio CA")).issuer_name(name("Studio CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=30))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **ku), critical=True)
          .add_extension(ski, critical=False).sign(ca_key, hashes.SHA384()))
    builder = (x509.CertificateBuilder().subject_name(name("Studio signer")).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(2).not_valid_before(now)
               .not_valid_after(now + dt.timedelta(days=30))
               .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **ku),
                              critical=True)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False))
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
    cert = builder.sign(ca_key, hashes.SHA384())
    pem = serialization.Encoding.PEM
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
    (folder / "key.pem").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    (folder / "trust.pem").write_bytes(ca.public_bytes(pem))


def test_users_own_certificate_signs_and_reads_trusted_with_its_trust_anchor(c2pa_dir, tmp_path, clip):
    _own_identity(c2pa_dir)
    path, identity = signed(tmp_path, clip, ".mp4")
    assert not identity.development and identity.alg == "ES384"
    report = pv.verify_c2pa(path)
    assert report.state == "trusted" and report.signer == "Studio signer" and not report.development_certificate
    assert pv.verify_c2pa(path, trust_anchors="").state == "valid"  # nothing trusted: intact but untrusted


def test_half_an_identity_or_a_bad_certificate_is_refused_with_what_to_do(c2pa_dir, tmp_path, clip):
    c2pa_dir.mkdir(parents=True)
    (c2pa_dir / "cert.pem").write_text("x")
    with pytest.raises(pv.ProvenanceError, match="key.pem is missing"):
        pv.load_identity()
    _own_identity(c2pa_dir, eku=False)
    path = tmp_path / "clip.mp4"
    videoio.write_video(path, clip, fps=16)
    before = path.read_bytes()
    with pytest.raises(pv.ProvenanceError, match="emailProtection"):
        pv.sign_file(path)
    assert path.read_bytes() == before  # untouched


# ----- signing and verifying ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".mp4", ".png", ".webp", ".gif"])
def test_signed_file_validates_and_one_changed_byte_invalidates_it(c2pa_dir, tmp_path, clip, suffix):
    path, identity = signed(tmp_path, clip, suffix)
    assert identity.development
    report = pv.verify_c2pa(path)
    assert report.state == "valid" and report.development_certificate and not report.errors
    assert report.generator == "sora_core" and report.generator_version
    assert report.actions == ["c2pa.created"]
    assert report.digital_source_type == pv.DIGITAL_SOURCE_TYPE
    gen = report.generation
    assert gen["prompt_sha256"] == PROMPT_SHA and gen["workflow_sha256"] == WORKFLOW_SHA
    assert gen["model"] == "tiny" and gen["watermark"]["payload"] == "1234abcd"
    root = (c2pa_dir / "dev" / "root.pem").read_text()
    assert pv.verify_c2pa(path, trust_anchors=root).state == "trusted"
    # The file still plays, and keeps its frames.
    frames, _ = videoio.read_video(path)
    assert frames.shape[0] == (1 if suffix == ".png" else 17)

    data = bytearray(path.read_bytes())
    data[media_offset(bytes(data), suffix)] ^= 0x01
    tampered = tmp_path / f"tampered{suffix}"
    tampered.write_bytes(bytes(data))
    bad = pv.verify_c2pa(tampered)
    assert bad.state == "invalid" and any("mismatch" in e for e in bad.errors), bad


def test_thumbnails_are_off(c2pa_dir, tmp_path, clip):
    path = tmp_path / "clip.webp"
    videoio.write_video(path, clip, fps=16)
    size = path.stat().st_size
    pv.sign_file(path)
    assert path.stat().st_size - size < 20_000  # a thumbnail would add about as much as the file itself


def test_unsigned_and_unsupported_files_read_absent(c2pa_dir, tmp_path, clip):
    plain = tmp_path / "plain.mp4"
    videoio.write_video(plain, clip, fps=16)
    assert pv.verify_c2pa(plain).state == "absent"
    webm = tmp_path / "clip.webm"
    videoio.write_video(webm, clip, fps=16)
    report = pv.verify_c2pa(webm)
    assert report.state == "absent" and "not supported" in report.message
    with pytest.raises(pv.ProvenanceError, match="WebM"):
        pv.sign_file(webm)


def test_hashes_are_canonical():
    assert pv.sha256_json({"a": 1, "b": [1, 2]}) == pv.sha256_json('{"b": [1, 2], "a": 1}')
    assert pv.sha256_json({"a": 1}) != pv.sha256_json({"a": 2})
    assert pv.payload_for("x", "y") == pv.payload_for("x", "y") < 2**32


# ----- writing marked files and the report --------------------------------------------------------------------


def test_write_with_provenance_marks_signs_and_keeps_metadata(c2pa_dir, tmp_path, clip):
    path = tmp_path / "out" / "clip.mp4"
    written = pv.write_with_provenance(path, clip.float() / 255, fps=16, prompt_sha256=PROMPT_SHA,
                                       workflow_sha256=WORKFLOW_SHA, model="tiny", metadata={"prompt": "{}"})
    assert written.signed and written.development_certificate and written.watermark_payload is not None
    assert [p.name for p in path.parent.iterdir()] == ["clip.mp4"]  # no temporary files left
    assert videoio.read_metadata(path)["prompt"] == "{}"
    report = verify_file(path)
    assert report.watermark.found and report.watermark.payload == written.watermark_payload
    assert report.c2pa.state == "valid" and report.payload_matches_manifest is True
    data = report.to_dict()
    assert set(data) >= {"watermark", "c2pa"}
    assert data["watermark"]["found"] is True and isinstance(data["watermark"]["confidence"], float)
    assert data["watermark"]["payload"] == f"{written.watermark_payload:08x}"
    assert data["c2pa"]["state"] == "valid" and data["c2pa"]["generation"]["prompt_sha256"] == PROMPT_SHA
    text = report.to_text()
    assert "watermark: FOUND" in text and "trained algorithm" in text and "development certificate" in text
    assert "matches" in text


def test_webm_gets_the_watermark_and_a_note(c2pa_dir, tmp_path, clip):
    written = pv.write_with_provenance(tmp_path / "clip.webm", clip, fps=16)
    assert not written.signed and written.watermark_payload is not None
    assert any("WebM" in n or ".webm" in n for n in written.notes)
    assert wm.detect_watermark_file(written.path).payload == written.watermark_payload


def test_switched_off_means_nothing_is_found(c2pa_dir, tmp_path, clip):
    written = pv.write_with_provenance(tmp_path / "clip.mp4", clip, fps=16, watermark=False, c2pa=False)
    assert written.watermark_payload is None and not written.signed
    report = verify_file(written.path)
    assert not report.watermark.found and report.c2pa.state == "absent"
    assert "not found" in report.to_text() and report.payload_matches_manifest is None


def test_failed_signing_leaves_no_file(c2pa_dir, tmp_path, clip):
    _own_identity(c2pa_dir, eku=False)
    path = tmp_path / "clip.mp4"
    with pytest.raises(pv.ProvenanceError):
        pv.write_with_provenance(path, clip, fps=16)
    assert list(tmp_path.glob("*.mp4")) == [] and list(tmp_path.glob(".*")) == []


# ----- the command line ---------------------------------------------------------------------------------------


def test_cli_generate_marks_by_default_and_verify_json_reports_it(c2pa_dir, tmp_path, capsys):
    out = tmp_path / "gen.mp4"
    args = ["generate", "--prompt", "a red circle", "--out", str(out), "--frames", "17", "--steps", "2", "--quiet"]
    assert main(args) == 0
    assert "provenance: watermark" in capsys.readouterr().err
    assert main(["verify", "--json", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["watermark"]["found"] is True and data["watermark"]["confidence"] > 0.999999
    assert data["c2pa"]["state"] == "valid"
    assert data["c2pa"]["generation"]["prompt_sha256"] == pv.sha256_text("a red circle")
    assert data["payload_matches_manifest"] in (True, None)  # None: the mark is there but its payload unreadable


def test_cli_flags_switch_marks_off(c2pa_dir, tmp_path, capsys):
    out = tmp_path / "plain.mp4"
    assert main(["generate", "--prompt", "x", "--out", str(out), "--frames", "5", "--steps", "1", "--quiet",
                 "--no-watermark", "--no-c2pa"]) == 0
    assert main(["verify", "--json", str(out)]) == 0
    data = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert data["watermark"]["found"] is False and data["c2pa"]["state"] == "absent"


def test_python_m_verify_prints_a_report_and_fails_on_a_missing_file(c2pa_dir, tmp_path, clip):
    path = tmp_path / "clip.png"
    pv.write_with_provenance(path, make_clip("shapes", 1, 256, 256, seed=2), fps=16)
    proc = subprocess.run([sys.executable, "-m", "sora_core", "verify", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "watermark: FOUND" in proc.stdout and "C2PA:" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "sora_core", "verify", str(tmp_path / "nope.mp4")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no such file" in proc.stderr


def test_frames_stay_on_their_device(c2pa_dir, tmp_path):
    frames = torch.rand(5, 64, 64, 3)
    written = pv.write_with_provenance(tmp_path / "a.mp4", frames, fps=8)
    assert written.path.exists() and frames.device.type == "cpu"
