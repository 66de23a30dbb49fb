"""``dwancodec`` command line. The only module that parses arguments.

Each subcommand's arguments are declared here (one ``_add_<name>`` function each) and its work
is done by a ``run(args) -> int`` function in the module named by ``handler``, imported only when
that subcommand runs (so ``dwancodec info`` never imports the training stack).

Exit codes: 0 success, 2 user error (message on stderr, no traceback), 1 internal error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

from .bundled import DEFAULT_BLOCK_FRAMES  # dependency-free: the CLI stays light

EXIT_OK, EXIT_INTERNAL, EXIT_USER = 0, 1, 2

# Exceptions that mean "the input or the request was wrong", shown without a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError,
)


def _handler(sub: argparse.ArgumentParser, target: str) -> None:
    sub.set_defaults(handler=target)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None,
                   help="model bundle directory (config.json + model.safetensors); "
                        "default: the model shipped with the package")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda, ...)")


def _add_rate_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bitrate", type=float, default=None, metavar="KBPS",
                   help="target bitrate in kbps (uses the most stages that fit; for encode, "
                        "the entropy-coded rate the model's tables recorded)")
    g.add_argument("--n-q", type=int, default=None, metavar="N",
                   help="number of residual quantizer stages (default: all)")


def _add_backend_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=("auto", "onnx", "torch"), default="auto",
                   help="streaming engine: auto (default) uses ONNX Runtime when the model has "
                        "exported graphs (MODEL/onnx/, shipped with the default model) of the "
                        "same weights, torch otherwise")
    p.add_argument("--int8", action="store_true",
                   help="ONNX Runtime engine on the int8 step graphs (shipped with the default "
                        "model: faster; PESQ-WB within 0.05 of float32 on val-16k speech, "
                        "measured at export; its codes differ from float32's)")


def _add_encode(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode an audio file to a .dwc bitstream")
    p.add_argument("input", help="audio file (wav, flac, ogg, mp3); - reads standard input")
    p.add_argument("output", help="output .dwc file; - writes standard output (a FIFO or a "
                                  "device such as /dev/null is written in place)")
    _add_rate_args(p)
    p.add_argument("--fixed-rate", action="store_true",
                   help="pack the codes at the fixed rate (.dwc format 2) instead of "
                        "entropy-coding them with the model's tables (format 3, the default "
                        "where the model has them: the same codes in fewer bytes)")
    _add_model_args(p)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads, torch or ONNX Runtime (default 1: fastest for this "
                        "small model)")
    _add_backend_arg(p)
    _handler(p, "dwancodec.commands.encode:run_encode")


def _add_decode(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode a .dwc bitstream to audio")
    p.add_argument("input", help="input .dwc file; - reads standard input")
    p.add_argument("output", help="output audio file (wav, flac, ogg, mp3); - writes 16-bit WAV "
                                  "to standard output (so does a FIFO or a device)")
    p.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="resample the output to this rate (default: the model's rate)")
    _add_model_args(p)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads, torch or ONNX Runtime (default 1: fastest for this "
                        "small model)")
    _add_backend_arg(p)
    _handler(p, "dwancodec.commands.decode:run_decode")


def _add_roundtrip(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("roundtrip", help="encode + decode through the streaming path")
    p.add_argument("input", help="audio file")
    p.add_argument("output", help="decoded audio file")
    _add_rate_args(p)
    _add_model_args(p)
    p.add_argument("--chunk-ms", type=float, default=20.0,
                   help="size of the chunks pushed into the streaming encoder")
    p.add_argument("--compare", action="store_true",
                   help="print objective scores (PESQ-WB, STOI, SI-SDR, mel distance)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads, torch or ONNX Runtime (default 1: fastest for this "
                        "small model)")
    _add_backend_arg(p)
    _handler(p, "dwancodec.commands.roundtrip:run_roundtrip")


def _add_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="describe a .dwc file, a model bundle or a named config")
    p.add_argument("file", nargs="?", help=".dwc file")
    p.add_argument("--model", default=None, help="model bundle directory")
    p.add_argument("--config", default=None, help="named config (default, lowlatency, 24k, "
                                                  "tiny) or JSON file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _handler(p, "dwancodec.commands.info:run_info")


def _add_fit_entropy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit-entropy", help="fit a model's entropy tables, so its .dwc files are "
                            "entropy-coded",
        description="Count how often each code digit follows its contexts over the model's "
                    "codes of DATA, and write the tables to MODEL/entropy.safetensors (or "
                    "--out). encode then writes entropy-coded .dwc files (format 3) with that "
                    "model: the same codes, fewer bytes.")
    p.add_argument("data", nargs="+", help="audio files or folders (searched recursively): "
                                           "what the model trained on, or audio like it")
    p.add_argument("--eval", nargs="+", default=None, metavar="DATA",
                   help="other audio on which to report the tables' mean rate")
    p.add_argument("--out", default=None,
                   help="tables file (default: MODEL/entropy.safetensors)")
    p.add_argument("--force", action="store_true", help="replace an existing tables file")
    p.add_argument("--block-frames", type=int, default=50,
                   help="frames per coded block, as encode writes them (default 50)")
    _add_model_args(p)
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    _add_backend_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    _handler(p, "dwancodec.commands.entropy:run_fit_entropy")


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="stream a bundled speech clip through the default model at "
                                    "each bitrate; write the decoded files")
    p.add_argument("--out", default="demo-out", help="output folder")
    p.add_argument("--input", default=None, help="use this audio file instead of the bundled clip")
    _add_model_args(p)
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads, torch or ONNX Runtime (default 1: fastest for this "
                        "small model)")
    _add_backend_arg(p)
    _handler(p, "dwancodec.commands.demo:run_demo")


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export streaming step graphs to ONNX",
        description="Write OUT/encoder_step.onnx, OUT/decoder_step.onnx and their sidecar "
                    "(dwancodec_onnx.json), plus, by default, OUT/blocks/: the same model "
                    "exported at --block-frames frames per call (float32, own sidecar), on "
                    "which encode/decode code whole .dwc files faster; live use keeps the step "
                    "graphs.")
    p.add_argument("--model", default=None, help="model bundle (default: shipped model)")
    p.add_argument("--config", default=None,
                   help="export a randomly initialised named config instead of a bundle")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--frames-per-step", type=int, default=1,
                   help="code frames per step call")
    p.add_argument("--n-q", type=int, default=None, help="stages in the encoder graph")
    p.add_argument("--full-sequence", action="store_true",
                   help="also export offline full-sequence graphs")
    p.add_argument("--opset", type=int, default=20)
    p.add_argument("--exporter", choices=("dynamo", "torchscript"), default="dynamo",
                   help="torch.export-based exporter (default) or the legacy TorchScript one")
    p.add_argument("--no-optimize", action="store_true",
                   help="plain graphs: no table decode / single-step conv rewrite, no offline "
                        "ONNX Runtime optimizer trial")
    p.add_argument("--no-int8", action="store_true",
                   help="no int8 step graphs (by default made, and kept only if PESQ-WB on "
                        "speech stays within 0.05 of the float graphs)")
    p.add_argument("--int8-data", default=None,
                   help="speech folder for the int8 contract (default: $DWANCODEC_VAL_DIR or "
                        "../shared/data/val-16k)")
    p.add_argument("--block-frames", type=int, default=DEFAULT_BLOCK_FRAMES,
                   help="frames per call of the block graphs in OUT/blocks/, which code whole "
                        "files (default: %(default)s; none are made where it is not above "
                        "--frames-per-step)")
    p.add_argument("--no-blocks", action="store_true",
                   help="no OUT/blocks/ (files are then coded on the step graphs, slower)")
    _handler(p, "dwancodec.export.command:run")


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a codec on a folder of audio")
    p.add_argument("--train-data-path", required=True, nargs="+",
                   help="folder(s) of audio, searched recursively")
    p.add_argument("--val-data-path", default=None, nargs="+", help="validation folder(s)")
    p.add_argument("--config", default=None,
                   help="JSON/TOML training config, or a named model config")
    p.add_argument("--model-config", default=None, help="named model config or JSON file")
    p.add_argument("--sample-rate", type=int, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None, help="generator learning rate")
    p.add_argument("--lr-disc", type=float, default=None, help="discriminator learning rate")
    p.add_argument("--quantizer", choices=("fsq", "lfq", "ema", "origin"), default=None)
    p.add_argument("--levels", type=str, default=None, help="FSQ levels, e.g. 8,8,8,6,5")
    p.add_argument("--num-quantizers", type=int, default=None)
    p.add_argument("--segment-seconds", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--save", default=None,
                   help="checkpoint folder (default .checkpoints/<experiment-name>)")
    p.add_argument("--experiment-name", default=None)
    p.add_argument("--resume", action="store_true", help="resume from the latest checkpoint")
    p.add_argument("--init-from", default=None, metavar="BUNDLE",
                   help="start from the weights of a model folder (e.g. dwancodec/assets/"
                        "default) or checkpoint, with a fresh optimizer: fine-tuning")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: best available)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None)
    p.add_argument("--log", choices=("tensorboard", "wandb", "csv"), default=None)
    p.add_argument("--num-workers", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any training config field, e.g. --set gan_start_step=2000")
    _handler(p, "dwancodec.training.command:run")


def _add_live(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("live", help="live microphone round trip through the codec",
                       description="Microphone -> streaming encoder -> packets -> streaming "
                                   "decoder -> speaker, with a live status line.")
    _add_rate_args(p)
    p.add_argument("--model", default=None, help="model bundle (default: shipped model)")
    _add_backend_arg(p)
    p.add_argument("--onnx-dir", default=None,
                   help="exported ONNX folder (default: the model's graphs, MODEL/onnx/ or the "
                        "shipped model's)")
    p.add_argument("--input-device", default=None,
                   help="input device index or name substring (see --list-devices)")
    p.add_argument("--output-device", default=None,
                   help="output device index or name substring (see --list-devices)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--block-ms", type=float, default=2.5,
                   help="audio callback block size (ms; the device buffers are asked for two "
                        "blocks each side, so smaller is lower latency; default 2.5)")
    p.add_argument("--device-rate", default="model", metavar="{model,default,HZ}",
                   help="rate to open the audio devices at: 'model' (default: the model's rate "
                        "where the device takes it, so nothing is resampled here), 'default' "
                        "(each device's default rate) or a rate in Hz")
    p.add_argument("--prefill-ms", type=float, default=None,
                   help="playback starts this long after the first decoded audio: the slack "
                        "each frame has for scheduling and compute (default 10, +20 when an "
                        "LQ-or-better resampler is in the path)")
    p.add_argument("--save-input", default=None, metavar="FILE",
                   help="write what the encoder received (model rate; .wav is 32-bit float)")
    p.add_argument("--save-output", default=None, metavar="FILE",
                   help="write what the decoder produced (model rate; .wav is 32-bit float)")
    p.add_argument("--duration", type=float, default=None, help="seconds; default: until Ctrl-C")
    p.add_argument("--input-file", default=None,
                   help="play this file in real time instead of the microphone")
    p.add_argument("--loss", type=float, default=0.0, help="simulated packet loss rate (0-1)")
    p.add_argument("--jitter-ms", type=float, default=0.0,
                   help="simulated network jitter: mean of an exponential packet delay (ms)")
    p.add_argument("--jitter-buffer-ms", type=float, default=None,
                   help="how long the receiver holds each frame (default: 3 x --jitter-ms)")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulated network")
    p.add_argument("--resample-quality", choices=("QQ", "LQ", "MQ", "HQ", "VHQ"), default="LQ",
                   help="soxr quality for device <-> model rate conversion (higher qualities "
                        "buffer more: LQ adds up to ~20 ms, HQ up to ~60 ms)")
    p.add_argument("--stats-json", default=None, metavar="FILE",
                   help="write every figure of the run as JSON")
    _handler(p, "dwancodec.live.command:run")


def _add_web(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="serve a page that runs the codec in the browser "
                                   "(onnxruntime-web)",
                       description="Serve, on localhost, a page that runs the model's ONNX step "
                                   "graphs client-side with onnxruntime-web (WASM): microphone "
                                   "-> encoder -> packets -> decoder -> speaker, and a file "
                                   "mode. Run once with --setup to fetch onnxruntime-web.")
    p.add_argument("--port", type=int, default=None,
                   help="port on 127.0.0.1 (default 8000; 0 picks a free one)")
    p.add_argument("--model", default=None,
                   help="folder with dwancodec_onnx.json + step graphs (a `dwancodec export` "
                        "output, or a bundle with onnx/ inside); default: the shipped model")
    p.add_argument("--runtime-dir", default=None, metavar="DIR",
                   help="where onnxruntime-web is set up (default $DWANCODEC_WEB_RUNTIME or "
                        "~/.cache/dwancodec/web)")
    p.add_argument("--setup", action="store_true",
                   help="fetch onnxruntime-web from the npm registry (npm pack) and exit")
    p.add_argument("--force", action="store_true", help="with --setup: fetch again")
    p.add_argument("--log-requests", action="store_true", help="print every HTTP request")
    _handler(p, "dwancodec.web.command:run")


PARSERS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_encode, _add_decode, _add_roundtrip, _add_info, _add_demo, _add_export,
    _add_fit_entropy, _add_train,
    _add_live, _add_web,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dwancodec", description="Streaming real-time neural speech codec."
    )
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {import_module('dwancodec').__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in PARSERS:
        add(sub)
    for p in sub.choices.values():
        p.add_argument("--quiet", "-q", action="store_true", help="no progress bars or notes")
        p.add_argument("--debug", action="store_true", help="show tracebacks for all errors")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    module_name, func_name = args.handler.split(":")
    try:
        handler = getattr(import_module(module_name), func_name)
        return int(handler(args) or EXIT_OK)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        if not _stdout_closed():
            return _internal_error(args)
        # The reader of standard output went away (`dwancodec info x.dwc | head -3`): stop
        # quietly, as shell tools do; 141 = 128 + SIGPIPE.
        return 141
    except USER_ERRORS as e:
        if args.debug:
            raise
        print(f"dwancodec {args.command}: error: {e}", file=sys.stderr)
        return EXIT_USER
    except ImportError as e:
        hint = MISSING_MODULES.get((e.name or "").partition(".")[0])
        if hint is None or args.debug:
            return _internal_error(args)
        from .engine import NeedsTorch  # numpy only; a NeedsTorch names its own reason

        print(f"dwancodec {args.command}: error: {e if isinstance(e, NeedsTorch) else hint}",
              file=sys.stderr)
        return EXIT_USER
    except Exception:
        return _internal_error(args)


# Optional at install time (README: a machine without torch); a command that needs one of them
# says so in one line instead of an internal error. The engine commands check for torch where
# they choose it (dwancodec.engine.NeedsTorch, with the reason); this line is for the rest
# (train, export, info --model).
MISSING_MODULES = {
    "torch": "this command needs torch, which is not installed (pip install torch); without "
             "it, `encode`, `decode`, `roundtrip`, `live`, `demo` and `info FILE` run on the "
             "model's ONNX graphs",
}


def _internal_error(args: argparse.Namespace) -> int:
    import traceback

    traceback.print_exc()
    print(f"dwancodec {args.command}: internal error (please report it)", file=sys.stderr)
    return EXIT_INTERNAL


def _stdout_closed() -> bool:
    """Whether standard output is a pipe or socket whose reader is gone (poll reports an error
    or hang-up on it); if so, point it at ``/dev/null``, so that the interpreter's last flush
    at exit does not fail a second time."""
    import os
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        events = poller.poll(0)
    except (OSError, ValueError, AttributeError):  # no real descriptor (e.g. captured)
        return False
    if not any(e & (select.POLLERR | select.POLLHUP) for _, e in events):
        return False
    os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return True


if __name__ == "__main__":
    sys.exit(main())
