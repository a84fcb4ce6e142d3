"""Open a page in headless Chromium and watch it over the DevTools protocol (a websocket).

Test helper for the report: `open_page(path)` returns what the page did while loading —
every network request it made, every JavaScript exception and console/log error, the
result of a JavaScript expression evaluated on it, and a full-page PNG screenshot. Chromium
is Debian's `chromium`, started with the flags the issue names plus `--remote-debugging-port`.

    with Chromium(tmp_path) as browser:
        page = browser.open(Path("report.html"), "document.title")
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--remote-debugging-port=0")


def _missing(message: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def chromium_or_skip() -> str:
    """The chromium binary (and websocket-client); missing: the test fails under CI=true
    and is skipped elsewhere."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        _missing("chromium is not installed (apt-get install -y chromium)")
    try:
        import websocket  # noqa: F401  (websocket-client)
    except ImportError:
        _missing("websocket-client is not installed (pip install websocket-client)")
    return path


@dataclass
class PageLoad:
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    value: object = None
    screenshot: bytes = b""


class Chromium:
    def __init__(self, workdir: Path, timeout: float = 60.0):
        self.binary = chromium_or_skip()
        self.profile = workdir / "chromium-profile"
        self.timeout = timeout
        self.process: subprocess.Popen | None = None
        self.ws = None
        self._id = 0
        self.events: list[dict] = []

    def __enter__(self) -> Chromium:
        import websocket  # websocket-client

        self.process = subprocess.Popen([self.binary, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = self._port()
        deadline = time.monotonic() + self.timeout
        while True:  # the page target appears shortly after the port file
            targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10))
            pages = [t for t in targets if t.get("type") == "page"]
            if pages or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert pages, f"no page target in {targets}"
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=self.timeout,
                                              suppress_origin=True)
        return self

    def __exit__(self, *exc) -> None:
        if self.ws is not None:
            self.ws.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _port(self) -> int:
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not port_file.exists() or not port_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"chromium did not start (exit code {self.process.poll()})")
            time.sleep(0.1)
        return int(port_file.read_text().split()[0])

    def call(self, method: str, **params) -> dict:
        self._id += 1
        self.ws.send(json.dumps({"id": self._id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv())
            if message.get("id") == self._id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def _wait_for(self, event: str) -> None:
        deadline = time.monotonic() + self.timeout
        while not any(e.get("method") == event for e in self.events):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {event} within {self.timeout}s")
            self.events.append(json.loads(self.ws.recv()))

    def open(self, path: Path, expression: str) -> PageLoad:
        """Load `path`, let it settle, evaluate `expression` (JSON-serialisable result) and
        take a full-page screenshot."""
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.call(f"{domain}.enable")
        self.events.clear()
        self.call("Page.navigate", url=path.resolve().as_uri())
        self._wait_for("Page.loadEventFired")
        time.sleep(0.5)  # anything the page would fetch after load
        value = self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")
        shot = self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        self.call("Runtime.evaluate", expression="0")  # drain events sent meanwhile
        return PageLoad(self._requests(), self._errors(), value, base64.b64decode(shot["data"]))

    def _requests(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def _errors(self) -> list[str]:
        errors = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                errors.append(details.get("exception", {}).get("description") or details.get("text", "exception"))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                errors.append(json.dumps(params.get("args", []))[:500])
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                errors.append(params["entry"].get("text", ""))
        return errors
