"""Command line: the only place that parses arguments.

  hanja-live [run] [--demo | --camera N | --csi N | --source URI] [options]   live view
  hanja-live detect SOURCE --json OUT.jsonl [--record OUT.mp4]                batch detection
  hanja-live build-engine --onnx MODEL.onnx [--fp16 | --fp32 | --int8]      TensorRT engine
  hanja-live install-service [--unit-file PATH] [RUN OPTIONS]               systemd user unit
  hanja-live bench [SOURCE] [--frames N] [--sink null|video] [--json OUT]    speed figures
"""

import argparse
import logging
import os
import signal
import sys

from . import __version__
from .config import load_config
from .errors import HanjaLiveError

log = logging.getLogger("hanja_live")

COMMANDS = ("run", "detect", "build-engine", "install-service", "bench")


def _model_options(parser):
    defaults = load_config().model
    group = parser.add_argument_group("model")
    group.add_argument("--model", metavar="PATH", help="ONNX model or TensorRT engine "
                       "(default: models/hanja_yolov5n.onnx)")
    group.add_argument("--verifier", metavar="PATH", help="verifier model, a second look at each "
                       "box (default: models/hanja_verifier.onnx)")
    group.add_argument("--no-verifier", action="store_true",
                       help="boxes straight from the detector, no second look")
    group.add_argument("--backend", choices=("auto", "tensorrt", "onnxruntime"),
                       help="inference backend (default auto: TensorRT when installed)")
    group.add_argument("--precision", choices=("auto", "fp16", "fp32"),
                       help="precision of a TensorRT engine built at start")
    group.add_argument("--engine-dir", metavar="DIR", help="where built engines are cached")
    group.add_argument("--conf", type=float, help="score threshold (default %g)" % defaults.conf)
    group.add_argument("--iou", type=float, help="NMS IoU threshold (default %g)" % defaults.iou)
    group.add_argument("--max-det", type=int, help="most detections per frame (default %d)" % defaults.max_det)


def _common_options(parser):
    parser.add_argument("--config", metavar="FILE", help="YAML file overriding the defaults")
    parser.add_argument("--overwrite", action="store_true", default=None,
                        help="replace existing output files")
    parser.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="hanja-live",
        description="Live recognition of handwritten hanja numerals 一 二 三 四 五 六 七 八 九 十.",
        epilog="Commands: run (default), detect, build-engine. "
               "'hanja-live detect -h' shows a command's options.")
    parser.add_argument("--version", action="version", version="hanja_live " + __version__)
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="live view (the default command)")
    src = run.add_argument_group("source (one of)")
    pick = src.add_mutually_exclusive_group()
    pick.add_argument("--demo", action="store_true", help="the bundled demo clip")
    pick.add_argument("--camera", type=int, metavar="N", help="USB/V4L2 camera index")
    pick.add_argument("--csi", type=int, metavar="N", help="Jetson CSI camera sensor id")
    pick.add_argument("--source", metavar="URI",
                      help="video file, image, folder, rtsp:// or http:// URL, or a GStreamer "
                           "pipeline ending in appsink")
    src.add_argument("--width", type=int, help="capture width asked of cameras (default 1280)")
    src.add_argument("--height", type=int, help="capture height (default 720)")
    src.add_argument("--fps", type=int, help="capture frame rate (default 30)")
    src.add_argument("--flip", type=int, metavar="0-7", help="CSI flip-method (2: upside down)")
    src.add_argument("--loop", action="store_true", default=None, help="restart a video at its end")
    _model_options(run)
    out = run.add_argument_group("output")
    out.add_argument("--record", metavar="PATH", help="write the annotated video (.mp4)")
    out.add_argument("--record-segment", type=float, metavar="SECONDS",
                     help="record in files of SECONDS each (PATH-0001.mp4, ...): a crash or "
                          "power cut loses only the last one")
    out.add_argument("--json", metavar="PATH", help="write detections as JSON lines")
    out.add_argument("--headless", action="store_true", help="no window")
    out.add_argument("--kiosk", action="store_true", default=None,
                     help="unattended: fullscreen, no cursor, keys ignored except "
                          "display.kiosk_quit_keys, restarts itself after errors")
    out.add_argument("--title", help="window title")
    out.add_argument("--no-fps", action="store_true", help="hide the FPS counter")
    _common_options(run)

    det = sub.add_parser("detect", help="detect on every frame of a folder or video, no display")
    det.add_argument("source", help="image, image folder or video file")
    det.add_argument("--json", metavar="PATH", help="write detections as JSON lines")
    det.add_argument("--record", metavar="PATH", help="write the annotated video (.mp4)")
    _model_options(det)
    _common_options(det)

    eng = sub.add_parser("build-engine", help="build a TensorRT engine from an ONNX model")
    eng.add_argument("--onnx", required=True, metavar="PATH", help="ONNX model")
    prec = eng.add_mutually_exclusive_group()
    prec.add_argument("--fp16", dest="precision", action="store_const", const="fp16")
    prec.add_argument("--fp32", dest="precision", action="store_const", const="fp32")
    prec.add_argument("--int8", dest="precision", action="store_const", const="int8")
    eng.add_argument("--calib", metavar="DIR", help="calibration images for --int8 (default calib/)")
    eng.add_argument("--output", metavar="PATH", help="engine file (default: cached name beside "
                     "the model)")
    eng.add_argument("--workspace-mb", type=int, default=1024, help="builder workspace (MB)")
    eng.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")

    svc = sub.add_parser("install-service", help="write a systemd user unit that starts the "
                         "kiosk at login and restarts it on failure; other options go to run",
                         usage="hanja-live install-service [--unit-file PATH] [--replace] "
                               "[--display D] [RUN OPTIONS]")
    svc.add_argument("--unit-file", metavar="PATH", help="where to write it (default "
                     "~/.config/systemd/user/hanja-live.service)")
    svc.add_argument("--replace", action="store_true", help="replace an existing unit file")
    svc.add_argument("--display", default=":0", help="X display of the kiosk (default :0)")

    ben = sub.add_parser("bench", help="speed of the whole pipeline, headless, against a "
                         "sequential loop (and ultralytics when installed)")
    ben.add_argument("source", nargs="?", default="demo",
                     help="video file, folder or camera (default: the bundled demo clip)")
    ben.add_argument("--frames", type=int, metavar="N", help="frames per run: from each "
                     "segment of a clip with a segments file, else from the start (default: "
                     "all)")
    ben.add_argument("--seconds", type=float, metavar="S", help="seconds per run at most")
    ben.add_argument("--repeat", type=int, default=1, metavar="R",
                     help="rounds of every mode on every segment, the order alternating "
                          "(default 1)")
    ben.add_argument("--sink", choices=("null", "video"), default="null",
                     help="drop the drawn frames (default) or record them to a temporary mp4")
    ben.add_argument("--modes", default="pipelined,sequential,ultralytics",
                     help="comma-separated modes to run (default: all three)")
    ben.add_argument("--warmup", type=int, default=10, metavar="N",
                     help="frames run before measuring (default 10)")
    ben.add_argument("--workers", type=int, metavar="N",
                     help="inference threads of the pipelined loop, each with its own model "
                          "session (default: model.workers of the config, as the app; 0: one "
                          "per CPU when the model runs on the CPU; README, Speed)")
    ben.add_argument("--json", dest="bench_json", metavar="PATH", help="also write the "
                     "figures as JSON")
    ben.add_argument("--recording", action="store_true", help="instead: what recording a "
                     "live camera costs the loop, encoding in place against PacedRecorder "
                     "(a 30 fps camera, a 20 fps loop; takes --frames, default 90, and --json)")
    _model_options(ben)
    _common_options(ben)
    ben.set_defaults(record=None, json=None)
    return parser


def _section(**values):
    return {k: v for k, v in values.items() if v is not None}


def overrides_from(args):
    """Only the flags the user gave; the rest comes from the config files."""
    model = _section(path=args.model, backend=args.backend, precision=args.precision,
                     engine_dir=args.engine_dir, conf=args.conf, iou=args.iou,
                     max_det=args.max_det, verifier=args.verifier)
    if args.no_verifier:
        if args.verifier:
            raise HanjaLiveError("--verifier and --no-verifier contradict each other; pick one")
        model["verifier"] = None
    output = _section(record=args.record, json=args.json, overwrite=args.overwrite,
                      record_segment_s=getattr(args, "record_segment", None))
    result = {"model": model, "output": output}
    if args.command == "run":
        uri = None
        if args.demo:
            uri = "demo"
        elif args.camera is not None:
            uri = str(args.camera)
        elif args.csi is not None:
            uri = "csi://%d" % args.csi
        elif args.source is not None:
            uri = args.source
        result["source"] = _section(uri=uri, width=args.width, height=args.height, fps=args.fps,
                                    csi_flip=args.flip, loop=args.loop)
        result["display"] = _section(window=False if args.headless else None, kiosk=args.kiosk,
                                     title=args.title, show_fps=False if args.no_fps else None)
        if args.headless and args.kiosk:
            raise HanjaLiveError("--headless and --kiosk contradict each other; pick one")
    return result


def _setup_logging(quiet):
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="hanja_live: %(message)s", stream=sys.stderr)


def _install_service(args):
    from .service import install_service, kiosk_args
    run_args = kiosk_args(args.run_args)
    # checked now, so that a typo shows here and not as a unit failing at every boot
    run = build_parser().parse_args(["run"] + run_args)
    load_config(run.config, overrides_from(run))
    path = install_service(run_args, path=args.unit_file, replace=args.replace,
                           display=args.display)
    sys.stdout.write("wrote %s\nstart it now and at every login with:\n"
                     "  systemctl --user daemon-reload && systemctl --user enable --now %s\n"
                     "(for a start without anyone logging in: sudo loginctl enable-linger %s, "
                     "and auto-login to the desktop)\n"
                     % (path, os.path.basename(path), os.environ.get("USER", "$USER")))
    return 0


def dispatch(args):
    if args.command == "install-service":
        return _install_service(args)
    if args.command == "build-engine":
        precision = args.precision or "fp16"
        calib = args.calib or ("calib" if precision == "int8" else None)
        from .backends.engine_builder import build_engine, check_onnx_for_tensorrt
        check_onnx_for_tensorrt(args.onnx)  # before TensorRT is needed: a wrong file fails anywhere
        if args.output:
            build_engine(args.onnx, args.output, precision=precision,
                         workspace_mb=args.workspace_mb, calib_dir=calib, log=log.info)
        else:
            # Builds into the cache name the app looks for (GPU, TensorRT version, precision),
            # then loads the engine once to prove it runs here.
            from .backends.tensorrt_backend import TRTWrapper
            TRTWrapper(args.onnx, precision=precision, workspace_mb=args.workspace_mb,
                       calib_dir=calib, log=log.info).close()
        return 0
    config = load_config(args.config, overrides_from(args))
    if args.command == "detect":
        from .batch import run_detect
        run_detect(args.source, config.model, json_path=config.output.json,
                   record_path=config.output.record, overwrite=config.output.overwrite)
        return 0
    if args.command == "bench" and args.recording:
        from .recording_bench import run_recording_bench
        run_recording_bench(args.source, frames=90 if args.frames is None else args.frames,
                            json_path=args.bench_json,
                            overwrite=config.output.overwrite, progress=not args.quiet)
        return 0
    if args.command == "bench":
        from .bench import run_bench
        run_bench(args.source, config.model, frames=args.frames, seconds=args.seconds,
                  repeat=args.repeat, sink=args.sink, json_path=args.bench_json,
                  overwrite=config.output.overwrite, warmup=args.warmup,
                  modes=tuple(m.strip() for m in args.modes.split(",") if m.strip()),
                  progress=not args.quiet, workers=args.workers,
                  command="python -m hanja_live " + " ".join(sys.argv[1:]))
        return 0
    if config.display.kiosk:
        from .kiosk import run_kiosk
        return run_kiosk(config.model, config.source, config.display, config.output)
    from .app import run_live
    return run_live(config.model, config.source, config.display, config.output)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv.insert(0, "run")
    parser = build_parser()
    if argv[0] == "install-service":
        # every option install-service does not know is one for the run it installs
        args, run_args = parser.parse_known_args(argv)
        args.run_args = run_args
    else:
        args = parser.parse_args(argv)
    _setup_logging(getattr(args, "quiet", False))
    try:
        code = dispatch(args)
    except HanjaLiveError as exc:
        sys.stderr.write("hanja_live: error: %s\n" % exc)
        code = 2
    except KeyboardInterrupt as exc:  # Stopped (a stop signal) carries its number; Ctrl-C: 2
        code = 128 + getattr(exc, "signum", signal.SIGINT)
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
