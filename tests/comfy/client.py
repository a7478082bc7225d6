"""A small ComfyUI client that talks to a server the way a user's script does: HTTP plus the /ws websocket.

    client = ComfyClient("http://127.0.0.1:8188")
    entry = client.run(api_graph, timeout=60)          # queue, wait, raise if the run did not succeed
    pid = client.queue_prompt(api_graph)               # raises PromptRejected on HTTP 400 (validation errors)
    entry = client.wait(pid, timeout=60)               # the /history entry, plus entry["ws_messages"]

Only the standard library and `websocket-client` are needed.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

import websocket

# Websocket message types that say how a prompt's run ended.
FINAL_TYPES = ("execution_success", "execution_error", "execution_interrupted")


def _is_end(msg: dict) -> bool:
    """ComfyUI's last message for a prompt, sent after its /history entry is written: executing with node None."""
    return msg["type"] == "executing" and (msg.get("data") or {}).get("node") is None


class PromptRejected(Exception):
    """POST /prompt answered 400: the graph failed validation and nothing was queued.

    `body` is the parsed JSON answer: {"error": {"type", "message", "details", "extra_info"}, "node_errors": {...}}.
    """

    def __init__(self, status: int, body: Any) -> None:
        self.status = status
        self.body = body
        body = body if isinstance(body, dict) else {}
        self.error: dict = body.get("error") or {}
        self.node_errors: dict = body.get("node_errors") or {}
        super().__init__(f"ComfyUI rejected the prompt (HTTP {status}): {json.dumps(self.body)[:2000]}")


class ExecutionFailed(Exception):
    """A queued prompt ended in execution_error or execution_interrupted (see `entry` and `message`)."""

    def __init__(self, entry: dict) -> None:
        self.entry = entry
        final = [m for m in entry.get("ws_messages", []) if m["type"] in FINAL_TYPES]
        if not final:  # messages missed on the websocket: history holds the same record
            final = [{"type": t, "data": d} for t, d in entry.get("status", {}).get("messages", []) if t in FINAL_TYPES]
        self.message: dict = final[-1] if final else {}
        data = self.message.get("data", {})
        super().__init__(
            f"prompt {data.get('prompt_id')} ended with {self.message.get('type', 'unknown status')} in node "
            f"{data.get('node_id')} ({data.get('node_type')}): {data.get('exception_type', '')}: "
            f"{data.get('exception_message', '')}\n{''.join(data.get('traceback') or [])}"
        )


class ComfyClient:
    def __init__(self, base_url: str, http_timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http_timeout = http_timeout
        self.client_id = uuid.uuid4().hex
        self._ws: websocket.WebSocket | None = None
        # Messages for prompts other than the one being waited for, kept until their wait() comes.
        self._pending: dict[str, list[dict]] = {}
        self.binary_frames = 0  # preview images received on the websocket
        self.last_binary_frame: bytes = b""  # ComfyUI's framing: event type, image type (big-endian u32), image

    # --- HTTP -------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, query: dict | None = None) -> tuple[int, bytes]:
        url = self.base_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.http_timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def get_json(self, path: str, query: dict | None = None) -> Any:
        status, raw = self._request("GET", path, query=query)
        if status != 200:
            raise RuntimeError(f"GET {path} answered HTTP {status}: {raw[:2000]!r}")
        return json.loads(raw)

    def system_stats(self) -> dict:
        return self.get_json("/system_stats")

    def object_info(self, node: str | None = None) -> dict:
        """All node definitions ({class_type: info}), or with `node` that node's info (KeyError if unknown)."""
        if node is None:
            return self.get_json("/object_info")
        info = self.get_json(f"/object_info/{urllib.parse.quote(node, safe='')}")
        if node not in info:
            raise KeyError(f"ComfyUI has no node {node!r} (is the pack loaded? see the server log)")
        return info[node]

    def history(self, prompt_id: str) -> dict | None:
        """The /history entry of a finished prompt, or None while it is queued or running."""
        return self.get_json(f"/history/{prompt_id}").get(prompt_id)

    def queue(self) -> dict:
        return self.get_json("/queue")

    def interrupt(self, prompt_id: str | None = None) -> None:
        """Interrupt the running prompt (only that one if `prompt_id` is given and it is the one running)."""
        status, raw = self._request("POST", "/interrupt", body={"prompt_id": prompt_id} if prompt_id else {})
        if status != 200:
            raise RuntimeError(f"POST /interrupt answered HTTP {status}: {raw[:2000]!r}")

    def view(self, filename: str, subfolder: str = "", type: str = "output") -> bytes:
        """The bytes of an output/temp/input file, as the UI fetches it (GET /view)."""
        query = {"filename": filename, "subfolder": subfolder, "type": type}
        status, raw = self._request("GET", "/view", query=query)
        if status != 200:
            raise FileNotFoundError(f"GET /view {query} answered HTTP {status}: {raw[:500]!r}")
        return raw

    def queue_prompt(self, api_graph: dict) -> str:
        """POST /prompt; returns the prompt id. Raises PromptRejected (with node_errors) on HTTP 400."""
        self._connect()  # before queuing, so no message of this prompt is missed
        status, raw = self._request("POST", "/prompt", body={"prompt": api_graph, "client_id": self.client_id})
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        if status == 400:
            raise PromptRejected(status, body)
        if status != 200 or not isinstance(body, dict) or "prompt_id" not in body:
            raise RuntimeError(f"POST /prompt answered HTTP {status}: {str(body)[:2000]}")
        return body["prompt_id"]

    # --- websocket ----------------------------------------------------------------------------------------------
    def _connect(self) -> websocket.WebSocket:
        if self._ws is None or not self._ws.connected:
            ws_url = "ws" + self.base_url[len("http") :] + f"/ws?clientId={self.client_id}"
            self._ws = websocket.create_connection(ws_url, timeout=self.http_timeout)
        return self._ws

    def wait(self, prompt_id: str, timeout: float = 120.0, on_message: Callable[[dict], None] | None = None) -> dict:
        """Wait until the prompt finishes; returns its /history entry with entry["ws_messages"] added.

        ws_messages are this prompt's websocket messages in order, each {"type": ..., "data": ...}: execution_start,
        execution_cached, executing, progress, progress_state, executed, one of execution_success /
        execution_error / execution_interrupted, and last executing with node None. Binary frames (previews) are only
        counted (binary_frames). Does not raise when the run failed; look at entry["status"]["status_str"] or use run().
        """
        ws = self._connect()
        messages = self._pending.pop(prompt_id, [])
        deadline = time.monotonic() + timeout
        done = any(_is_end(m) for m in messages)
        while not done:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(
                    f"prompt {prompt_id} did not finish within {timeout} s; last messages: "
                    f"{[m['type'] for m in messages[-10:]]}; queue: {self.queue()}"
                )
            ws.settimeout(min(left, 1.0))
            try:
                frame = ws.recv()
            except websocket.WebSocketTimeoutException:
                # A quiet second: the run may have ended before we listened; history then has it.
                if self.history(prompt_id) is not None:
                    break
                continue
            if isinstance(frame, bytes):  # preview image
                self.binary_frames += 1
                self.last_binary_frame = frame
                continue
            msg = json.loads(frame)
            data = msg.get("data") or {}
            pid = data.get("prompt_id")
            if pid is None:  # e.g. "status" (queue size), not tied to a prompt
                continue
            if pid != prompt_id:
                self._pending.setdefault(pid, []).append(msg)
                continue
            messages.append(msg)
            if on_message is not None:
                on_message(msg)
            done = _is_end(msg)
        # Normally already there (the end message comes after it); after a missed end, give it a moment.
        while (entry := self.history(prompt_id)) is None:
            if time.monotonic() > deadline + 10:
                raise TimeoutError(f"prompt {prompt_id} finished but has no /history entry")
            time.sleep(0.05)
        entry["ws_messages"] = messages
        return entry

    def run(self, api_graph: dict, timeout: float = 120.0) -> dict:
        """queue_prompt + wait; raises ExecutionFailed unless the run ended in execution_success."""
        entry = self.wait(self.queue_prompt(api_graph), timeout)
        if entry.get("status", {}).get("status_str") != "success":
            raise ExecutionFailed(entry)
        return entry

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()
            self._ws = None

    def __enter__(self) -> ComfyClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
