"""A real ComfyUI server with this repo installed as a custom node pack, for the tests in tests/comfy.

The server runs in its own environment (built by scripts/setup_comfy.sh into .comfy-test/, or $SORA_COMFY_DEST);
the tests talk to it only over HTTP and the websocket, as a user's script would.

    def test_x(comfy_server):
        entry = comfy_server.client.run({"1": {"class_type": ..., "inputs": {...}}})

If the setup fails, the tests fail, unless SORA_SKIP_COMFY=1 is set: then they are skipped with the reason.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.comfy.client import ComfyClient

REPO = Path(__file__).resolve().parents[2]
SETUP_SCRIPT = REPO / "scripts" / "setup_comfy.sh"
PACK_NAME = "comfyui_open_sora"  # the folder name under ComfyUI/custom_nodes/
SETUP_TIMEOUT_S = 30 * 60
START_TIMEOUT_S = 120


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test in this folder needs the server: mark it `comfy` (deselect with -m "not comfy")."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.comfy)


@dataclass
class ComfyServer:
    """The running server. Files a test writes under models_dir/<folder>/ show up in ComfyUI's loader lists."""

    base_url: str  # http://127.0.0.1:<port>
    port: int
    client: ComfyClient  # shared by the session; make your own with ComfyClient(base_url) if you need isolation
    comfy_dir: Path  # DEST/ComfyUI (main.py, comfy/, custom_nodes/)
    models_dir: Path  # DEST/ComfyUI/models: checkpoints/, vae/, text_encoders/, diffusion_models/, ...
    output_dir: Path  # --output-directory (per test session)
    input_dir: Path  # --input-directory (per test session)
    temp_dir: Path  # ComfyUI's temp folder (<--temp-directory>/temp)
    user_dir: Path  # --user-directory (per test session)
    pack_name: str  # "comfyui_open_sora": the pack's folder name under custom_nodes/
    pack_dir: Path  # DEST/ComfyUI/custom_nodes/comfyui_open_sora, a symlink to this repo
    log_path: Path  # the server's stdout and stderr
    python: Path  # the server's interpreter (DEST/venv/bin/python)
    process: subprocess.Popen = field(repr=False)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def pack_import_lines(self) -> list[str]:
        """Lines of ComfyUI's 'Import times for custom nodes' report that name this pack."""
        suffix = f"custom_nodes/{self.pack_name}"
        return [line for line in self.log_text().splitlines() if line.rstrip().endswith(suffix)]


def _comfy_dest() -> Path:
    return Path(os.environ.get("SORA_COMFY_DEST") or REPO / ".comfy-test").resolve()


def _run_setup(config: pytest.Config, dest: Path) -> tuple[int, str]:
    """Run setup_comfy.sh with its output shown live (a cold build takes a few minutes) and kept for errors."""
    tail: collections.deque[str] = collections.deque(maxlen=60)
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        proc = subprocess.Popen(
            ["bash", str(SETUP_SCRIPT), str(dest)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,  # its own process group, so the watchdog also stops pip
        )
        watchdog = threading.Timer(SETUP_TIMEOUT_S, os.killpg, (proc.pid, signal.SIGKILL))
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                tail.append(line.rstrip("\n"))
                sys.stderr.write(line)
            rc = proc.wait()
        finally:
            watchdog.cancel()
        if rc < 0:
            tail.append(f"[setup killed by signal {-rc}; the limit is {SETUP_TIMEOUT_S} s]")
    return rc, "\n".join(tail)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)


def _tail(path: Path, lines: int = 80) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


@pytest.fixture(scope="session")
def comfy_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComfyServer]:
    dest = _comfy_dest()
    rc, setup_log = _run_setup(request.config, dest)
    if rc != 0:
        msg = f"scripts/setup_comfy.sh {dest} failed (exit {rc}); last lines:\n{setup_log}"
        if os.environ.get("SORA_SKIP_COMFY") == "1":
            pytest.skip(f"SORA_SKIP_COMFY=1 and the ComfyUI test server could not be set up: {msg}")
        pytest.fail(msg + "\n(set SORA_SKIP_COMFY=1 to skip the ComfyUI tests instead)", pytrace=False)

    comfy_dir = dest / "ComfyUI"
    python = dest / "venv" / "bin" / "python"
    tmp = tmp_path_factory.mktemp("comfy")
    dirs = {name: tmp / name for name in ("output", "input", "user")}
    for d in dirs.values():
        d.mkdir()
    log_path = tmp / "server.log"
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    cmd = [
        str(python), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port), "--disable-auto-launch",
        "--output-directory", str(dirs["output"]), "--input-directory", str(dirs["input"]),
        "--temp-directory", str(tmp), "--user-directory", str(dirs["user"]),
        "--database-url", f"sqlite:///{dirs['user'] / 'comfyui.db'}",  # default is inside DEST/ComfyUI/user
        "--disable-api-nodes",  # the paid cloud nodes: useless offline, and 120 fewer classes to load
        "--preview-method", "latent2rgb",  # what the page's "Live preview" setting asks for; tests check previews
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, cwd=comfy_dir, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )

    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"ComfyUI exited with code {proc.returncode} before it answered; {log_path}:\n{_tail(log_path)}",
                    pytrace=False,
                )
            try:
                with urllib.request.urlopen(base_url + "/system_stats", timeout=2) as resp:
                    if resp.status == 200:
                        json.load(resp)
                        break
            except (urllib.error.URLError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"ComfyUI did not answer GET /system_stats within {START_TIMEOUT_S} s; {log_path}:\n"
                    f"{_tail(log_path)}",
                    pytrace=False,
                )
            time.sleep(0.25)

        client = ComfyClient(base_url)
        server = ComfyServer(
            base_url=base_url,
            port=port,
            client=client,
            comfy_dir=comfy_dir,
            models_dir=comfy_dir / "models",
            output_dir=dirs["output"],
            input_dir=dirs["input"],
            temp_dir=tmp / "temp",
            user_dir=dirs["user"],
            pack_name=PACK_NAME,
            pack_dir=comfy_dir / "custom_nodes" / PACK_NAME,
            log_path=log_path,
            python=python,
            process=proc,
        )
        try:
            yield server
        finally:
            client.close()
    finally:
        _stop(proc)
