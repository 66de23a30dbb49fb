"""``dwancodec web``: serve the in-browser codec page (arguments are declared in ``cli.py``)."""

from __future__ import annotations

import argparse
import sys

from .runtime import PACKAGE, VERSION, RuntimeSetupError, find_runtime, setup_runtime
from .server import WebServer, resolve_model_dir

EXIT_USER = 2  # same as dwancodec.cli.EXIT_USER


def run(args: argparse.Namespace) -> int:
    """``--setup``: fetch onnxruntime-web and exit. Otherwise serve until Ctrl-C / SIGTERM."""
    if args.setup:
        def note() -> None:
            if not args.quiet:
                print(f"fetching {PACKAGE}@{VERSION} from the npm registry ...", file=sys.stderr)

        try:
            rt = setup_runtime(args.runtime_dir, force=args.force, on_fetch=note)
        except RuntimeSetupError as e:
            print(f"dwancodec web: error: {e}", file=sys.stderr)
            return EXIT_USER
        then = "dwancodec web" + (f" --runtime-dir {args.runtime_dir}" if args.runtime_dir else "")
        print(f"{PACKAGE} {rt.version} ready in {rt.directory}; now run `{then}`")
        return 0
    if args.port is not None and not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    model_dir = resolve_model_dir(args.model)
    runtime = find_runtime(args.runtime_dir)
    server = WebServer(model_dir, runtime, port=8000 if args.port is None else args.port,
                       log=args.log_requests)
    name = server.meta.get("model", {}).get("identity", model_dir.name)
    print(f"serving {server.url}", flush=True)  # first line: tests and scripts read the URL
    if not args.quiet:
        print(f"  model {name} from {model_dir}\n  {PACKAGE} {runtime.version} from "
              f"{runtime.directory}\n  open the address in Chrome/Chromium, Firefox or Safari; "
              "Ctrl-C stops", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
    return 0
