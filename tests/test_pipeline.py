"""The pipelined loop on real sources: video files and image folders written to disk, a live
GStreamer pipeline, real signals; the window is a scripted stand-in that records what it got
(the real window under Xvfb is driven end to end in test_app_window.py)."""

import logging
import os
import shutil
import signal
import subprocess
import threading

import cv2
import numpy as np
import pytest

from hanja_live.detector import Detector
from hanja_live.backends.loader import load_backend
from hanja_live.errors import EndOfStream, SinkError, SourceError
from hanja_live.overlay import Annotator
from hanja_live.pipeline import Output, Pipeline, Presenter
from hanja_live.sources import gstreamer_status, open_source
from hanja_live.sources.base import Source

import numbered_frames
from numbered_frames import H, W

# the tiny model's box (y 19..29 of the 64x48 frame) has its 24 px tag at y 19..42: numbers are
# read below it
TAG_BOTTOM = 44


def numbered_frame(number):
    return numbered_frames.numbered_frame(number, dark=40, light=215)


def frame_number(image):
    return numbered_frames.frame_number(image, top=TAG_BOTTOM)


def video_file(tmp_path, count):
    path = str(tmp_path / "numbers.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (W, H))
    assert writer.isOpened()
    for i in range(count):
        writer.write(numbered_frame(i))
    writer.release()
    return path


def image_folder(tmp_path, count):
    folder = tmp_path / "pages"
    folder.mkdir()
    for i in range(count):
        assert cv2.imwrite(str(folder / ("page%d.png" % i)), numbered_frame(i))
    return str(folder)


@pytest.fixture
def detector(tiny_model):
    backend = load_backend(tiny_model, backend="onnxruntime", log=lambda *a: None)
    with backend:
        yield Detector(backend)


@pytest.fixture
def second_detector(tiny_model):
    """Another detector on its own backend: the second inference thread."""
    backend = load_backend(tiny_model, backend="onnxruntime", log=lambda *a: None)
    with backend:
        yield Detector(backend)


def inference_threads():
    return [t for t in threading.enumerate()
            if t.name.startswith("inference") and t.is_alive()]


class Collect(object):
    """An output that keeps what it was given and checks the one-slot promise as it goes."""

    def __init__(self, hold_s=0.0, fail_at=None, error=None, last=None, ahead=1):
        self.numbers, self.indices, self.names, self.boxes = [], [], [], []
        self.ahead = []  # results inferred but not yet shown, seen at each write
        self.pipeline = None
        self.hold = threading.Event()
        self.hold_s = hold_s
        self.fail_at = fail_at
        self.error = error
        self.last = last  # index of the source's last frame: wait for the next result before it
        self.wait_ahead = ahead  # results to wait for before each write (but the last ones)

    def write(self, frame, image, detections):
        if self.fail_at is not None and len(self.indices) == self.fail_at:
            raise self.error
        self.indices.append(frame.index)
        self.names.append(frame.name)
        self.numbers.append(frame_number(image))
        self.boxes.append(len(detections))
        p = self.pipeline
        if self.last is not None and frame.index <= self.last - self.wait_ahead:
            # wait for the next results, so that the stages are seen to overlap, then give
            # the inference threads time to run further ahead if they (wrongly) would
            for _ in range(2000):
                if p.inferred - p.frames - 1 >= self.wait_ahead:
                    break
                self.hold.wait(0.005)
        if self.hold_s:
            self.hold.wait(self.hold_s)
        if p is not None:
            self.ahead.append(p.inferred - p.frames - 1)


def run_pipeline(src, detector, outputs, window=None, on_frame=None, read_timeout_s=2.0,
                 stop_requested=None):
    names = (detector[0] if isinstance(detector, list) else detector).names
    presenter = Presenter(Annotator(names), [Output("collect", o.write) for o in outputs],
                          window=window)
    pipeline = Pipeline(src, detector, presenter, read_timeout_s=read_timeout_s,
                        on_frame=on_frame, log_every_s=None, stop_requested=stop_requested)
    for o in outputs:
        o.pipeline = pipeline
    return pipeline, pipeline.run()


@pytest.mark.parametrize("kind, count, workers", [("video", 40, 1), ("folder", 12, 1),
                                                  ("video", 40, 2), ("folder", 12, 2)])
def test_file_source_every_frame_in_order(tmp_path, detector, second_detector, kind, count,
                                          workers):
    uri = video_file(tmp_path, count) if kind == "video" else image_folder(tmp_path, count)
    out = Collect(hold_s=0.005, last=count - 1, ahead=workers)
    detectors = [detector, second_detector][:workers]
    with open_source(uri) as src:
        pipeline, shown = run_pipeline(src, detectors, [out])
    assert shown == count == pipeline.frames
    assert out.indices == list(range(count))
    assert out.numbers == list(range(count)), "each image must be drawn with its own result"
    assert out.boxes == [1] * count
    if kind == "folder":
        assert out.names == ["page%d.png" % i for i in range(count)]
    assert pipeline.dropped == 0
    # one inference thread: the frame written is the newest result or the one before it;
    # n threads: at most n results ahead of it
    assert max(out.ahead) <= workers and min(out.ahead) >= 0
    assert workers in out.ahead, "inference never ran ahead: the stages did not overlap"
    assert inference_threads() == []


def _gst_ok():
    usable, said = gstreamer_status()
    if not usable:
        return False, "cv2 was built without GStreamer (%s)" % said
    tool = shutil.which("gst-inspect-1.0")
    for name in ("videotestsrc", "videoconvert", "appsink"):
        if tool and subprocess.call([tool, "--exists", name]) != 0:
            return False, "GStreamer element %s is not installed" % name
    return True, ""


_GST_OK, _GST_WHY = _gst_ok()


@pytest.mark.skipif(not _GST_OK, reason=_GST_WHY)
def test_live_source_newest_frame_wins(detector):
    # 200 frames a second against a loop held to at most ~30: most frames must be dropped
    # by the source, and the loop must always get the newest one
    pipeline_text = ("videotestsrc is-live=true num-buffers=2000 pattern=ball ! "
                     "video/x-raw,width=64,height=48,framerate=200/1 ! videoconvert ! "
                     "video/x-raw,format=BGR ! appsink")
    out = Collect(hold_s=0.03)
    with open_source(pipeline_text) as src:
        assert src.is_live
        pipeline, shown = run_pipeline(src, detector, [out],
                                       on_frame=lambda record: len(out.indices) >= 15)
        captured = src.captured
    assert shown == 15
    assert all(b > a for a, b in zip(out.indices, out.indices[1:])), "frames out of order"
    gaps = [b - a for a, b in zip(out.indices, out.indices[1:])]
    assert max(gaps) > 1 and pipeline.dropped > 0
    assert shown + pipeline.dropped <= captured
    assert max(out.ahead) <= 1
    assert inference_threads() == []


class ListSource(Source):
    """Frames from a list, then what ``then`` says: "end", "stall" (None, with a status
    line after ``status_after`` empty reads) or an exception to raise."""

    def __init__(self, images, then="end", status_after=None, live=True):
        super(ListSource, self).__init__()
        self.description = "list of %d frames" % len(images)
        self.is_live = live
        self.images = list(images)
        self.index = 0
        self.then = then
        self.status_after = status_after
        self.empty_reads = 0
        self.read_timeouts = []

    @property
    def status_text(self):
        if self.status_after is not None and self.empty_reads >= self.status_after:
            return "camera lost \u2014 reconnecting (try %d)" % self.empty_reads
        return None

    def read(self, timeout=None):
        from hanja_live.frame import Frame
        import time
        self.read_timeouts.append(timeout)
        if self.images:
            self.index += 1
            return Frame(self.images.pop(0), self.index - 1, None, time.monotonic())
        if self.then == "end":
            raise EndOfStream(self.description)
        if self.then == "stall":
            self.empty_reads += 1
            time.sleep(min(timeout, 0.05))
            return None
        raise self.then


class ScriptedWindow(object):
    """Stands in for WindowSink: records each image shown, answers with scripted actions.

    ``on_show`` maps the number of images shown so far (1 for the first) to the action that
    show() returns; while paused, each poll() returns the next of ``paused_polls``; any other
    poll (the loop waiting for a result) returns None. ``until`` is called with the window
    after every call and may return an action to end with ("quit")."""

    def __init__(self, on_show=None, paused_polls=(), until=None):
        self.on_show = dict(on_show or {})
        self.paused_polls = list(paused_polls)
        self.until = until
        self.shown = []
        self.polls = 0
        self.paused = False

    def show(self, image):
        self.shown.append(image.copy())
        return self._answer(self.on_show.get(len(self.shown)))

    def poll(self):
        self.polls += 1
        action = None
        if self.paused and self.paused_polls:
            action = self.paused_polls.pop(0)
        return self._answer(action)

    def _answer(self, action):
        if action is None and self.until is not None:
            action = self.until(self)
        if action == "pause":
            self.paused = not self.paused
        return action


def numbered(count):
    return [numbered_frame(i) for i in range(count)]


def test_stall_shows_last_frame_with_source_status(detector, caplog):
    src = ListSource(numbered(3), then="stall", status_after=3)

    def quit_once_notice_shown(window):
        return "quit" if len(window.shown) >= 4 else None

    window = ScriptedWindow(until=quit_once_notice_shown)
    caplog.set_level(logging.WARNING, logger="hanja_live")
    pipeline, shown = run_pipeline(src, detector, [], window=window, read_timeout_s=30.0)
    assert shown == 3
    last, notice = window.shown[2], window.shown[3]
    # the notice is the last frame again, with the status drawn over its top: one line, or on a
    # frame too narrow for the text, the numbers and a second line under them
    rows = np.flatnonzero((notice != last).any(axis=(1, 2)))
    assert rows.size and rows.max() < 2 * (Annotator(detector.names).label_height + 8)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith("camera lost \u2014 reconnecting")
    assert max(t for t in src.read_timeouts if t is not None) <= 0.1 + 1e-9, \
        "reads must be short so that quitting is never held up by a waiting source"
    assert inference_threads() == []


def test_stall_without_status_says_no_frame(detector, caplog):
    src = ListSource(numbered(2), then="stall")
    window = ScriptedWindow(until=lambda w: "quit" if len(w.shown) >= 3 else None)
    caplog.set_level(logging.WARNING, logger="hanja_live")
    run_pipeline(src, detector, [], window=window, read_timeout_s=0.3)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and warnings[0].startswith("no frame from list of 2 frames for ")
    assert (window.shown[2] != window.shown[1]).any()


@pytest.mark.parametrize("error", [SourceError("camera 0 stopped delivering frames"),
                                   ValueError("a bug in a source")])
@pytest.mark.parametrize("workers", [1, 2])
def test_source_failure_reaches_the_caller(detector, second_detector, error, workers):
    out = Collect()
    src = ListSource(numbered(4), then=error)
    with pytest.raises(type(error)) as raised:
        run_pipeline(src, [detector, second_detector][:workers], [out])
    assert raised.value is error
    assert out.indices == [0, 1, 2, 3], "every frame before the failure is shown, in order"
    assert inference_threads() == []


def test_model_failure_reaches_the_caller(detector):
    class Broken(object):
        names = detector.names
        backend = object()

        def __call__(self, image):
            raise RuntimeError("ONNX Runtime failed while running the model")

    with pytest.raises(RuntimeError, match="failed while running"):
        run_pipeline(ListSource(numbered(3)), Broken(), [Collect()])
    assert inference_threads() == []


def test_each_inference_thread_needs_its_own_backend(detector):
    with pytest.raises(ValueError, match="its own backend"):
        Pipeline(ListSource(numbered(1)), [detector, detector],
                 Presenter(Annotator(detector.names)))


def test_real_sigint_stops_cleanly(tmp_path, detector):
    """Ctrl-C (a real SIGINT to this process) while frames flow: KeyboardInterrupt comes out
    of run() and no thread is left behind."""
    uri = video_file(tmp_path, 200)
    out = Collect(hold_s=0.005)

    def interrupt(record):
        if record.index == 5:
            os.kill(os.getpid(), signal.SIGINT)
        return False

    # Python's own Ctrl-C handler, also where this runs with SIGINT ignored (a script's "cmd &")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with open_source(uri) as src:
            with pytest.raises(KeyboardInterrupt):
                run_pipeline(src, detector, [out], on_frame=interrupt)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert 6 <= len(out.indices) < 200
    assert inference_threads() == []
    assert [t.name for t in threading.enumerate() if t.name == "video-decoder"] == []


@pytest.mark.parametrize("then", ["end", "stall"])
def test_stop_requested_ends_the_run_between_frames(detector, then):
    """A flag a signal handler set (StopSignals.requested) ends the run like stop(): after the
    frame in hand while frames flow, or at the next poll while none comes (a stalled camera)."""
    frames = 200 if then == "end" else 6
    src = ListSource(numbered(frames), then=then, live=False)
    out = Collect()
    if then == "end":
        asked = lambda: len(out.indices) >= 6  # noqa: E731
    else:
        asked = lambda: src.empty_reads >= 3  # noqa: E731
    presenter = Presenter(Annotator(detector.names), [Output("collect", out.write)])
    pipeline = Pipeline(src, detector, presenter, log_every_s=None, stop_requested=asked)
    out.pipeline = pipeline
    guard = threading.Timer(30.0, pipeline.stop)  # a loop that never polls still ends
    guard.start()
    try:
        shown = pipeline.run()
    finally:
        guard.cancel()
    assert shown == len(out.indices) == 6
    assert out.indices == list(range(6)) and inference_threads() == []
    if then == "stall":
        assert 3 <= src.empty_reads < 100  # polls of 0.05 s each: not the guard's 30 s


# (actions of show() by frames shown, of poll() while paused, frames the loop must show,
# snapshots expected)
KEY_SCRIPTS = [
    ({2: "quit"}, [], 2, 0),
    ({1: "snapshot", 3: "quit"}, [], 3, 1),
    # two in a row (most likely in the same second): the second must not replace the first
    ({1: "snapshot", 2: "snapshot", 3: "quit"}, [], 3, 2),
    # pause at frame 2: the window is polled, no frame is shown, s saves the frame on screen,
    # space goes on, quit at frame 4
    ({2: "pause", 4: "quit"}, [None, "snapshot", None, "pause"], 4, 1),
    ({2: "pause"}, [None, "quit"], 2, 0),  # quit while paused
    ({}, [], 10, 0),  # no key: every frame, then the end of the source
]


@pytest.mark.parametrize("on_show, paused_polls, frames, snapshots", KEY_SCRIPTS)
def test_window_keys_pause_snapshot_quit(tmp_path, monkeypatch, detector, on_show,
                                         paused_polls, frames, snapshots):
    monkeypatch.chdir(tmp_path)
    src = ListSource(numbered(10), live=False)
    window = ScriptedWindow(on_show, paused_polls)
    out = Collect()
    _, shown = run_pipeline(src, detector, [out], window=window)
    assert shown == frames == len(window.shown)
    assert out.indices == list(range(frames))
    snaps = sorted(p for p in os.listdir(str(tmp_path)) if p.startswith("snapshot-"))
    assert len(snaps) == snapshots
    for name in snaps:
        saved = cv2.imread(str(tmp_path / name))
        # the snapshot is what was on screen when "s" was pressed
        assert any((saved == image).all() for image in window.shown)
    if paused_polls:
        assert window.polls >= len(paused_polls)  # the window stayed alive while paused
        assert window.paused_polls == []
    assert inference_threads() == []


def test_live_result_from_before_a_pause_is_not_shown(detector):
    # paused after frame 1; by the time space is pressed again the result inferred before
    # the pause is stale: it is thrown away (and counted) instead of shown
    window = ScriptedWindow({2: "pause", 4: "quit"}, [None] * 5 + ["pause"])
    out = Collect()
    pipeline, shown = run_pipeline(ListSource(numbered(10)), detector, [out], window=window)
    assert shown == 4 == len(out.indices)
    assert out.indices[:2] == [0, 1]
    assert all(b > a for a, b in zip(out.indices, out.indices[1:]))
    assert pipeline.discarded == pipeline.dropped == out.indices[-1] + 1 - shown
    assert pipeline.discarded in (0, 1)


def test_failing_output_is_dropped_and_the_view_goes_on(detector, caplog):
    good, bad = Collect(), Collect(fail_at=2, error=SinkError("disk full writing out.mp4"))
    window = ScriptedWindow()
    caplog.set_level(logging.WARNING, logger="hanja_live")
    _, shown = run_pipeline(ListSource(numbered(10)), detector, [bad, good], window=window)
    assert shown == 10 and good.indices == list(range(10)) and bad.indices == [0, 1]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["disk full writing out.mp4; no more collect, the live view goes on"]


def test_headless_with_every_output_failed_stops_with_the_error(detector):
    bad = Collect(fail_at=3, error=SinkError("disk full writing out.mp4"))
    with pytest.raises(SinkError, match="disk full"):
        run_pipeline(ListSource(numbered(10)), detector, [bad])
    assert bad.indices == [0, 1, 2]
    assert inference_threads() == []
