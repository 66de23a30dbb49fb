"""Drive a headless Chromium over the DevTools protocol on a pipe (``--remote-debugging-pipe``).

No WebDriver, no websocket library, no open debugging port: the browser reads commands from
file descriptor 3 and writes replies and events to file descriptor 4, as NUL-terminated JSON.
Used by ``tests/test_web.py`` and ``benchmarks/web.py``::

    with Chromium(extra_args=[...]) as browser:
        page = browser.new_page("http://127.0.0.1:8000/")
        page.evaluate("1 + 1")                      # -> 2
        png = page.screenshot()

The browser runs in its own process group, which :meth:`Chromium.close` kills whatever happens.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HEADLESS_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
)
CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """``$CHROMIUM`` or the first of :data:`CANDIDATES` on ``PATH`` (None if absent)."""
    env = os.environ.get("CHROMIUM")
    if env:
        return env if Path(env).exists() or shutil.which(env) else None
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def fake_microphone_flags(wav: str | Path) -> list[str]:
    """Flags that grant getUserMedia and feed it from ``wav`` (16-bit PCM WAV, looped)."""
    return ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"]


class BrowserError(RuntimeError):
    """The browser died, a command failed, or page JavaScript threw."""


class Chromium:
    """One headless Chromium with a fresh profile; talk to it with :meth:`send`."""

    def __init__(self, executable: str | None = None, extra_args: Sequence[str] = (),
                 window_size: tuple[int, int] = (1100, 900), log_path: str | Path | None = None
                 ) -> None:
        exe = executable or find_chromium()
        if exe is None:
            raise FileNotFoundError("chromium not found (Debian: apt-get install chromium)")
        self.profile = tempfile.mkdtemp(prefix="dwancodec-chromium-")
        cmd_r, self._cmd_w = os.pipe()
        self._resp_r, resp_w = os.pipe()
        args = [exe, *HEADLESS_FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={window_size[0]},{window_size[1]}",
                "--remote-debugging-pipe", *extra_args, "about:blank"]

        def child_fds() -> None:  # in the child before exec: the pipe ends become fds 3, 4
            high_r = fcntl.fcntl(cmd_r, fcntl.F_DUPFD_CLOEXEC, 10)  # out of the way of 3, 4
            high_w = fcntl.fcntl(resp_w, fcntl.F_DUPFD_CLOEXEC, 10)
            os.dup2(high_r, 3)  # inheritable: survive exec
            os.dup2(high_w, 4)

        self._log = open(log_path or os.devnull, "wb")  # noqa: SIM115 (closed in close())
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            close_fds=False, preexec_fn=child_fds, start_new_session=True,
        )
        os.close(cmd_r)
        os.close(resp_w)
        self._next = 0
        self._lock = threading.Lock()
        self._waiting: dict[int, queue.Queue[dict[str, Any]]] = {}
        self._children: dict[str, str] = {}  # worker session -> its page's session
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # protocol ---------------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._resp_r, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                for q in list(self._waiting.values()):
                    q.put({"error": {"message": "browser closed the DevTools pipe"}})
                return
            buf += chunk
            while b"\0" in buf:
                raw, buf = buf.split(b"\0", 1)
                msg = json.loads(raw)
                if "id" in msg and msg["id"] in self._waiting:
                    self._waiting.pop(msg["id"]).put(msg)
                elif "method" in msg:
                    if msg["method"] == "Target.attachedToTarget" and "sessionId" in msg:
                        # a worker of a page (auto-attach): watch it too, then let it run
                        child = msg["params"]["sessionId"]
                        self._children[child] = msg["sessionId"]
                        for method in ("Runtime.enable", "Network.enable",
                                       "Runtime.runIfWaitingForDebugger"):
                            self._post(method, {}, child)
                    self.events.put(msg)

    def _post(self, method: str, params: dict[str, Any], session: str | None) -> int:
        """Write one command without waiting for its reply; returns its id."""
        with self._lock:
            self._next += 1
            msg: dict[str, Any] = {"id": self._next, "method": method, "params": params}
            if session:
                msg["sessionId"] = session
            with contextlib.suppress(OSError):
                os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
            return self._next

    def send(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """Send one command; return its ``result`` (raises :class:`BrowserError`)."""
        with self._lock:
            self._next += 1
            mid = self._next
            q: queue.Queue[dict[str, Any]] = queue.Queue()
            self._waiting[mid] = q
            msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
            if session:
                msg["sessionId"] = session
            try:
                os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
            except OSError as e:
                self._waiting.pop(mid, None)
                raise BrowserError(f"browser gone ({e})") from None
        try:
            reply = q.get(timeout=timeout)
        except queue.Empty:
            self._waiting.pop(mid, None)
            raise BrowserError(f"{method}: no reply in {timeout:.0f} s") from None
        if "error" in reply:
            raise BrowserError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def new_page(self, url: str, timeout: float = 60.0) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.send("Page.enable")
        page.send("Runtime.enable")
        page.send("Network.enable")  # Page.requests: every URL the page and its workers fetch
        page.send("Target.setAutoAttach", {"autoAttach": True, "waitForDebuggerOnStart": True,
                                           "flatten": True})
        page.navigate(url, timeout)
        return page

    # lifetime ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Ask the browser to quit, then kill its process group; remove the profile."""
        if self.proc.poll() is None:
            with contextlib.suppress(BrowserError):
                self.send("Browser.close", timeout=5)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # renderer, GPU and utility processes too
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        for fd in (self._cmd_w, self._resp_r):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Page:
    """One tab, attached with a flat session; its workers are attached too, so
    :attr:`console` and :attr:`requests` cover them."""

    def __init__(self, browser: Chromium, session: str) -> None:
        self.browser = browser
        self.session = session
        self.console: list[str] = []
        self.requests: list[str] = []

    def send(self, method: str, params: dict[str, Any] | None = None,
             timeout: float = 60.0) -> dict[str, Any]:
        return self.browser.send(method, params, self.session, timeout)

    def _drain(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                ev = self.browser.events.get_nowait()
            except queue.Empty:
                return out
            sid = ev.get("sessionId")
            if self.browser._children.get(sid, sid) != self.session:
                continue
            if ev["method"] == "Runtime.consoleAPICalled":
                args = ev["params"].get("args", [])
                text = " ".join(str(a.get("value", a.get("description", ""))) for a in args)
                self.console.append(f"console.{ev['params'].get('type')}: {text}")
            elif ev["method"] == "Network.requestWillBeSent":
                self.requests.append(ev["params"]["request"]["url"])
            elif ev["method"] == "Runtime.exceptionThrown":
                d = ev["params"]["exceptionDetails"]
                self.console.append("exception: " + str(
                    d.get("exception", {}).get("description") or d.get("text")))
            out.append(ev)

    def navigate(self, url: str, timeout: float = 60.0) -> None:
        self._drain()
        self.send("Page.navigate", {"url": url})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in self._drain():
                if ev["method"] == "Page.loadEventFired":
                    return
            time.sleep(0.05)
        raise BrowserError(f"{url} did not load in {timeout:.0f} s")

    def evaluate(self, expression: str, timeout: float = 60.0, gesture: bool = True) -> Any:
        """Evaluate ``expression`` (awaiting a promise) and return its JSON value."""
        r = self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
            "userGesture": gesture, "timeout": int(timeout * 1000),
        }, timeout=timeout + 5)
        self._drain()
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise BrowserError(f"page script failed: {text}")
        return r.get("result", {}).get("value")

    def screenshot(self) -> bytes:
        """A PNG of the whole page."""
        metrics = self.send("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        data = self.send("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1},
        })["data"]
        return base64.b64decode(data)

    def messages(self) -> list[str]:
        """Console messages and uncaught exceptions seen so far."""
        self._drain()
        return list(self.console)
