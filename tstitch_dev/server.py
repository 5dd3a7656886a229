"""A real ComfyUI server (the host's own main.py) on 127.0.0.1 for tests, the browser and the install checks.

Everything it reads and writes lives under one base directory: custom_nodes/ (this pack linked
in), models/, user/, input/, output/, temp/; the database is in memory.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from .comfy_env import PACK_DIR_NAME
from .host import PACK_ROOT, find_comfyui


TEXT_EVENT = (3).to_bytes(4, "big")  # ComfyUI's BinaryEventTypes.TEXT, as a websocket frame starts


class ServerError(RuntimeError):
    pass


class PromptRejected(ServerError):
    """POST /prompt answered with an error (400): ``body`` holds ``error`` and ``node_errors``."""

    def __init__(self, status: int, body: dict):
        super().__init__(f"/prompt answered {status}: {json.dumps(body)[:2000]}")
        self.status = status
        self.body = body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_base_directory(base: Path, link_pack: bool = True) -> Path:
    """Create a base directory with the pack linked into custom_nodes/ and a first-visit-free UI user."""
    (base / "custom_nodes").mkdir(parents=True, exist_ok=True)
    if link_pack and not (base / "custom_nodes" / PACK_DIR_NAME).exists():
        os.symlink(PACK_ROOT, base / "custom_nodes" / PACK_DIR_NAME, target_is_directory=True)
    settings = base / "user" / "default" / "comfy.settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    if not settings.exists():
        settings.write_text(json.dumps({"Comfy.TutorialCompleted": True}))
    return base


def link_model(base: Path, folder: str, name: str, path: Path) -> Path:
    """Put ``path`` into models/<folder>/ under the file name a workflow refers to."""
    target = base / "models" / folder / name
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_symlink() or target.exists():
        target.unlink()
    os.symlink(path, target)
    return target


class ComfyServer:
    def __init__(self, base: Path, host: Path | None = None, python: str = sys.executable, extra_args=(),
                 link_pack: bool = True):
        self.base = prepare_base_directory(base, link_pack)
        self.host = host or find_comfyui()
        self.python = python
        self.extra_args = list(extra_args)
        self.port = None
        self.process = None
        self.log_path = base / "server.log"
        self.client_id = uuid.uuid4().hex
        self.messages: list[dict] = []  # JSON websocket messages sent to this client, in order
        self._object_info = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> "ComfyServer":
        self.port = free_port()
        command = [self.python, str(self.host / "main.py"), "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                   "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:",
                   "--disable-api-nodes", "--disable-auto-launch", *self.extra_args]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, cwd=self.host, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"ComfyUI exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                self.get("/object_info/KSampler", timeout=5)
                self._listen()
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.stop()
        raise ServerError(f"ComfyUI did not answer within {timeout:.0f} s:\n{self.log_tail()}")

    def _listen(self) -> None:
        import websocket  # websocket-client

        socket_ = websocket.create_connection(f"ws://127.0.0.1:{self.port}/ws?clientId={self.client_id}", timeout=30)
        socket_.settimeout(None)  # quiet minutes between prompts are normal: wait for the next message

        def receive():
            while True:
                try:
                    message = socket_.recv()
                except Exception:  # closed with the server
                    return
                if isinstance(message, str):
                    self.messages.append(json.loads(message))
                elif message[:4] == TEXT_EVENT:  # progress text: node id length, node id, text
                    length = int.from_bytes(message[4:8], "big")
                    self.messages.append({"type": "progress_text", "data": {
                        "node": message[8:8 + length].decode(), "text": message[8 + length:].decode()}})

        threading.Thread(target=receive, daemon=True).start()

    def progress_texts(self, node_id: str) -> list[str]:
        """The progress texts a node showed over the websocket, in order."""
        return [m["data"]["text"] for m in list(self.messages)
                if m.get("type") == "progress_text" and m["data"]["node"] == node_id]

    def sampling_progress(self, prompt_id: str, node_id: str) -> int:
        """The last step a node reported for a prompt over the websocket (0 before its first)."""
        steps = [m["data"]["value"] for m in list(self.messages) if m.get("type") == "progress"
                 and m["data"].get("prompt_id") == prompt_id and m["data"].get("node") == node_id]
        return steps[-1] if steps else 0

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "ComfyServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def request(self, method: str, path: str, body=None, timeout: float = 30.0):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
        return json.loads(payload) if payload else None

    def get(self, path: str, timeout: float = 30.0):
        return self.request("GET", path, timeout=timeout)

    def post(self, path: str, body=None, timeout: float = 30.0):
        return self.request("POST", path, body if body is not None else {}, timeout=timeout)

    def object_info(self) -> dict:
        """GET /object_info, fetched once: node definitions do not change while a server runs."""
        if self._object_info is None:
            self._object_info = self.get("/object_info", timeout=60)
        return self._object_info

    def queue(self, api_prompt: dict) -> str:
        """Queue an API-format prompt; returns its prompt_id, raises PromptRejected on a validation error."""
        try:
            return self.post("/prompt", {"prompt": api_prompt, "client_id": self.client_id})["prompt_id"]
        except urllib.error.HTTPError as error:
            raise PromptRejected(error.code, json.loads(error.read() or b"{}")) from None

    def history(self, prompt_id: str) -> dict | None:
        return self.get(f"/history/{prompt_id}").get(prompt_id)

    def wait(self, prompt_id: str, timeout: float = 300.0) -> dict:
        """The history entry of a finished prompt (success or error)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = self.history(prompt_id)
            if entry and "status" in entry:  # ComfyUI writes history once a prompt has ended
                return entry
            if self.process.poll() is not None:
                raise ServerError(f"ComfyUI exited while running {prompt_id}:\n{self.log_tail()}")
            time.sleep(0.25)
        raise ServerError(f"prompt {prompt_id} did not finish within {timeout:.0f} s:\n{self.log_tail()}")

    def run(self, api_prompt: dict, timeout: float = 300.0) -> dict:
        return self.wait(self.queue(api_prompt), timeout)

    def is_running(self, prompt_id: str) -> bool:
        return any(item[1] == prompt_id for item in self.get("/queue")["queue_running"])

    def interrupt(self) -> None:
        self.post("/interrupt")

    def output_images(self, entry: dict) -> list[Path]:
        """Files the prompt's image outputs wrote, in node order."""
        paths = []
        for output in entry.get("outputs", {}).values():
            for image in output.get("images", []):
                folder = self.base / {"output": "output", "temp": "temp"}[image["type"]]
                paths.append(folder / image.get("subfolder", "") / image["filename"])
        return paths
