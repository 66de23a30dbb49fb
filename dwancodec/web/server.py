"""The localhost server of ``dwancodec web``: the page, the model's step graphs, onnxruntime-web.

Routes (GET and HEAD only; anything else is 404):

- ``/`` and ``/static/<file>``: the page (``dwancodec/web/static/``).
- ``/model/dwancodec_onnx.json`` and ``/model/<graph file>``: the sidecar and the two step graphs
  it names (``graphs.encoder_step.file``, ``graphs.decoder_step.file``), from the model folder.
- ``/ort/<file>``: the onnxruntime-web files (:data:`dwancodec.web.runtime.FILES`).

Every response carries ``Cross-Origin-Opener-Policy: same-origin`` and
``Cross-Origin-Embedder-Policy: require-corp``, so the page is cross-origin isolated (precise
``performance.now()``; SharedArrayBuffer, which multi-threaded WASM needs). The server binds to
127.0.0.1 only and never reaches the network.
"""

from __future__ import annotations

import errno
import json
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from ..bundled import SIDECAR, shipped_onnx_dir
from .runtime import FILES as RUNTIME_FILES
from .runtime import WebRuntime

FORMAT = "dwancodec-onnx"
SUPPORTED_VERSIONS = (1,)  # sidecar versions the page reads (static/codec.js checks them too)
STEP_GRAPHS = ("encoder_step", "decoder_step")
STATIC_DIR = Path(__file__).parent / "static"

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".mjs": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".json": "application/json", ".wasm": "application/wasm",
         ".onnx": "application/octet-stream", ".png": "image/png", ".svg": "image/svg+xml"}


def resolve_model_dir(model: str | Path | None) -> Path:
    """The folder holding the sidecar: ``model`` itself or ``model/onnx`` (a model bundle whose
    export sits beside it, as in ``dwancodec/assets/default``); default the shipped graphs."""
    if model is None:
        d = shipped_onnx_dir()
        if not (d / SIDECAR).is_file():
            raise FileNotFoundError(f"the default model's ONNX graphs are not installed at {d}; "
                                    "pass --model DIR (a folder made by `dwancodec export`)")
        return d
    d = Path(model).expanduser()
    if not d.exists():
        raise FileNotFoundError(f"model folder {d} does not exist")
    if not d.is_dir():
        raise NotADirectoryError(f"--model must be a folder, got the file {d}")
    for candidate in (d, d / "onnx"):
        if (candidate / SIDECAR).is_file():
            return candidate
    raise FileNotFoundError(
        f"{d} has no ONNX step graphs (no {SIDECAR}, nor onnx/{SIDECAR}): make them with "
        f"`dwancodec export --model {d} --out {d / 'onnx'}`"
    )


def load_model(directory: Path) -> tuple[dict[str, Any], dict[str, Path]]:
    """Read and check the sidecar; return it and the step graphs' files (``name -> path``)."""
    path = directory / SIDECAR
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError(f"{path} is not a DwanCodec ONNX sidecar (format {FORMAT!r})")
    if meta.get("format_version") not in SUPPORTED_VERSIONS:
        raise ValueError(f"{path} has format version {meta.get('format_version')}; the page "
                         f"reads {SUPPORTED_VERSIONS}")
    graphs = meta.get("graphs") if isinstance(meta.get("graphs"), dict) else {}
    files: dict[str, Path] = {}
    for name in STEP_GRAPHS:
        g = graphs.get(name)
        if not isinstance(g, dict) or not isinstance(g.get("file"), str):
            raise ValueError(f"{path} lists no {name} graph")
        f = directory / g["file"]
        if Path(g["file"]).name != g["file"]:
            raise ValueError(f"{path}: graph file {g['file']!r} must be a plain file name")
        if not f.is_file():
            raise FileNotFoundError(f"{directory} lacks {g['file']} (the {name} graph named in "
                                    f"{SIDECAR})")
        files[g["file"]] = f
    return meta, files


class WebServer:
    """Serve the page for one model folder and one runtime on ``127.0.0.1:port``.

    ``port=0`` picks a free port (see :attr:`url`). Raises ``ValueError`` when the port is taken.
    """

    def __init__(self, model_dir: Path, runtime: WebRuntime, port: int = 8000,
                 host: str = "127.0.0.1", log: bool = False) -> None:
        self.model_dir = model_dir
        self.meta, graph_files = load_model(model_dir)
        self.runtime = runtime
        routes: dict[str, Path] = {"/model/" + SIDECAR: model_dir / SIDECAR}
        routes |= {f"/model/{name}": p for name, p in graph_files.items()}
        routes |= {f"/ort/{name}": runtime.path(name) for name in RUNTIME_FILES}
        routes |= {f"/static/{p.name}": p for p in STATIC_DIR.iterdir() if p.is_file()}
        routes["/"] = STATIC_DIR / "index.html"
        routes["/index.html"] = STATIC_DIR / "index.html"
        self.routes = routes
        handler = _make_handler(routes, log)
        try:
            self.httpd = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                raise ValueError(f"port {port} on {host} is already in use: pick another with "
                                 "--port N (0 picks a free one)") from None
            if e.errno in (errno.EACCES, errno.EPERM):
                raise PermissionError(f"not allowed to listen on {host}:{port} (ports below "
                                      "1024 need root): pick another with --port N") from None
            raise
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.2)

    def start(self) -> WebServer:
        """Serve from a background thread (for use in-process); :meth:`close` stops it."""
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join()
            self._thread = None
        self.httpd.server_close()

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _make_handler(routes: dict[str, Path], log: bool) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "dwancodec-web"
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._send(body=True)

        def do_HEAD(self) -> None:
            self._send(body=False)

        def _send(self, body: bool) -> None:
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            target = routes.get(path)
            if target is None or not target.is_file():
                data = f"not found: {path}\n".encode()
                self.send_response(HTTPStatus.NOT_FOUND)
                self._headers("text/plain; charset=utf-8", len(data))
                self.end_headers()
                if body:
                    self.wfile.write(data)
                return
            ctype = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] \
                or "application/octet-stream"
            size = target.stat().st_size
            self.send_response(HTTPStatus.OK)
            self._headers(ctype, size)
            self.end_headers()
            if body:
                with target.open("rb") as f:
                    while block := f.read(1 << 20):
                        self.wfile.write(block)

        def _headers(self, ctype: str, length: int) -> None:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(length))
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Cross-Origin-Opener-Policy", "same-origin")
            self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")
            self.send_header("X-Content-Type-Options", "nosniff")

        def log_message(self, format: str, *args: Any) -> None:
            if log:
                super().log_message(format, *args)

        def handle_one_request(self) -> None:
            try:
                super().handle_one_request()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

    return Handler
