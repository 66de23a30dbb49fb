"""onnxruntime-web for the page: fetched from the npm registry into a cache folder, never shipped.

``dwancodec web --setup`` (or :func:`setup_runtime`) runs ``npm pack onnxruntime-web@VERSION``
(npm checks the tarball against the registry's integrity hash), extracts the three files the
WASM backend needs and records their SHA-256 in ``manifest.json``::

    ~/.cache/dwancodec/web/onnxruntime-web-1.30.0/
        ort.wasm.min.mjs              the JavaScript API (ES module, WASM backend only)
        ort-wasm-simd-threaded.mjs    the Emscripten loader
        ort-wasm-simd-threaded.wasm   ONNX Runtime compiled to WebAssembly (~14 MB)
        manifest.json                 version, licence (MIT), npm integrity, SHA-256 of each file

The folder is ``--runtime-dir``, else ``$DWANCODEC_WEB_RUNTIME``, else
``$XDG_CACHE_HOME/dwancodec/web`` (``~/.cache/dwancodec/web``). After setup nothing is fetched:
the server serves these files from disk, so the page works offline. A folder that already holds
the files (e.g. ``node_modules/onnxruntime-web/dist`` after ``npm install onnxruntime-web``) can be
given as ``--runtime-dir`` too.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "onnxruntime-web"
VERSION = "1.30.0"  # the version the page and tests/test_web.py are checked with
FILES = ("ort.wasm.min.mjs", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")
ENV_VAR = "DWANCODEC_WEB_RUNTIME"
MANIFEST = "manifest.json"


class RuntimeMissing(FileNotFoundError):
    """onnxruntime-web is not set up where the server looks for it."""


class RuntimeSetupError(RuntimeError):
    """``npm pack`` could not fetch or the tarball lacks the expected files."""


@dataclass(frozen=True)
class WebRuntime:
    """A folder holding :data:`FILES` and the onnxruntime-web version they come from."""

    directory: Path
    version: str

    def path(self, name: str) -> Path:
        return self.directory / name


def default_runtime_dir() -> Path:
    """``$DWANCODEC_WEB_RUNTIME``, else ``$XDG_CACHE_HOME/dwancodec/web`` (or ``~/.cache/...``)."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "dwancodec" / "web"


def versioned_dir(root: Path) -> Path:
    return root / f"{PACKAGE}-{VERSION}"


def _has_files(d: Path) -> bool:
    return all((d / f).is_file() and (d / f).stat().st_size > 0 for f in FILES)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _version_of(d: Path) -> str:
    manifest = d / MANIFEST
    if manifest.is_file():
        return str(json.loads(manifest.read_text()).get("version", "unknown"))
    package_json = d.parent / "package.json"  # node_modules/onnxruntime-web/dist/../package.json
    if package_json.is_file():
        try:
            return str(json.loads(package_json.read_text()).get("version", "unknown"))
        except json.JSONDecodeError:
            pass
    return "unknown"


def find_runtime(root: str | Path | None = None, verify: bool = True) -> WebRuntime:
    """The set-up runtime under ``root`` (default :func:`default_runtime_dir`).

    Looks in ``root/onnxruntime-web-VERSION`` (what :func:`setup_runtime` writes), ``root``
    itself, ``root/dist`` and ``root/node_modules/onnxruntime-web/dist``. With ``verify``, files
    listed in a ``manifest.json`` must have its SHA-256. Raises :class:`RuntimeMissing` naming
    the folder and the setup command.
    """
    base = default_runtime_dir() if root is None else Path(root).expanduser()
    candidates = [versioned_dir(base), base, base / "dist",
                  base / "node_modules" / PACKAGE / "dist"]
    for d in candidates:
        if _has_files(d):
            if verify:
                _verify(d)
            return WebRuntime(d.resolve(), _version_of(d))
    hint = "dwancodec web --setup" + ("" if root is None else f" --runtime-dir {base}")
    raise RuntimeMissing(
        f"onnxruntime-web is not set up in {base} (needs {', '.join(FILES)}): "
        f"run `{hint}` once (fetches {PACKAGE}@{VERSION} from the npm registry)"
    )


def _verify(d: Path) -> None:
    manifest = d / MANIFEST
    if not manifest.is_file():
        return
    try:
        sums = json.loads(manifest.read_text()).get("sha256", {})
    except json.JSONDecodeError:
        raise RuntimeMissing(f"{manifest} is not valid JSON: run `dwancodec web --setup` again "
                             f"after deleting {d}") from None
    for name, digest in sums.items():
        if _sha256(d / name) != digest:
            raise RuntimeMissing(f"{d / name} does not match its SHA-256 in {manifest} (a broken "
                                 f"download?): delete {d} and run `dwancodec web --setup`")


def setup_runtime(root: str | Path | None = None, npm: str = "npm", force: bool = False,
                  on_fetch: Callable[[], None] | None = None) -> WebRuntime:
    """Fetch ``onnxruntime-web@VERSION`` with ``npm pack`` into ``root`` (idempotent).

    Returns the runtime; an existing complete setup is kept unless ``force``. ``on_fetch`` is
    called just before the download starts (e.g. to print a note). Raises
    :class:`RuntimeSetupError` (npm missing, no registry access, unexpected tarball).
    """
    base = default_runtime_dir() if root is None else Path(root).expanduser()
    final = versioned_dir(base)
    if not force and _has_files(final):
        return find_runtime(base)
    exe = shutil.which(npm)
    if exe is None:
        raise RuntimeSetupError(
            f"{npm} not found: install Node.js and npm (Debian: apt-get install npm), or put "
            f"{', '.join(FILES)} from the {PACKAGE} package's dist/ folder into {final}"
        )
    base.mkdir(parents=True, exist_ok=True)
    if on_fetch is not None:
        on_fetch()
    with tempfile.TemporaryDirectory(prefix=".setup-", dir=base) as tmp:
        proc = subprocess.run(
            [exe, "pack", f"{PACKAGE}@{VERSION}", "--json", "--pack-destination", tmp],
            capture_output=True, text=True, cwd=tmp, check=False,
        )
        if proc.returncode != 0:
            lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
            raise RuntimeSetupError(f"`npm pack {PACKAGE}@{VERSION}` failed: "
                                    f"{lines[-1] if lines else 'exit ' + str(proc.returncode)}")
        try:
            info = json.loads(proc.stdout)[0]
            tarball = Path(tmp) / info["filename"]
        except (json.JSONDecodeError, IndexError, KeyError, TypeError):
            tarballs = sorted(Path(tmp).glob("*.tgz"))
            if not tarballs:
                raise RuntimeSetupError(f"`npm pack` wrote no tarball in {tmp}") from None
            info, tarball = {}, tarballs[0]
        stage = Path(tmp) / "stage"
        stage.mkdir()
        wanted = {f"package/dist/{f}": f for f in FILES} | {"package/package.json": "package.json"}
        with tarfile.open(tarball, "r:gz") as tar:
            for member in tar.getmembers():
                name = wanted.get(member.name)
                if name is None or not member.isfile():
                    continue
                src = tar.extractfile(member)
                if src is None:
                    continue
                with src, (stage / name).open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        if not _has_files(stage):
            missing = [f for f in FILES if not (stage / f).is_file()]
            raise RuntimeSetupError(f"{tarball.name} lacks {', '.join(missing)}: this "
                                    f"{PACKAGE} release has another layout")
        try:
            package_json = json.loads((stage / "package.json").read_text())
        except (OSError, json.JSONDecodeError):
            package_json = {}
        (stage / "package.json").unlink(missing_ok=True)
        (stage / MANIFEST).write_text(json.dumps({
            "package": PACKAGE, "version": package_json.get("version", VERSION),
            "license": package_json.get("license"), "integrity": info.get("integrity"),
            "sha256": {f: _sha256(stage / f) for f in FILES},
        }, indent=2) + "\n")
        if final.exists():
            shutil.rmtree(final)
        os.replace(stage, final)
    return find_runtime(base)
