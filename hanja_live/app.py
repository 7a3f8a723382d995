"""The live app: source -> detector -> overlay -> window / recording / JSON lines.

Everything that can fail because of the user's input (model, camera, output paths) is opened
before the window, so a mistake is reported as one line instead of a window that closes again.
"""

import contextlib
import logging
import os
import time
from typing import List

from . import paths
from .backends.loader import load_backend
from .detector import Detector
from .errors import HanjaLiveError, SinkError, SourceError
from .overlay import Annotator
from .pipeline import Output, Pipeline, Presenter
from .sinks import JsonLinesSink, PacedRecorder, VideoSink, WindowSink, window_available
from .sources import open_source
from .stop_signals import StopSignals, Stopped
from .verifier import Verifier, VerifierUnavailable
from .workers import plan_workers, usable_cpus

log = logging.getLogger("hanja_live")


def resolve_source_uri(uri):
    """'demo' -> the bundled clip; anything else is passed to open_source unchanged."""
    if str(uri) == "demo":
        if not os.path.isfile(paths.DEMO_CLIP):
            raise SourceError("the bundled demo clip %s is missing; restore it with "
                              "'git checkout -- hanja_live/assets/demo.mp4'" % paths.DEMO_CLIP)
        return paths.DEMO_CLIP
    return uri


def load_detector(model, threads=None, say=None):
    """Backend + detector from the model section of the config; ``threads`` overrides its own;
    ``say`` receives the backend's log lines (default: the log)."""
    backend = load_backend(paths.resolve(model.path), backend=model.backend,
                           precision=model.precision, engine_dir=model.engine_dir,
                           workspace_mb=model.workspace_mb, log=say or log.info,
                           threads=model.threads if threads is None else threads)
    verifier = None
    if model.verifier:
        verifier_path = paths.resolve(model.verifier)
        try:
            verifier = Verifier(verifier_path, backend.info.names,
                                threads=model.threads if threads is None else threads)
            (say or log.info)("verifier: %s (%s)" % (verifier_path, ", ".join(verifier.providers)))
        except VerifierUnavailable as exc:
            # the detector alone still works: more false positives, not no app. Said once: the
            # sessions load_detectors reopens pass a quiet ``say``
            (say or log.warning)("verifier off, boxes unverified: %s" % exc)
        except BaseException:
            backend.close()
            raise
    return Detector(backend, conf=model.conf, iou=model.iou, max_det=model.max_det, verifier=verifier)


def load_detectors(model, workers=None):
    """The pipelined loop's detectors, one per inference worker: ``workers`` (None: the config's
    model.workers; 0: chosen for the backend by hanja_live.workers.plan_workers)."""
    asked = model.workers if workers is None else workers
    first = load_detector(model)  # says which backend; the sessions reopened below stay quiet
    count, threads = plan_workers(asked, model.threads, first.backend.on_cpu, usable_cpus())
    if count == 1:  # plan_workers changes the threads only for several workers
        return [first]
    first.backend.close()  # reopened below with its share of the threads
    detectors = []  # type: List[Detector]
    try:
        for _ in range(count):
            detectors.append(load_detector(model, threads=threads, say=_quiet))
    except BaseException:
        for d in detectors:
            d.backend.close()
        raise
    log.info("%d inference workers x %d CPU thread(s)", count, threads)
    return detectors


def _quiet(line):
    # type: (str) -> None
    log.debug("%s", line)


def default_record_path(source_uri):
    """Headless with no output named: record beside the current folder, never overwriting."""
    stem = os.path.splitext(os.path.basename(str(source_uri).rstrip("/")))[0] or "camera"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return os.path.join("out", "%s-annotated-%s.mp4" % (stem, stamp))


def run_live(model, source, display, output, window=None, resume=False, on_running=None):
    """Run the live pipeline with the four config sections; returns the process exit code.

    window:     an open WindowSink to show in and leave open (the kiosk supervisor keeps one
                across restarts); None: one is opened here when the config asks for it
    resume:     a restart (kiosk): the detections file is appended to, not refused
    on_running: called once, when everything is open and the first frame is next
    SIGINT, SIGTERM and SIGHUP end the run with the outputs finished; the code returned is
    then 128 + the signal's number.
    """
    uri = resolve_source_uri(source.uri)
    show_window = window is not None or display.window or display.kiosk
    if show_window and window is None:
        ok, reason = window_available()
        if not ok:
            if display.kiosk:
                raise HanjaLiveError("--kiosk needs a screen, but %s; run it on the device's "
                                     "display (DISPLAY=:0) or drop --kiosk" % reason)
            log.warning("no window: %s; running headless", reason)
            show_window = False
    loop = source.loop or display.kiosk or (str(source.uri) == "demo" and show_window)
    record = output.record
    if not show_window and record is None and output.json is None:
        record = default_record_path(uri)
        log.info("headless: the annotated video goes to %s", record)
    video = json_sink = None
    frames = None
    stop = StopSignals()
    try:
        # everything opened is closed again on the way out, also when a later step fails: a
        # restarted kiosk must not pile up cameras and GPU contexts
        with contextlib.ExitStack() as stack:
            stack.enter_context(stop)  # first in, last out: covers the closing
            stop.check()  # a kiosk's stop that came just before
            detectors = load_detectors(model)
            for d in detectors:
                stack.enter_context(d.backend)
            stop.check()  # each slow step: a Ctrl-C meanwhile ends the start here
            detector = detectors[0]
            annotator = Annotator(detector.names)
            src = stack.enter_context(open_source(
                uri, width=source.width, height=source.height, fps=source.fps,
                csi_flip=source.csi_flip, loop=loop, read_timeout_s=source.read_timeout_s,
                reconnect=source.reconnect, reconnect_max_s=source.reconnect_max_s))
            stop.check()

            def file_sink(make):
                try:
                    return stack.enter_context(make())
                except SinkError as exc:
                    if not resume:
                        raise
                    # a restarted kiosk shows its live view even if the disk filled meanwhile
                    log.warning("%s; going on without it", exc)
                    return None

            if record:
                video = file_sink(lambda: VideoSink(
                    record, fps=src.fps or float(source.fps), overwrite=output.overwrite,
                    segment_s=output.record_segment_s, min_free_mb=output.min_free_mb))
                if video is not None and src.is_live:
                    video = stack.enter_context(PacedRecorder(video))
            if output.json:
                json_sink = file_sink(lambda: JsonLinesSink(
                    output.json, detector.names, overwrite=output.overwrite, append=resume,
                    min_free_mb=output.min_free_mb))
            if show_window and window is None:
                window = stack.enter_context(WindowSink(display.title, kiosk=display.kiosk,
                                                        quit_keys=display.kiosk_quit_keys))
            stop.check()
            log.info("source: %s", src.description)
            if on_running is not None:
                on_running()
            try:
                frames = _loop(src, detectors, annotator, video, json_sink, window,
                               display.show_fps, source.read_timeout_s, stop.requested)
            finally:
                stop.hold()
            if stop.received is not None:
                log.info("%s: closing outputs", stop.name)
    except Stopped as exc:
        log.info("%s: stopped before the first frame", exc)
        return 128 + exc.signum
    if video is not None and video.finished:
        log.info("recording saved: %s", video.finished[0] if len(video.finished) == 1 else
                 "%d files, %s ... %s" % (len(video.finished), video.finished[0],
                                          video.finished[-1]))
        if isinstance(video, PacedRecorder) and (video.repeated or video.skipped or video.dropped):
            log.info("recording kept the camera's clock at %g fps: %d frames repeated, %d left "
                     "out for coming early, %d while the encoder was busy",
                     video.fps, video.repeated, video.skipped, video.dropped)
    if json_sink is not None:
        log.info("detections saved: %s", output.json)
    if frames is not None:
        log.info("done: %d frames", frames)
    return stop.exit_code or 0


def _loop(src, detectors, annotator, video, json_sink, window, show_fps, read_timeout_s,
          stop_requested):
    """The pipelined loop (hanja_live.pipeline) with the app's outputs; returns frames shown.
    stop_requested: polled between frames (a stop signal came)."""
    outputs = []
    if video is not None:
        outputs.append(Output("recording to %s" % video.path,
                              lambda frame, image, detections: video.write(image, frame.t_capture)))
    if json_sink is not None:
        outputs.append(Output("detections to %s" % json_sink.path,
                              lambda frame, image, detections: json_sink.write(frame, detections)))
    presenter = Presenter(annotator, outputs, window=window, show_fps=show_fps)
    return Pipeline(src, detectors, presenter, read_timeout_s=read_timeout_s,
                    stop_requested=stop_requested).run()
