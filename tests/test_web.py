"""``dwancodec web``: the codec running in a real headless Chromium on onnxruntime-web (WASM).

The server is the real console command (``python -m dwancodec.cli web --port 0``), the browser is
Debian's ``chromium`` driven over the DevTools pipe (:mod:`dwancodec.web.chromium`), and the
microphone is Chromium's fake capture device fed from ``tests/data/speech_en.flac``. What the page
computes is compared with the Python ONNX Runtime path (:class:`dwancodec.runtime.OnnxCodec`) on
the same input:

- codes: equal. The only difference allowed is a rounding tie: a frame whose codes differ must
  have encoder latents that agree to float error (max |difference| <= 1e-4 x their scale), i.e.
  the two runtimes computed the same quantizer input and it sits on a decision boundary; at most
  1 % of the frames. (Seen: 0 differences on the shipped model; latents agree to ~1e-5.)
- decoded audio: the browser's decode of its own codes equals the Python decode of those same
  codes to 1e-4 (so a tie cannot hide a decoder difference), and the Python decode of the Python
  codes wherever no tie occurred.
- live: a few seconds from the fake microphone through AudioWorklet -> resampler -> encoder ->
  packets -> decoder; the recorded encoder input is the speech file (correlation), the live codes
  and decode follow the same rules, and the page's real-time factor is below 1.

The same comparison on a second, different model (the tiny config exported with 2 frames per
step, 3 stages of 60 codes, TorchScript exporter, plain graphs) shows the page follows the
sidecar, not the shipped architecture.

Skipped (with the reason) only when Chromium is not installed and DWANCODEC_REQUIRE_BROWSER is
unset; ``.ci/run`` installs it and sets the variable, so CI fails instead. onnxruntime-web is set
up with the documented ``dwancodec web --setup`` when missing.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from dwancodec.audio import load_audio
from dwancodec.bundled import shipped_onnx_dir
from dwancodec.web.chromium import Chromium, Page, fake_microphone_flags, find_chromium
from dwancodec.web.runtime import FILES, RuntimeMissing, WebRuntime, find_runtime, setup_runtime
from dwancodec.web.server import WebServer

from .conftest import DATA

REQUIRE = bool(os.environ.get("DWANCODEC_REQUIRE_BROWSER"))
SPEECH = DATA / "speech_en.flac"  # 4 s, 16 kHz
CLI = [sys.executable, "-m", "dwancodec.cli"]
LIVE_SECONDS = 4.0


# ------------------------------------------------------------------------------------------
# helpers


def _b64(x: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(x).tobytes()).decode()


def _unb64(s: str, dtype: type) -> np.ndarray:
    return np.frombuffer(base64.b64decode(s), dtype)


def _stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process group, then SIGKILL; always reaps."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=wait)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the group


class Server:
    """``dwancodec web --port 0`` in its own process group; the URL from its first line."""

    def __init__(self, *args: str | Path, timeout: float = 60) -> None:
        # stderr to a file, never a pipe that can fill up; closed in close()
        self.log = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*CLI, "web", "--port", "0", "--quiet", *map(str, args)], stdout=subprocess.PIPE,
            stderr=self.log, text=True, start_new_session=True,
        )
        try:
            sel = selectors.DefaultSelector()
            sel.register(self.proc.stdout, selectors.EVENT_READ)  # type: ignore[arg-type]
            line = self.proc.stdout.readline().strip() if sel.select(timeout) else ""  # type: ignore[union-attr]
            if not line.startswith("serving http://"):
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(timeout=5)
                self.log.seek(0)
                raise AssertionError(f"dwancodec web did not start: {line!r} {self.log.read()}")
            self.url = line.split()[-1]
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        _stop_group(self.proc)
        self.log.close()


def _cli(*args: str | Path, timeout: float = 60, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=None if env is None else {**os.environ, **env})


def _assert_user_error(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert lines[0].startswith("dwancodec web: error: "), lines
    for w in words:
        assert w in lines[0], (w, lines[0])


def python_reference(codec: Any, x: np.ndarray, nq: int) -> tuple[np.ndarray, np.ndarray,
                                                                   np.ndarray]:
    """Streaming encode (push + flush) of ``x``: codes [nq, F], latents [D, F], decode [F*hop]."""
    enc = codec.streaming_encoder(1, n_q=nq)
    c1, l1 = enc.push(x[None], with_latents=True)
    c2, l2 = enc.flush(with_latents=True)
    codes, lat = np.concatenate([c1, c2], -1)[0], np.concatenate([l1, l2], -1)[0]
    return codes, lat, python_decode(codec, codes)


def python_decode(codec: Any, codes: np.ndarray) -> np.ndarray:
    dec = codec.streaming_decoder(1)
    return np.concatenate([dec.push(codes[None].astype(np.int64)), dec.flush()], -1)[0]


def assert_codes_match(browser: np.ndarray, python: np.ndarray, lat_b: np.ndarray | None,
                       lat_p: np.ndarray) -> np.ndarray:
    """The rule of the module docstring; returns the mask of frames that differ (ties)."""
    assert browser.shape == python.shape, (browser.shape, python.shape)
    differ = (browser != python).any(axis=0)
    if differ.any():
        assert lat_b is not None, "codes differ and the page exposed no latents"
        scale = float(np.abs(lat_p).max())
        gap = np.abs(lat_b - lat_p)[:, differ].max()
        assert gap <= 1e-4 * scale, (
            f"{differ.sum()} frame(s) differ ({np.flatnonzero(differ)[:10]}) and their latents "
            f"differ by {gap:.2e} (scale {scale:.2f}): not a rounding tie"
        )
        assert differ.mean() <= 0.01, f"{differ.sum()} of {differ.size} frames differ"
    return differ


def assert_audio_match(browser: np.ndarray, codec: Any, codes_b: np.ndarray,
                       ref: np.ndarray, differ: np.ndarray, hop: int) -> float:
    """Browser decode == Python decode of the browser's codes; == Python's own decode up to the
    first tie. Returns the max abs difference to the Python decode of the browser codes."""
    mine = python_decode(codec, codes_b)
    assert browser.shape == mine.shape
    err = float(np.abs(browser - mine).max())
    assert err <= 1e-4, f"browser decode differs from the Python decode by {err:.2e}"
    first_tie = int(np.argmax(differ)) if differ.any() else differ.size
    n = first_tie * hop
    if n:
        err_own = float(np.abs(browser[:n] - ref[:n]).max())
        assert err_own <= 1e-4, f"browser decode differs from Python's own by {err_own:.2e}"
    return err


# ------------------------------------------------------------------------------------------
# without a browser: the command's errors, the server's routes, the wheel


def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    _assert_user_error(_cli("web", "--model", empty), "no ONNX step graphs", "dwancodec export")
    _assert_user_error(_cli("web", "--model", tmp_path / "nope"), "does not exist")
    _assert_user_error(_cli("web", "--runtime-dir", empty), "not set up", "dwancodec web --setup")
    broken = tmp_path / "broken"
    broken.mkdir()
    meta = json.loads((shipped_onnx_dir() / "dwancodec_onnx.json").read_text())
    (broken / "dwancodec_onnx.json").write_text(json.dumps(meta))  # graphs not copied
    _assert_user_error(_cli("web", "--model", broken), "lacks encoder_step.onnx")
    fake_rt = _fake_runtime(tmp_path / "rt")
    _assert_user_error(_cli("web", "--setup", "--runtime-dir", tmp_path / "rt2",
                            env={"PATH": str(tmp_path)}), "npm not found")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        _assert_user_error(_cli("web", "--port", str(port), "--runtime-dir", fake_rt),
                           "already in use", "--port")


def _fake_runtime(d: Path) -> Path:
    """A folder with placeholder runtime files: enough for the server, not for a browser."""
    d.mkdir()
    for f in FILES:
        (d / f).write_text(f"// placeholder {f}\n")
    return d


def test_server_routes(tmp_path: Path) -> None:
    """Only the page, the sidecar + the two graphs it names, and the runtime files are served,
    with the cross-origin isolation headers."""
    fake = _fake_runtime(tmp_path / "rt")
    with WebServer(shipped_onnx_dir(), find_runtime(fake), port=0).start() as srv:
        def get(path: str) -> tuple[int, dict[str, str], bytes]:
            try:
                with urllib.request.urlopen(srv.url.rstrip("/") + path, timeout=10) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), b""

        status, headers, body = get("/")
        assert status == 200 and b"static/app.js" in body
        assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
        assert headers["Cross-Origin-Embedder-Policy"] == "require-corp"
        status, _, body = get("/model/dwancodec_onnx.json")
        assert status == 200 and json.loads(body)["format"] == "dwancodec-onnx"
        for name in ("encoder_step.onnx", "decoder_step.onnx"):
            status, headers, body = get(f"/model/{name}")
            assert status == 200 and body == (shipped_onnx_dir() / name).read_bytes()
        status, headers, _ = get("/ort/ort-wasm-simd-threaded.wasm")
        assert status == 200 and headers["Content-Type"] == "application/wasm"
        for path in ("/model/../config.json", "/model/model.safetensors", "/static/../server.py",
                     "/ort/../../etc/passwd", "/nope"):
            assert get(path)[0] == 404, path


def test_package_ships_no_runtime() -> None:
    """The WASM runtime comes from npm into a cache folder, never from the package."""
    pkg = Path(__file__).parents[1] / "dwancodec"
    shipped = [p for p in pkg.rglob("*") if p.suffix == ".wasm" or p.name.startswith("ort")]
    assert shipped == []
    static = sorted(p.name for p in (pkg / "web" / "static").iterdir())
    assert static == sorted(["app.js", "codec.js", "dsp.js", "index.html", "style.css",
                             "worker.js", "worklet.js"])


# ------------------------------------------------------------------------------------------
# in Chromium


@pytest.fixture(scope="module")
def chromium_path() -> str:
    exe = find_chromium()
    if exe is None:
        if REQUIRE:
            pytest.fail("chromium is not installed but DWANCODEC_REQUIRE_BROWSER is set "
                        "(Debian: apt-get install chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); set "
                    "DWANCODEC_REQUIRE_BROWSER=1 to fail instead of skipping")
    return exe


@pytest.fixture(scope="module")
def runtime(chromium_path: str) -> WebRuntime:
    try:
        return find_runtime()
    except RuntimeMissing:
        return setup_runtime()  # what `dwancodec web --setup` does (npm pack)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    x, _ = load_audio(SPEECH, 16000)
    return np.ascontiguousarray(x, dtype=np.float32)


@pytest.fixture(scope="module")
def browser(chromium_path: str, runtime: WebRuntime, speech: np.ndarray,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    wav = tmp_path_factory.mktemp("mic") / "speech_en.wav"
    sf.write(wav, speech, 16000, subtype="PCM_16")  # the fake microphone loops this file
    log = wav.parent / "chromium.log"
    b = Chromium(chromium_path, extra_args=fake_microphone_flags(wav), log_path=log)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture(scope="module")
def page(browser: Chromium, runtime: WebRuntime) -> Iterator[Page]:
    server = Server()
    try:
        p = browser.new_page(server.url)
        try:
            p.evaluate("window.dwancodec.ready.then(() => true)", timeout=120)
        except Exception as e:
            raise AssertionError(f"the page did not get ready: {e}\n"
                                 + "\n".join(p.messages())) from None
        yield p
        assert not [m for m in p.messages() if m.startswith("exception")], p.messages()
    finally:
        server.close()


@pytest.fixture(scope="module")
def shipped() -> Any:
    from dwancodec.runtime import OnnxCodec

    return OnnxCodec(num_threads=1)


def _browser_encode_decode(page: Page, x: np.ndarray, nq: int
                           ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, dict[str, Any]]:
    r = page.evaluate(f"window.dwancodecTest.encodeDecode('{_b64(x)}', {nq})", timeout=240)
    f = r["frames"]
    codes = _unb64(r["codes"], np.int32).reshape(nq, f)
    lat = _unb64(r["latents"], np.float32).reshape(-1, f) if r["latents"] else None
    return codes, _unb64(r["audio"], np.float32), lat, r


@pytest.mark.parametrize("nq", [8, 2])
def test_browser_matches_python_runtime(page: Page, shipped: Any, speech: np.ndarray,
                                        nq: int) -> None:
    info = page.evaluate("window.dwancodec.info")
    assert info["identity"] == shipped.identity and info["crossOriginIsolated"]
    codes, audio, lat, r = _browser_encode_decode(page, speech, nq)
    ref_codes, ref_lat, ref_audio = python_reference(shipped, speech, nq)
    assert r["frames"] == -(-len(speech) // shipped.hop_length)
    differ = assert_codes_match(codes, ref_codes, lat, ref_lat)
    assert_audio_match(audio, shipped, codes, ref_audio, differ, shipped.hop_length)
    assert float(np.sqrt(np.mean(audio ** 2))) > 0.01  # real speech came out
    ms = r["computeMs"] / r["frames"]
    print(f"\nbrowser n_q={nq}: {ms:.2f} ms per 20 ms frame (encoder + decoder), "
          f"{differ.sum()} tie frame(s) of {r['frames']}")


def _best_ncc(haystack: np.ndarray, needle: np.ndarray) -> float:
    """Max normalised cross-correlation of ``needle`` over all offsets in ``haystack``."""
    n, m = len(haystack), len(needle)
    size = 1 << (n + m).bit_length()
    cc = np.fft.irfft(np.fft.rfft(haystack, size) * np.conj(np.fft.rfft(needle, size)), size)
    cc = cc[: n - m + 1]
    energy = np.sqrt(np.maximum(np.convolve(haystack ** 2, np.ones(m), "valid"), 1e-12))
    return float(np.max(cc / (energy * np.linalg.norm(needle))))


def test_live_microphone(page: Page, shipped: Any, speech: np.ndarray) -> None:
    nq = 4
    page.evaluate(f"window.dwancodec.setStages({nq})")
    page.evaluate("window.dwancodec.start().then(() => true)", timeout=60)
    time.sleep(LIVE_SECONDS)
    live = page.evaluate("window.dwancodec.stats()")
    stopped = page.evaluate("window.dwancodec.stop()", timeout=60)
    rec = page.evaluate("window.dwancodecTest.record()", timeout=60)
    assert live["running"] and not live["errors"], live
    s, io = stopped, stopped["io"]
    print(f"\nlive: {s['frames']} frames in {s['wallSeconds']:.1f} s at {s['ctxRate']} Hz, "
          f"{s['meanMs']:.2f} ms per frame (p95 {s['p95Ms']:.2f}), RTF {s['rtf']:.3f}, "
          f"{io['underruns']} underrun(s), {io['dropped']} sample(s) dropped, "
          f"{s['kbps']:.2f} kbps ({s['packedKbps']:.2f} packed)")
    # the loop ran in real time on the fake microphone, faster than real time
    assert s["frames"] >= 0.6 * LIVE_SECONDS * shipped.frame_rate, s
    assert s["rtf"] < 1.0, s
    assert s["nq"] == nq and abs(s["kbps"] - shipped.bitrate(nq) / 1000) < 1e-9
    assert 0.9 < s["packedKbps"] / s["kbps"] < 1.1
    assert isinstance(io["underruns"], int) and io["received"] > 0
    # the encoder got the speech file, through Chromium's capture and the page's resampler
    f, hop, n_enc = rec["frames"], shipped.hop_length, rec["encoderNq"]
    x = _unb64(rec["input"], np.float32)
    assert f >= 0.6 * LIVE_SECONDS * shipped.frame_rate and len(x) == f * hop
    assert set(rec["nq"]) == {nq}
    mid = x[len(x) // 4: 3 * len(x) // 4]
    assert np.sqrt(np.mean(mid ** 2)) > 0.01, "the fake microphone delivered silence"
    # Short pieces, each matched on its own: a capture glitch (an underrun, dropped samples)
    # shifts everything after it, so one long window straddling it correlates at no single
    # offset; the median over pieces says whether the input is the file.
    pieces = [p for p in np.split(mid[: len(mid) // 2000 * 2000], len(mid) // 2000)
              if np.sqrt(np.mean(p ** 2)) > 0.01]
    assert len(pieces) >= 4, f"only {len(pieces)} voiced 125 ms piece(s) in the live input"
    haystack = np.tile(speech, 3)
    ncc = float(np.median([_best_ncc(haystack, p) for p in pieces]))
    assert ncc > 0.95, f"the live input is not the speech file (median correlation {ncc:.3f})"
    # live codes and decode follow the same rules as the file path
    codes = _unb64(rec["codes"], np.int32).reshape(f, n_enc).T  # recorded frame-major
    lat = _unb64(rec["latents"], np.float32).reshape(f, -1).T
    enc = shipped.streaming_encoder(1)
    ref_codes, ref_lat = enc.push(x[None], with_latents=True)  # whole frames: nothing to flush
    differ = assert_codes_match(codes, ref_codes[0], lat, ref_lat[0])
    audio = _unb64(rec["audio"], np.float32)
    assert_audio_match(audio, shipped, codes[:nq], python_decode(shipped, ref_codes[0, :nq]),
                       differ, hop)
    print(f"live codes: {f} frames x {n_enc} stages, {differ.sum()} tie frame(s); input "
          f"correlation with the file {ncc:.3f}")


def test_page_fetches_only_from_its_server(page: Page) -> None:
    """No CDN or other host: the page, its worker and worklet load everything from the server
    (the onnxruntime-web files from the set-up cache folder)."""
    page.messages()  # collect pending events
    base = page.evaluate("location.origin") + "/"
    urls = page.requests
    assert any(u.endswith("/ort/ort-wasm-simd-threaded.wasm") for u in urls), urls
    assert any(u.endswith("/model/decoder_step.onnx") for u in urls), urls
    assert any(u.endswith("/static/worklet.js") for u in urls), urls
    elsewhere = [u for u in urls if not u.startswith((base, "data:", "blob:"))]
    assert elsewhere == [], elsewhere


def test_follows_the_sidecar_of_another_model(browser: Chromium, speech: np.ndarray,
                                              tmp_path: Path) -> None:
    """A different architecture, frames per step, stage count and codebook: same agreement."""
    from dwancodec.runtime import OnnxCodec

    out = tmp_path / "tiny"
    r = _cli("export", "--config", "tiny", "--out", out, "--frames-per-step", "2", "--n-q", "3",
             "--no-optimize", "--exporter", "torchscript", "-q", timeout=300)
    assert r.returncode == 0, r.stderr
    codec = OnnxCodec(out)
    assert codec.frames_per_step == 2 and codec.hop_length != 320
    server = Server("--model", out)
    try:
        p = browser.new_page(server.url)
        info = p.evaluate("window.dwancodec.ready", timeout=120)
        assert (info["hop"], info["framesPerStep"], info["encoderNq"], info["codebookSize"]) == (
            codec.hop_length, 2, 3, codec.codebook_size)
        x = speech[: 16000 + 77]  # not a whole number of steps: the flush path
        codes, audio, lat, _ = _browser_encode_decode(p, x, 3)
        ref_codes, ref_lat, ref_audio = python_reference(codec, x, 3)
        differ = assert_codes_match(codes, ref_codes, lat, ref_lat)
        assert_audio_match(audio, codec, codes, ref_audio, differ, codec.hop_length)
        p.send("Page.close")
    finally:
        server.close()
