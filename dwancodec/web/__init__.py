"""The codec in the browser: ``dwancodec web`` serves a static page that runs the exported ONNX
step graphs client-side with onnxruntime-web (WASM), with the same state-in/state-out contract
as :mod:`dwancodec.runtime`.

- :mod:`dwancodec.web.runtime`: fetches onnxruntime-web from the npm registry into a cache folder
  (``dwancodec web --setup``); the package itself ships no WASM.
- :mod:`dwancodec.web.server`: the localhost HTTP server (page, model graphs + sidecar, runtime).
- :mod:`dwancodec.web.chromium`: a small headless-Chromium driver over the DevTools pipe, used by
  the test and the screenshot/benchmark script.
- ``static/``: the page (HTML + plain JavaScript modules, no build step).

Importing this package never imports torch or onnxruntime.
"""
