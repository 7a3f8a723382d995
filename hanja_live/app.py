"""The live app: source -> detector -> overlay -> window / recording / JSON lines.

Everything that can fail because of the user's input (model, camera, output paths) is opened
before the window, so a mistake is reported as one line instead of a window that closes again.
"""

import contextlib
import logging
import os
import signal
import time

import cv2

from . import paths
from .backends.loader import load_backend
from .detector import Detector
from .errors import HanjaLiveError, SourceError, EndOfStream
from .fps import FpsMeter
from .overlay import Annotator
from .sinks import JsonLinesSink, VideoSink, WindowSink, window_available
from .sources import open_source

log = logging.getLogger("hanja_live")

STATUS_EVERY_S = 1.0


def resolve_source_uri(uri):
    """'demo' -> the bundled clip; anything else is passed to open_source unchanged."""
    if str(uri) == "demo":
        if not os.path.isfile(paths.DEMO_CLIP):
            raise SourceError("the bundled demo clip %s is missing; restore it with "
                              "'git checkout -- hanja_live/assets/demo.mp4'" % paths.DEMO_CLIP)
        return paths.DEMO_CLIP
    return uri


def load_detector(model):
    """Backend + detector from the model section of the config."""
    backend = load_backend(paths.resolve(model.path), backend=model.backend,
                           precision=model.precision, engine_dir=model.engine_dir,
                           workspace_mb=model.workspace_mb, log=log.info)
    return Detector(backend, conf=model.conf, iou=model.iou, max_det=model.max_det)


def default_record_path(source_uri):
    """Headless with no output named: record beside the current folder, never overwriting."""
    stem = os.path.splitext(os.path.basename(str(source_uri).rstrip("/")))[0] or "camera"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("out", "%s-annotated-%s.mp4" % (stem, stamp))


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM ends the loop like Ctrl-C, so the sinks' close() finalises the recording."""

    def handler(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_live(model, source, display, output):
    """Run the live pipeline with the four config sections; returns the process exit code."""
    uri = resolve_source_uri(source.uri)
    detector = load_detector(model)
    show_window = display.window or display.kiosk
    if show_window:
        ok, reason = window_available()
        if not ok:
            if display.kiosk:
                raise HanjaLiveError("--kiosk needs a screen, but %s; run it on the device's "
                                     "display (DISPLAY=:0) or drop --kiosk" % reason)
            log.warning("no window: %s; running headless", reason)
            show_window = False
    loop = source.loop or (str(source.uri) == "demo" and show_window)
    src = open_source(uri, width=source.width, height=source.height, fps=source.fps,
                      csi_flip=source.csi_flip, loop=loop, read_timeout_s=source.read_timeout_s)
    record = output.record
    if not show_window and record is None and output.json is None:
        record = default_record_path(uri)
        log.info("headless: the annotated video goes to %s", record)
    annotator = Annotator(detector.names)
    with contextlib.ExitStack() as stack:
        stack.enter_context(detector.backend)
        stack.enter_context(src)
        video = json_sink = window = None
        if record:
            video = stack.enter_context(
                VideoSink(record, fps=src.fps or float(source.fps), overwrite=output.overwrite))
        if output.json:
            json_sink = stack.enter_context(
                JsonLinesSink(output.json, detector.names, overwrite=output.overwrite))
        if show_window:
            window = stack.enter_context(WindowSink(display.title, kiosk=display.kiosk))
        stack.enter_context(sigterm_as_interrupt())
        log.info("source: %s", src.description)
        try:
            frames = _loop(src, detector, annotator, video, json_sink, window, display.show_fps,
                           source.read_timeout_s)
        except KeyboardInterrupt:
            log.info("interrupted; closing outputs")
            frames = None
    if record:
        log.info("recording saved: %s", record)
    if output.json:
        log.info("detections saved: %s", output.json)
    if frames is not None:
        log.info("done: %d frames", frames)
    return 0


def _loop(src, detector, annotator, video, json_sink, window, show_fps, read_timeout_s):
    fps = FpsMeter()
    frames = 0
    last_status = time.monotonic()
    paused = False
    shown = None
    while True:
        if paused:
            quit_now, paused = _react(window.show(shown), shown, paused)
            if quit_now:
                return frames
            if not paused:
                fps.reset()  # the pause is not slow frames
            continue
        try:
            frame = src.read(timeout=read_timeout_s)
        except EndOfStream:
            return frames
        if frame is None:
            log.warning("no frame from %s for %.1f s; waiting", src.description, read_timeout_s)
            if window is not None and shown is not None and window.show(shown) == "quit":
                return frames
            continue
        detections, times = detector(frame.image)
        image = annotator.annotate(frame.image, detections)
        rate = fps.tick()
        if show_fps:
            annotator.draw_status(image, rate, times.inference_ms)
        if video is not None:
            video.write(image)
        if json_sink is not None:
            json_sink.write(frame, detections)
        frames += 1
        shown = image
        if window is not None:
            quit_now, paused = _react(window.show(image), image, paused)
            if quit_now:
                return frames
        now = time.monotonic()
        if now - last_status >= STATUS_EVERY_S:
            last_status = now
            log.info("frame %d  fps %.1f  inference %.1f ms  detections %d  dropped %d",
                     frame.index, rate, times.inference_ms, len(detections), src.dropped)


def _react(action, image, paused):
    """A window key action -> (quit now, paused); space toggles pause, s saves the frame."""
    if action == "snapshot":
        _snapshot(image)
    elif action == "pause":
        paused = not paused
    return action == "quit", paused


def _snapshot(image):
    path = time.strftime("snapshot-%Y%m%d-%H%M%S.png")
    if cv2.imwrite(path, image):
        log.info("snapshot saved: %s", path)
    else:
        log.warning("could not write snapshot %s (folder not writable?)", path)
