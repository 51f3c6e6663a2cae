"""A small blocking JSON client for the API, and a local server started in a subprocess.

For scripts, the end-to-end tests and ``benchmarks/api.py``: :func:`start_server` runs the real
``dissensus api`` command on a free port and waits until it answers, so requests go over TCP to
uvicorn as a labeling platform's would. Standard library only (no HTTP client dependency).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dissensus(db: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the ``dissensus`` command on ``db`` (exit code not checked)."""
    env = {**os.environ, "COLUMNS": "200", "DISSENSUS_DB": str(db)}
    return subprocess.run([sys.executable, "-m", "dissensus.analytics.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Answer:
    """An HTTP answer: status, parsed JSON body (or None) and headers."""

    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Server:
    """A running server: its URL, warehouse, process and log file."""

    url: str
    db: Path
    process: subprocess.Popen[bytes]
    log: Path
    token: str | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                content_type: str | None = "application/json", token: str | None = None,
                timeout: float = 120) -> Answer:
        """One request; ``token`` overrides the server's default token ("" sends none)."""
        headers = {"Content-Type": content_type} if content_type and body is not None else {}
        bearer = self.token if token is None else token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as response:
                raw, status, got = response.read(), response.status, dict(response.headers)
        except urllib.error.HTTPError as error:
            raw, status, got = error.read(), error.code, dict(error.headers)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw.decode(errors="replace")
        return Answer(status, parsed, got)

    def get(self, path: str, **kwargs: Any) -> Answer:
        return self.request("GET", path, **kwargs)

    def post_rows(self, rows: list[dict], **kwargs: Any) -> Answer:
        return self.request("POST", "/v1/comparisons", json.dumps(rows).encode(), **kwargs)

    def comparisons(self) -> int:
        """Rows stored, from /healthz."""
        return int(self.get("/healthz").body["comparisons"])

    def wait_for_snapshot(self, timeout: float = 60) -> dict[str, Any]:
        """Wait until the read snapshot (what the dashboards read meanwhile) holds every change
        made so far: ``/healthz`` reports its data version at or past the current one. The
        health answer; ``TimeoutError`` if it does not catch up in ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        target: int | None = None
        while True:
            health = self.get("/healthz").body
            target = health["version"] if target is None else target
            copied = (health.get("snapshot") or {}).get("version")
            if copied is not None and copied >= target:
                return health
            if time.monotonic() > deadline:
                raise TimeoutError(f"the snapshot did not catch up in {timeout:.0f} s: {health}")
            time.sleep(0.1)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop the server (SIGTERM: graceful; SIGKILL: as a crash); its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def start_server(db: Path, *args: str, token: str | None = None, wait: float = 60) -> Server:
    """Start ``dissensus api`` on ``db`` on a free port and wait until /healthz answers."""
    port = free_port()
    log = db.with_name(db.name + f".server-{port}.log")
    env = {**os.environ, "DISSENSUS_DB": str(db)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dissensus.analytics.cli", "api", "--port", str(port), *args],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    server = Server(f"http://127.0.0.1:{port}", db, process, log, token)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n"
                               + log.read_text())
        try:
            if server.get("/healthz", timeout=2).status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.stop(signal.SIGKILL)
    raise RuntimeError("the server did not answer /healthz in time:\n" + log.read_text())
