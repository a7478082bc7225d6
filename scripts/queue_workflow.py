"""Queue an API-format workflow on a running ComfyUI server and wait for its outputs (standard library only).

    python scripts/queue_workflow.py workflows/api/sora_text_to_video.json \
        [--server http://127.0.0.1:8188] [--set 6.text="a blue square moves up"] [--set 3.seed=7]

`--set NODE.INPUT=VALUE` overrides one input of the graph (VALUE is read as JSON when it parses, else as
text). Prints each output file's path inside ComfyUI's output folder and its /view URL; exits 1 when the
server rejects the workflow (its node_errors are printed) or the run fails.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path


def _request(url: str, payload: dict | None = None) -> dict:
    data = json.dumps(payload).encode() if payload is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def _apply_override(graph: dict, spec: str) -> None:
    target, _, raw = spec.partition("=")
    node_id, _, name = target.partition(".")
    if node_id not in graph or not name or not _:
        raise SystemExit(f"--set {spec!r}: use NODE.INPUT=VALUE with a node id of the workflow ({sorted(graph)})")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    graph[node_id]["inputs"][name] = value


def queue_and_wait(server: str, graph: dict, timeout: float = 600.0) -> dict:
    """POST the graph to /prompt, poll /history until it finishes; returns the history entry."""
    body = {"prompt": graph, "client_id": uuid.uuid4().hex}
    try:
        prompt_id = _request(f"{server}/prompt", body)["prompt_id"]
    except urllib.error.HTTPError as exc:  # 400: the workflow is invalid; the body says which input
        detail = json.loads(exc.read() or b"{}")
        raise SystemExit(f"rejected: {json.dumps(detail, indent=2)}") from None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        entry = _request(f"{server}/history/{prompt_id}").get(prompt_id)
        if entry and entry.get("status", {}).get("completed") is not None:
            return entry
        time.sleep(0.5)
    raise SystemExit(f"prompt {prompt_id} did not finish within {timeout} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workflow", type=Path, help="an API-format workflow (workflows/api/*.json)")
    parser.add_argument("--server", default="http://127.0.0.1:8188")
    parser.add_argument("--set", action="append", default=[], metavar="NODE.INPUT=VALUE")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run")
    args = parser.parse_args(argv)
    graph = json.loads(args.workflow.read_text())
    for spec in args.set:
        _apply_override(graph, spec)
    entry = queue_and_wait(args.server.rstrip("/"), graph, args.timeout)
    if entry["status"].get("status_str") != "success":
        errors = [m for m in entry["status"].get("messages", []) if m[0] == "execution_error"]
        print(f"failed: {json.dumps(errors[-1][1] if errors else entry['status'], indent=2)}", file=sys.stderr)
        return 1
    for output in entry["outputs"].values():
        for item in [i for key in ("images", "gifs", "videos") for i in output.get(key, [])]:
            query = urllib.parse.urlencode({k: item.get(k, "") for k in ("filename", "subfolder", "type")})
            print(f"{Path(item.get('subfolder', ''), item['filename'])}\t{args.server.rstrip('/')}/view?{query}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
