"""The live loop as three concurrent stages: capture -> inference -> display and recording.

    capture    the source's own thread: a live source keeps only the newest frame (older
               ones are dropped and counted), a file source queues every frame in order
    inference  a worker thread started here (or one per detector when given several):
               letterbox -> backend -> decode + NMS
    present    the calling thread: overlay, FPS line, recording, JSON lines, the window and
               its keys (OpenCV's GUI calls must stay in the main thread)

Inference hands each result to the presenting thread through a handoff that keeps frame
order and holds at most one result per inference thread: a file source still gives every
frame in order, no frame is inferred only to be thrown away, and with one inference thread
the frame on screen is never more than one inference behind the newest result. While one
frame is drawn and written the next is inferred and the one after that decoded: throughput
is 1 / (slowest stage) instead of 1 / (sum of stages).
"""

import logging
import os
import threading
import time
from typing import Callable, Dict, List, NamedTuple, Optional

import cv2
import numpy as np

from .detections import Detections
from .detector import StageTimes, thread_clock
from .errors import EndOfStream, SinkError
from .fps import FpsMeter
from .frame import Frame

log = logging.getLogger("hanja_live")

STATUS_EVERY_S = 1.0  # the progress line in the log
STALL_LOG_EVERY_S = 5.0  # "no frame from ..." at most this often
STALL_REDRAW_S = 1.0  # the on-screen "no frame ... for N s" line is redrawn this often
STATUS_GRACE_S = 0.5  # a source that reports a problem is shown after this long without frames
POLL_S = 0.1  # longest a worker wait lasts before it looks at the stop flag
GUI_POLL_S = 0.03  # with a window: handle its events at least this often while idle
JOIN_TIMEOUT_S = 10.0


class FrameRecord(NamedTuple):
    """What one presented frame cost, for the benchmark (milliseconds unless said)."""

    index: int  # type: ignore[assignment]  # Frame.index (shadows tuple.index, as there)
    detections: int
    capture_ms: float  # inference stage waiting in src.read() (the sequential loop: decoding)
    preprocess_ms: float
    inference_ms: float
    decode_ms: float  # decode + NMS
    verify_ms: float  # the verifier (0 without one)
    overlay_ms: float  # boxes, labels and the FPS line
    sink_ms: float  # recording, JSON lines and the window
    # CPU time of preprocess + decode + overlay in their threads: their cost without the
    # time spent waiting for a core
    pre_decode_overlay_cpu_ms: float
    t_capture: float  # time.monotonic(): Frame.t_capture (a file source: when decoded)
    t_read: float  # time.monotonic() when the loop took the frame from the source
    t_done: float  # time.monotonic() when written and shown


class Output(object):
    """Somewhere presented frames go: ``write(frame, image, detections)``.

    ``name`` says what it is in the warning given when it fails (raises SinkError) and is
    dropped while the live view goes on.
    """

    def __init__(self, name, write):
        # type: (str, Callable) -> None
        self.name = name
        self.write = write


class Presented(NamedTuple):
    action: Optional[str]  # the window's key action ("quit", "pause", ...) or None
    overlay_ms: float
    sink_ms: float
    overlay_cpu_ms: float


class Presenter(object):
    """Draws a result and hands it to the outputs and the window: the present stage.

    The benchmark's sequential baseline runs the very same object in its one thread.
    """

    def __init__(self, annotator, outputs=(), window=None, show_fps=True):
        self.annotator = annotator
        self.outputs = list(outputs)  # type: List[Output]
        self.window = window
        self.show_fps = show_fps
        self.fps = FpsMeter()
        self._had_outputs = bool(self.outputs)

    def present(self, frame, detections, inference_ms):
        # type: (...) -> Presented
        """Draw onto ``frame.image``, write and show it."""
        c0, t0 = thread_clock(), time.perf_counter()
        image = self.annotator.annotate(frame.image, detections)
        rate = self.fps.tick()
        if self.show_fps:
            self.annotator.draw_status(image, rate, inference_ms)
        c1, t1 = thread_clock(), time.perf_counter()
        failed = []  # type: List[tuple]
        for output in self.outputs:
            try:
                output.write(frame, image, detections)
            except SinkError as exc:
                failed.append((output, exc))
        for output, error in failed:
            self._drop(output, error)
        action = self.window.show(image) if self.window is not None else None
        t2 = time.perf_counter()
        return Presented(action, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (c1 - c0) * 1e3)

    def _drop(self, output, exc):
        self.outputs.remove(output)
        if self.window is None and self._had_outputs and not self.outputs:
            # headless with nothing left to write: going on would only heat the board
            raise exc
        log.warning("%s; no more %s, the live view goes on", exc, output.name)


class _Result(NamedTuple):
    frame: Frame
    detections: Detections
    times: StageTimes
    capture_ms: float
    t_read: float


class _End(NamedTuple):
    error: Optional[BaseException]  # None: the source ended


class _Handoff(object):
    """Results from the inference threads to the presenting thread, in frame order.

    An inference thread takes a ticket before it reads a frame (the tickets follow the
    source's order) and hands the result back under it; the presenting thread takes results
    by ticket. Tickets are given out only while fewer than ``depth`` results are ahead of the
    one being presented: with one inference thread (depth 1) a frame is read only once the
    last result has been taken, so the frame on screen is never more than one inference
    behind the newest; with n threads, n.
    """

    def __init__(self, depth):
        # type: (int) -> None
        self._cond = threading.Condition()
        self._depth = depth
        self._issued = 0  # tickets given out
        self._taken = 0  # results the presenting thread has taken
        self._ready = {}  # type: Dict[int, object]  # ticket -> _Result or _End
        self._stale_below = 0  # results of lower tickets are thrown away, not shown
        self.produced = 0  # results handed back
        self.discarded = 0
        self._closed = False

    def claim(self):
        # type: () -> Optional[int]
        """Wait for room, then a ticket; None once closed."""
        with self._cond:
            while self._issued - self._taken >= self._depth and not self._closed:
                self._cond.wait(POLL_S)
            if self._closed:
                return None
            self._issued += 1
            return self._issued - 1

    def put(self, ticket, item):
        # type: (int, object) -> None
        with self._cond:
            self._ready[ticket] = item
            if isinstance(item, _Result):
                self.produced += 1
            self._cond.notify_all()

    def get(self, timeout):
        # type: (float) -> Optional[object]
        """The next result in order, waiting up to ``timeout`` s for it; None when it did
        not come."""
        with self._cond:
            while True:
                if self._taken not in self._ready:
                    self._cond.wait(timeout)
                item = self._ready.pop(self._taken, None)
                if item is None:
                    return None
                self._taken += 1
                self._cond.notify_all()
                if isinstance(item, _Result) and self._taken <= self._stale_below:
                    self.discarded += 1
                    continue
                return item

    def drop_pending(self):
        """Results of the tickets given out so far will be thrown away instead of shown."""
        with self._cond:
            self._stale_below = self._issued

    def close(self):
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Pipeline(object):
    """Runs ``src`` through the detectors and ``presenter`` until the end, a quit key or stop().

    src:        hanja_live.sources.Source (read(timeout), description, is_live, dropped,
                optional status_text)
    detectors:  one hanja_live.detector.Detector, or several, each with its own backend:
                one inference thread each, taking frames in turn (for a CPU backend, several
                single-threaded sessions outrun one multi-threaded session, whose threads
                wait for each other at every layer); results are shown in frame order
    presenter:  Presenter (overlay, outputs, window)
    read_timeout_s: no frame for this long shows "no frame from ..." (or the source's
                status_text) over the last frame and in the log
    on_frame:   called with a FrameRecord after each presented frame; returning True stops
    log_every_s: the "frame N  fps ..." log line this often (None: never)
    stop_requested: polled between frames (at least every POLL_S); True stops like stop().
                For flags that signal handlers set: a handler must not take stop()'s lock,
                which the thread it interrupts may be holding
    """

    def __init__(self, src, detectors, presenter, read_timeout_s=2.0, on_frame=None,
                 log_every_s=STATUS_EVERY_S, stop_requested=None):
        self.detectors = list(detectors) if isinstance(detectors, (list, tuple)) \
            else [detectors]
        backends = [id(getattr(d, "backend", d)) for d in self.detectors]
        if not backends or len(set(backends)) != len(backends):
            raise ValueError("each inference thread needs a detector with its own backend "
                             "(they fill their input buffer in place)")
        self.src = src
        self.presenter = presenter
        self.read_timeout_s = float(read_timeout_s)
        self.on_frame = on_frame
        self.log_every_s = log_every_s
        self._stop_requested = stop_requested  # type: Optional[Callable[[], bool]]
        self.frames = 0  # presented so far
        self._handoff = _Handoff(len(self.detectors))
        self._read_lock = threading.Lock()  # one reader at a time: tickets in frame order
        self._stop = threading.Event()
        self._ended = threading.Event()  # the source ended or failed: read no more
        self._resume = threading.Event()  # cleared while paused: inference waits
        self._resume.set()
        # time.monotonic() since when an inference thread has been waiting for a frame
        self._waiting_since = None  # type: Optional[float]
        self._workers = [threading.Thread(target=self._infer_loop, args=(d,), daemon=True,
                                          name="inference" + ("-%d" % i if i else ""))
                         for i, d in enumerate(self.detectors)]

    @property
    def inferred(self):
        # type: () -> int
        """Results the inference threads have produced so far."""
        return self._handoff.produced

    @property
    def discarded(self):
        # type: () -> int
        """Live results thrown away instead of shown (they were from before a pause)."""
        return self._handoff.discarded

    @property
    def dropped(self):
        # type: () -> int
        """Frames captured but never shown: dropped by a live source, or thrown away here."""
        return int(getattr(self.src, "dropped", 0)) + self.discarded

    def stop(self):
        """Ask run() to return after the frame in hand (safe from any thread)."""
        self._stop.set()

    def run(self):
        # type: () -> int
        """Present frames until the source ends, "quit", on_frame says stop, or stop();
        returns the number of frames presented. Errors of the source, the model or the
        outputs are raised here, in the caller's thread."""
        for worker in self._workers:
            worker.start()
        try:
            return self._present_loop()
        finally:
            self._stop.set()
            self._resume.set()
            self._handoff.close()
            deadline = time.monotonic() + JOIN_TIMEOUT_S
            for worker in self._workers:
                worker.join(max(0.0, deadline - time.monotonic()))
            if any(w.is_alive() for w in self._workers):
                log.warning("an inference thread did not stop within %.0f s (stuck in %s?)",
                            JOIN_TIMEOUT_S, self.src.description)

    # -- the inference threads ---------------------------------------------------------

    def _infer_loop(self, detector):
        while not self._stop.is_set() and not self._ended.is_set():
            if not self._resume.wait(POLL_S):
                continue  # paused
            with self._read_lock:
                if self._ended.is_set():
                    return
                ticket = self._handoff.claim()
                if ticket is None:
                    return
                try:
                    got = self._read_frame()
                except EndOfStream:
                    got = _End(None)
                # whatever stops the source (a SourceError, a bug) must reach the presenting
                # thread as an error instead of leaving it waiting for results
                except Exception as exc:
                    got = _End(exc)
                if isinstance(got, _End):
                    self._ended.set()
            if got is None:  # stopped while waiting
                self._handoff.put(ticket, _End(None))
                return
            if isinstance(got, _End):
                self._handoff.put(ticket, got)
                return
            frame, t_read, capture_ms = got
            del got
            try:
                detections, times = detector(frame.image)
            # a model failure, like a source failure, ends the run in the presenting thread
            except Exception as exc:
                self._ended.set()
                self._handoff.put(ticket, _End(exc))
                return
            # from here on only the handoff may hold the frame: a frame still referenced
            # keeps its buffer from the source's pool, which then allocates a new one
            self._handoff.put(ticket, _Result(frame, detections, times, capture_ms, t_read))
            del frame, detections

    def _read_frame(self):
        """(frame, t_read, capture_ms) from the source; None when stopped first."""
        since = time.monotonic()
        self._waiting_since = since
        try:
            while not self._stop.is_set():
                # short waits, so that stop() is seen; a stall is timed by _StallNotice
                frame = self.src.read(timeout=min(self.read_timeout_s, POLL_S))
                if frame is not None:
                    t_read = time.monotonic()
                    return frame, t_read, (t_read - since) * 1e3
            return None
        finally:
            self._waiting_since = None

    # -- the presenting thread ---------------------------------------------------------

    def _present_loop(self):
        window = self.presenter.window
        poll_s = GUI_POLL_S if window is not None else POLL_S
        paused = False
        shown = None  # type: Optional[np.ndarray]  # last image written and shown
        stall = _StallNotice(self)
        last_status = time.monotonic()
        while not self._stopping():
            if paused:
                action = window.poll()
                if action is None:
                    time.sleep(GUI_POLL_S)
                    continue
                quit_now, paused = _react(action, shown, paused)
                if quit_now:
                    return self.frames
                if not paused:
                    self._resume_after_pause()
                continue
            item = self._handoff.get(poll_s)
            if item is None:
                action = stall.check(shown)
                if action is None and window is not None:
                    action = window.poll()
                quit_now, paused = _react(action, shown, paused)
                if quit_now:
                    return self.frames
                if paused:
                    self._resume.clear()
                continue
            if isinstance(item, _End):
                if item.error is not None:
                    raise item.error
                return self.frames
            assert isinstance(item, _Result)
            stall.clear()
            shown = None  # its buffer may go back to the source while this frame is drawn
            frame, times = item.frame, item.times
            done = self.presenter.present(frame, item.detections, times.inference_ms)
            shown = frame.image
            self.frames += 1
            now = time.monotonic()
            if self.on_frame is not None:
                record = FrameRecord(frame.index, len(item.detections), item.capture_ms,
                                     times.preprocess_ms, times.inference_ms, times.decode_ms,
                                     times.verify_ms,
                                     done.overlay_ms, done.sink_ms,
                                     times.preprocess_cpu_ms + times.decode_cpu_ms
                                     + done.overlay_cpu_ms, frame.t_capture, item.t_read, now)
                if self.on_frame(record):
                    return self.frames
            if self.log_every_s is not None and now - last_status >= self.log_every_s:
                last_status = now
                log.info("frame %d  fps %.1f  inference %.1f ms  detections %d  dropped %d",
                         frame.index, self.presenter.fps.value, times.inference_ms,
                         len(item.detections), self.dropped)
            del item, frame  # only ``shown`` may keep the frame's buffer from its pool
            quit_now, paused = _react(done.action, shown, paused)
            if quit_now:
                return self.frames
            if paused:
                self._resume.clear()
        return self.frames

    def _stopping(self):
        # type: () -> bool
        if self._stop_requested is not None and self._stop_requested():
            self._stop.set()
        return self._stop.is_set()

    def _resume_after_pause(self):
        # a live result from before the pause would show the past for a frame or two
        if self.src.is_live:
            self._handoff.drop_pending()
        self.presenter.fps.reset()  # the pause is not slow frames
        self._resume.set()


class _StallNotice(object):
    """No frame for a while: say so over the last frame and in the log, without flooding."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self._view = None  # type: Optional[np.ndarray]  # copy of the last frame + the notice
        self._drawn_at = 0.0
        self._logged_at = None  # type: Optional[float]
        self._text = None  # type: Optional[str]

    def text(self):
        # type: () -> Optional[str]
        """The notice to give now, or None while frames are coming."""
        p = self.pipeline
        since = p._waiting_since
        if since is None:
            return None
        waited = time.monotonic() - since
        status = getattr(p.src, "status_text", None)
        if status and waited >= STATUS_GRACE_S:
            return str(status)
        if waited >= p.read_timeout_s:
            return "no frame from %s for %.*f s" % (p.src.description, 0 if waited >= 10 else 1,
                                                    waited)
        return None

    def check(self, shown):
        """Show and log the notice when due; returns the window's action or None."""
        text = self.text()
        if text is None:
            return None
        now = time.monotonic()
        if self._logged_at is None or now - self._logged_at >= STALL_LOG_EVERY_S:
            self._logged_at = now
            log.warning("%s; waiting", text)
        window = self.pipeline.presenter.window
        if window is None or shown is None:
            return None
        # the text changes as the seconds count up: redrawn once a second, not every poll
        if self._text is not None and now - self._drawn_at < STALL_REDRAW_S:
            return None
        self._text, self._drawn_at = text, now
        if self._view is None or self._view.shape != shown.shape:
            self._view = np.empty_like(shown)
        np.copyto(self._view, shown)
        self.pipeline.presenter.annotator.draw_status(self._view, None, None, extra=text)
        return window.show(self._view)

    def clear(self):
        if self._logged_at is not None:
            log.info("frames again from %s", self.pipeline.src.description)
        self._logged_at = None
        self._text = None


def _react(action, image, paused):
    """A window key action -> (quit now, paused); space toggles pause, s saves the frame."""
    if action == "snapshot" and image is not None:
        save_snapshot(image)
    elif action == "pause":
        paused = not paused
    return action == "quit", paused


def save_snapshot(image):
    # type: (np.ndarray) -> Optional[str]
    """Write ``image`` as snapshot-<time>.png in the current folder, never over an earlier
    one (snapshot-<time>-2.png, ...); returns the path, or None when it could not."""
    stem = time.strftime("snapshot-%Y%m%d-%H%M%S")
    path, n = stem + ".png", 1
    while os.path.lexists(path):
        n += 1
        path = "%s-%d.png" % (stem, n)
    if cv2.imwrite(path, image):
        log.info("snapshot saved: %s", path)
        return path
    log.warning("could not write snapshot %s (folder not writable?)", path)
    return None
