"""Live sources: a thread reads the capture continuously and keeps only the newest frame.

A camera does not wait for the detector. Reading in the caller's thread would make the
driver's queue fill up and every frame shown late; instead the grabber hands over a one-slot
"newest frame" under a Condition, and counts the frames it replaced before anyone read them.

A kiosk runs unattended, so a capture that stops (cable pulled, stream dropped) is reopened
with ``reopen()`` and growing pauses between tries, while ``status_text`` says so for the
screen; a read that hangs for good is abandoned to its thread and a fresh capture opened.

The capture is any object with ``read(out) -> image or None``, ``release()``,
``description``, ``fps``, ``failure_hint``, ``can_end`` and ``last_error``
(see opencv_capture.OpenCVCapture and csi.JetsonUtilsCapture).
"""

import logging
import threading
import time
from typing import Any, Callable, List, Optional, Tuple

import numpy as np

from ..errors import EndOfStream, SourceError
from ..frame import Frame
from .base import Source
from .buffers import BufferPool

log = logging.getLogger(__name__)

# slot + reader + the one being filled + one spare
POOL_SIZE = 4
# threads left blocked in a hung read; past this many, no more are abandoned (each may hold
# a device or a socket until its read returns)
MAX_ABANDONED = 3


def usable_image(image):
    # type: (Any) -> bool
    """Whether a capture delivered a real (H, W, 3) uint8 frame rather than garbage."""
    return (isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3
            and image.dtype == np.uint8 and image.shape[0] > 0 and image.shape[1] > 0)


class LiveSource(Source):
    """Frames from a live capture; see Source for the read() contract.

    max_failures consecutive failed reads (None, an exception or a corrupt image) end the
    capture. Then, when frames came before: EndOfStream if the capture says running out is
    normal (``can_end``); else, given ``reopen``, the capture is reopened, first at once,
    then after backoff_s, 2 x backoff_s, ... up to backoff_max_s, until it works or close().
    Without ``reopen`` (or when no frame ever came) the stream ends with SourceError.
    stall_s: a single read blocked this long counts as a lost capture (needs ``reopen``).
    """

    is_live = True

    def __init__(self, capture, read_timeout_s=2.0, max_failures=10, retry_delay_s=0.05,
                 close_timeout_s=5.0, reopen=None, backoff_s=0.5, backoff_max_s=10.0,
                 stall_s=None):
        # type: (Any, float, int, float, float, Optional[Callable[[], Any]], float, float, Optional[float]) -> None
        super(LiveSource, self).__init__()
        self.description = capture.description
        self.fps = capture.fps
        self.read_timeout_s = float(read_timeout_s)
        self._max_failures = max(1, int(max_failures))
        self._retry_delay_s = retry_delay_s
        self._close_timeout_s = close_timeout_s
        self._reopen = reopen
        self._backoff_s = float(backoff_s)
        self._backoff_max_s = max(float(backoff_max_s), self._backoff_s)
        self._stall_s = stall_s
        self._cond = threading.Condition()
        self._latest = None  # type: Optional[Frame]
        self._captured = 0
        self._reconnects = 0
        self._end = None  # type: Optional[Exception]
        self._closed = False
        self._stop = threading.Event()
        self._pool = BufferPool(POOL_SIZE)
        self._lost = None  # type: Optional[str]  # status while reconnecting
        self._attempts = 0  # reconnect tries since the last frame
        self._last_frame_t = time.monotonic()
        # the thread reading now: its generation, and since when it is inside capture.read
        self._generation = 0
        self._reading_since = None  # type: Optional[float]
        self._abandoned = []  # type: List[threading.Thread]
        self._thread = self._start(capture)

    @property
    def captured(self):
        # type: () -> int
        """Frames read from the capture so far (handed out + dropped + waiting)."""
        return self._captured

    @property
    def reconnects(self):
        # type: () -> int
        """How often the capture was lost and opened again."""
        return self._reconnects

    @property
    def status_text(self):
        # type: () -> Optional[str]
        with self._cond:
            if self._lost is not None:
                return self._lost
            if self._end is not None or self._closed:
                return None
            waited = time.monotonic() - self._last_frame_t
        if waited > max(self.read_timeout_s, 1.0):
            return "no picture from the camera for %d s - waiting" % waited
        return None

    def read(self, timeout=None):
        # type: (Optional[float]) -> Optional[Frame]
        wait_s = self.read_timeout_s if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + wait_s
        self._check_stall()
        with self._cond:
            while self._latest is None or self._closed:
                if self._closed:
                    raise EndOfStream("%s was closed" % self.description)
                if self._end is not None:
                    raise type(self._end)(str(self._end))
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._cond.wait(remaining)
            frame, self._latest = self._latest, None
            return frame

    def close(self):
        # type: () -> None
        with self._cond:
            self._closed = True
            self._generation += 1
            self._cond.notify_all()
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._close_timeout_s)
            if self._thread.is_alive():
                log.warning("%s: the capture thread is still blocked in a read; it releases "
                            "the device when that read returns", self.description)

    # -- the capture thread ---------------------------------------------------------------

    def _start(self, capture):
        # type: (Any) -> threading.Thread
        """A capture thread of the current generation; ``capture`` None: open one first."""
        thread = threading.Thread(target=self._run, args=(self._generation, capture),
                                  name="grabber", daemon=True)
        thread.start()
        return thread

    def _current(self, generation):
        # type: (int) -> bool
        return generation == self._generation and not self._stop.is_set()

    def _run(self, generation, capture):
        failures = 0
        try:
            while self._current(generation):
                if capture is None:
                    capture = self._reconnect(generation)
                    failures = 0
                    continue
                image, buffer, error = self._read_once(generation, capture)
                if not self._current(generation):
                    return  # abandoned while reading; a newer thread owns the source
                if image is not None and not usable_image(image):
                    with self._cond:
                        self._corrupt += 1
                        corrupt = self._corrupt
                    if corrupt in (1, 10, 100) or corrupt % 1000 == 0:  # not a flood
                        log.warning("%s: skipped %d corrupt frame%s so far (the last: %s)",
                                    self.description, corrupt, "" if corrupt == 1 else "s",
                                    _shape(image))
                    image, error = None, "corrupt frame %s" % _shape(image)
                if image is None:
                    failures += 1
                    if error is not None:
                        capture.last_error = error
                    if failures < self._max_failures:
                        self._stop.wait(self._retry_delay_s)
                        continue
                    end = self._failure(failures, capture)
                    if isinstance(end, EndOfStream) or self._reopen is None or not self._captured:
                        self._finish(end)
                        return
                    detail = getattr(capture, "last_error", None)
                    log.warning("%s: camera lost \u2014 %d reads failed in a row%s; reconnecting",
                                self.description, failures, " (%s)" % detail if detail else "")
                    capture.release()
                    capture = None
                    continue
                failures = 0
                if image is not buffer:
                    self._pool.keep(image)
                self._publish(image, generation)
        # without this a bug in a capture adapter would leave read() returning None forever
        except Exception as exc:
            log.exception("%s: capture thread failed", self.description)
            self._finish(SourceError("%s: capture thread failed: %s: %s"
                                     % (self.description, type(exc).__name__, exc)))
        finally:
            if capture is not None:
                capture.release()

    def _read_once(self, generation, capture):
        # type: (int, Any) -> Tuple[Any, Optional[np.ndarray], Optional[str]]
        """(image or None, the pool buffer offered, what went wrong or None); the read is
        timed for the stall check."""
        buffer = self._pool.take()
        with self._cond:
            if generation == self._generation:
                self._reading_since = time.monotonic()
        try:
            return capture.read(buffer), buffer, None
        # a capture adapter that raises has failed this read; retried like a None
        except Exception as exc:
            log.debug("%s: read raised", self.description, exc_info=True)
            return None, buffer, "%s: %s" % (type(exc).__name__, exc)
        finally:
            with self._cond:
                if generation == self._generation:
                    self._reading_since = None

    def _reconnect(self, generation):
        # type: (int) -> Any
        """A reopened capture, trying until one opens; None when close() or a newer thread
        took over. Tries count on until a frame arrives, so a capture that opens but gives
        nothing is retried with growing pauses too."""
        assert self._reopen is not None
        while self._current(generation):
            with self._cond:
                if self._attempts:
                    delay = min(self._backoff_s * 2.0 ** (self._attempts - 1),
                                self._backoff_max_s)
                else:
                    delay = 0.0
                self._attempts += 1
                attempt = self._attempts
            if delay and self._stop.wait(delay):
                return None
            if not self._current(generation):
                return None
            with self._cond:
                self._lost = "camera lost - reconnecting (try %d)" % attempt
            try:
                capture = self._reopen()
            except SourceError as exc:
                log.warning("%s: reconnect try %d failed: %s", self.description, attempt, exc)
                continue
            # an opener failing in an unforeseen way must not end the kiosk's camera for good
            except Exception as exc:
                log.warning("%s: reconnect try %d failed: %s: %s", self.description, attempt,
                            type(exc).__name__, exc)
                continue
            if not self._current(generation):
                capture.release()
                return None
            log.info("%s: reopened (try %d)", self.description, attempt)
            return capture
        return None

    def _check_stall(self):
        # type: () -> None
        """Abandon a read that has hung past stall_s and start a thread on a fresh capture."""
        if self._reopen is None or self._stall_s is None:
            return
        with self._cond:
            since = self._reading_since
            if (self._closed or self._end is not None or since is None
                    or time.monotonic() - since < self._stall_s):
                return
            self._abandoned = [t for t in self._abandoned if t.is_alive()]
            if len(self._abandoned) >= MAX_ABANDONED:
                return
            log.warning("%s: camera lost \u2014 a read has hung for %.1f s; reconnecting",
                        self.description, time.monotonic() - since)
            self._abandoned.append(self._thread)
            self._generation += 1
            self._reading_since = None
            self._lost = "camera lost - reconnecting"
            self._thread = self._start(None)

    def _publish(self, image, generation):
        frame = Frame(image, self._captured, None, time.monotonic())
        with self._cond:
            if self._closed or generation != self._generation:
                return
            if self._latest is not None:
                self._dropped += 1
            self._latest = frame
            self._captured += 1
            self._last_frame_t = frame.t_capture
            back = self._lost is not None
            attempts = self._attempts
            self._lost = None
            self._attempts = 0
            if back:
                self._reconnects += 1
            self._cond.notify_all()
        if back:
            log.warning("%s: camera back after %d tr%s", self.description, attempts,
                        "y" if attempts == 1 else "ies")

    def _failure(self, failures, capture):
        # type: (int, Any) -> Exception
        """What ends the capture after ``failures`` failed reads in a row."""
        if self._captured and getattr(capture, "can_end", False):
            return EndOfStream("%s ended after %d frames" % (self.description, self._captured))
        detail = getattr(capture, "last_error", None)
        detail = " (%s)" % detail if detail else ""
        hint = getattr(capture, "failure_hint", "")
        if not self._captured:
            return SourceError("%s opened but delivered no frame (%d reads failed%s) — %s"
                               % (self.description, failures, detail, hint))
        return SourceError("%s stopped delivering frames after %d (%d reads failed in a row%s) "
                           "— %s" % (self.description, self._captured, failures, detail, hint))

    def _finish(self, end):
        # type: (Exception) -> None
        with self._cond:
            self._end = end
            self._lost = None
            self._cond.notify_all()


def _shape(image):
    # type: (Any) -> str
    if isinstance(image, np.ndarray):
        return "%s %s" % ("x".join(str(d) for d in image.shape), image.dtype)
    return type(image).__name__
