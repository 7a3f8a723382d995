"""Live sources that fail: a real network camera (MJPEG over HTTP) unplugged and plugged back,
and scripted captures that fail, hand out garbage, raise or hang, through the real grabber."""

import logging
import threading
import time

import numpy as np
import pytest

from hanja_live.errors import EndOfStream, SourceError
from hanja_live.sources import LiveSource, open_source
from mjpeg_camera import MjpegCamera
from numbered_frames import frame_number, numbered_frame

# generous limits on waiting for things that happen within a second or two; reaching one
# fails the test with what was seen, it never decides a pass
PATIENCE_S = 30.0


def read_until(src, predicate, what):
    """Read (timeouts included) until ``predicate(frame or None)``; returns the frames read."""
    frames = []
    deadline = time.monotonic() + PATIENCE_S
    while time.monotonic() < deadline:
        frame = src.read(timeout=0.2)
        if frame is not None:
            frames.append(frame)
        if predicate(frame):
            return frames
    raise AssertionError("%s did not happen within %.0f s (status %r, %d frames)"
                         % (what, PATIENCE_S, src.status_text, len(frames)))


@pytest.fixture
def camera():
    cam = MjpegCamera()
    yield cam
    cam.close()


def test_camera_unplugged_reconnects_and_resumes(camera, caplog):
    url = camera.url("viewer:s3cret@")
    with caplog.at_level(logging.INFO), \
            open_source(url, read_timeout_s=0.5, reconnect_max_s=0.4) as src:
        assert src.is_live and "s3cret" not in src.description
        before = read_until(src, lambda f: f is not None and f.index >= 4, "first frames")
        assert src.status_text is None
        camera.unplug()
        statuses = set()

        def tried_twice(_):
            statuses.add(src.status_text)
            return src.status_text == "camera lost - reconnecting (try 2)"

        read_until(src, tried_twice, "a second reconnect try")
        assert "camera lost - reconnecting (try 1)" in statuses
        served_while_down = camera.served
        camera.plug()
        after = read_until(src, lambda f: f is not None, "a frame after plugging back")
        frame = after[-1]
        assert src.status_text is None and src.reconnects == 1
        # the picture is the camera's new one, not a stale frame from before the unplug
        assert frame_number(frame.image) >= served_while_down % 256
        assert frame.index > before[-1].index
    messages = [r.getMessage() for r in caplog.records]
    assert any("camera lost" in m for m in messages)
    assert any("reconnect try 1 failed" in m for m in messages)
    assert any("camera back after" in m for m in messages)
    assert not any("s3cret" in m for m in messages)


def test_without_reconnect_a_lost_camera_ends_the_stream(camera):
    with open_source(camera.url(), read_timeout_s=0.5, reconnect=False) as src:
        read_until(src, lambda f: f is not None, "a first frame")
        camera.unplug()
        with pytest.raises(SourceError, match="stopped delivering frames after"):
            read_until(src, lambda f: False, "the end")


# --- scripted captures -----------------------------------------------------------------------

GOOD = "good"  # a numbered (H, W, 3) uint8 frame
FAIL = None  # a failed read
RAISE = "raise"  # the read raises
HANG = "hang"  # the read blocks until the test lets it go


class ScriptedCapture(object):
    """A capture playing ``script``; after it, every read fails. Good frames are numbered
    from ``first_number`` on."""

    def __init__(self, script, can_end=False, name="scripted", first_number=1, pace_s=0.0):
        self.script = list(script)
        self.pace_s = pace_s  # a camera's frame interval; 0: as fast as the reader asks
        self.can_end = can_end
        self.description = name
        self.fps = 30.0
        self.failure_hint = "check the script"
        self.last_error = None
        self.released = False
        self.first_number = first_number
        self.count = 0
        self.hang = threading.Event()

    def read(self, out=None):
        step = self.script.pop(0) if self.script else FAIL
        if step is HANG:
            self.hang.wait(PATIENCE_S)
            step = GOOD
        if step is RAISE:
            raise RuntimeError("driver fell over")
        if step is GOOD:
            time.sleep(self.pace_s)
            self.count += 1
            # first_number, first_number + 1, ... within 100 (numbers are 8 bits on screen)
            return numbered_frame(self.first_number + (self.count - 1) % 100)
        return step  # None or garbage

    def release(self):
        self.released = True


GARBAGE = [
    np.zeros((0, 0, 3), np.uint8),
    np.zeros((48, 64), np.uint8),
    np.zeros((48, 64, 3), np.float32),
    np.zeros((48, 64, 2), np.uint8),
    np.zeros((48, 64, 4), np.uint8),
    np.zeros((3,), np.uint8),
    "not an image",
]


def drain(src, expect_end=None):
    """Frames until the script is exhausted: a timeout after frames, or the end raised."""
    frames = []
    while True:
        try:
            frame = src.read(timeout=1.0)
        except (EndOfStream, SourceError) as exc:
            if expect_end is None:
                raise
            assert isinstance(exc, expect_end), exc
            return frames, exc
        if frame is None:
            assert expect_end is None, "the stream did not end"
            return frames, None
        frames.append(frame)


@pytest.mark.parametrize("script, good, corrupt", [
    ([GOOD] * 3, 3, 0),
    ([GOOD, FAIL, GOOD, FAIL, FAIL, GOOD], 3, 0),
    ([GOOD] + GARBAGE[:3] + [GOOD], 2, 3),
    ([GOOD, GARBAGE[3], GOOD, GARBAGE[4], GOOD, GARBAGE[5], GOOD, GARBAGE[6], GOOD], 5, 4),
    ([GOOD, RAISE, GOOD, RAISE, RAISE, GOOD], 3, 0),
])
def test_failed_reads_and_garbage_are_skipped(script, good, corrupt, caplog):
    # max_failures above any run of bad reads in the script: nothing ends the capture
    with caplog.at_level(logging.WARNING), \
            LiveSource(ScriptedCapture(script), max_failures=5, retry_delay_s=0.001) as src:
        frames = []
        while len(frames) + src.dropped < good:
            frame = src.read(timeout=5.0)
            assert frame is not None, "only %d good frames came" % len(frames)
            frames.append(frame)
        assert src.corrupt == corrupt
        assert all(f.image.shape == (48, 64, 3) and f.image.dtype == np.uint8 for f in frames)
        numbers = [frame_number(f.image) for f in frames]
        assert numbers == sorted(numbers) and numbers[-1] == good
    said = [r.getMessage() for r in caplog.records if "corrupt frame" in r.getMessage()]
    assert len(said) == min(corrupt, 1)  # the first is said; then the 10th, 100th, ...


@pytest.mark.parametrize("script, can_end, reopen, error, needle", [
    ([GOOD, GOOD], False, False, SourceError,
     "scripted stopped delivering frames after 2 (3 reads failed in a row"),
    ([GOOD, RAISE, RAISE, RAISE], False, False, SourceError,
     "in a row (RuntimeError: driver fell over)) — check the script"),
    ([GOOD] + GARBAGE[:3], False, False, SourceError, "(corrupt frame 48x64x3 float32)"),
    ([GOOD, GOOD], True, False, EndOfStream, "scripted ended after 2 frames"),
    ([GOOD, GOOD], True, True, EndOfStream, "scripted ended after 2 frames"),
    ([FAIL, FAIL, FAIL], False, True, SourceError, "opened but delivered no frame (3 reads"),
])
def test_how_a_capture_ends(script, can_end, reopen, error, needle):
    reopened = []

    def opener():
        reopened.append(True)
        return ScriptedCapture([GOOD])

    capture = ScriptedCapture(script, can_end=can_end)
    with LiveSource(capture, max_failures=3, retry_delay_s=0.001,
                    reopen=opener if reopen else None) as src:
        frames, end = drain(src, expect_end=error)
    assert needle in str(end)
    assert not reopened, "a capture that ends normally or never worked is not reopened"
    assert capture.released


def test_reopen_retries_with_growing_pauses_until_a_frame_comes():
    src = None
    seen = []  # (status when the opener was called, time)
    first = ScriptedCapture([GOOD, GOOD])
    # tries 1 and 2 fail to open, 3 opens a capture that gives nothing, 4 works
    outcomes = [SourceError("no such camera"), OSError("USB hub reset"),
                ScriptedCapture([FAIL] * 5, name="dead"), ScriptedCapture([GOOD] * 50)]
    opened = []

    def opener():
        seen.append((src.status_text, time.monotonic()))
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        opened.append(outcome)
        return outcome

    src = LiveSource(first, max_failures=3, retry_delay_s=0.001, reopen=opener, backoff_s=0.05,
                     backoff_max_s=0.15)
    with src:
        before = read_until(src, lambda f: f is not None and frame_number(f.image) == 2,
                            "the first capture's frames")
        after = read_until(src, lambda f: f is not None and f.index > before[-1].index,
                           "frames from the fourth try")
    assert [s for s, _ in seen] == ["camera lost - reconnecting (try %d)" % n for n in (1, 2, 3, 4)]
    gaps = [b - a for (_, a), (_, b) in zip(seen, seen[1:])]
    # pauses 0.05, 0.1, 0.15 (capped), each at least as long as asked
    assert [g >= p for g, p in zip(gaps, (0.05, 0.1, 0.15))] == [True, True, True]
    assert src.reconnects == 1 and first.released and opened[0].released
    assert frame_number(after[-1].image) >= 1
    assert src.status_text is None


def test_a_hung_read_is_abandoned_for_a_fresh_capture(caplog):
    stuck = ScriptedCapture([GOOD, HANG])
    # paced like a 30 FPS camera: unpaced, a loaded machine's grabber could use up all 500
    # frames before the test reads its "one more frame"
    fresh = ScriptedCapture([GOOD] * 500, name="fresh", first_number=100, pace_s=1 / 30.0)
    with caplog.at_level(logging.WARNING):
        src = LiveSource(stuck, retry_delay_s=0.001, reopen=lambda: fresh, stall_s=0.3)
        with src:
            first = read_until(src, lambda f: f is not None, "the first frame")
            assert frame_number(first[-1].image) == 1
            read_until(src, lambda f: f is not None and frame_number(f.image) >= 100,
                       "a frame from the fresh capture")
            assert src.status_text is None and src.reconnects == 1
            assert not stuck.released  # still inside its read
            stuck.hang.set()  # the hung read returns at last ...
            later = read_until(src, lambda f: stuck.released, "the hung thread's end")
            later += read_until(src, lambda f: f is not None, "one more frame")
    assert stuck.released  # ... and its thread lets the device go, handing out nothing
    assert all(frame_number(f.image) >= 100 for f in later)
    assert any("a read has hung" in r.getMessage() for r in caplog.records)
    assert fresh.released


def test_waiting_without_a_frame_is_said():
    capture = ScriptedCapture([GOOD, HANG])
    try:
        with LiveSource(capture, read_timeout_s=0.1) as src:
            assert src.read(timeout=5.0) is not None
            assert src.status_text is None
            read_until(src, lambda f: src.status_text is not None, "a waiting notice")
            text = src.status_text
            capture.hang.set()
        assert text.startswith("no picture from the camera for ")
        assert all(ord(c) < 128 for c in text)  # drawn with OpenCV's Hershey fonts
    finally:
        capture.hang.set()
