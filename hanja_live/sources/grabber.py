"""Live sources: a thread reads the capture continuously and keeps only the newest frame.

A camera does not wait for the detector. Reading in the caller's thread would make the
driver's queue fill up and every frame shown late; instead the grabber hands over a one-slot
"newest frame" under a Condition, and counts the frames it replaced before anyone read them.

The capture is any object with ``read(out) -> image or None``, ``release()``,
``description``, ``fps``, ``failure_hint``, ``can_end`` and ``last_error``
(see opencv_capture.OpenCVCapture and csi.JetsonUtilsCapture).
"""

import logging
import threading
import time
from typing import Any, Optional

from ..errors import EndOfStream, SourceError
from ..frame import Frame
from .base import Source
from .buffers import BufferPool

log = logging.getLogger(__name__)

# slot + reader + the one being filled + one spare
POOL_SIZE = 4


class LiveSource(Source):
    """Frames from a live capture; see Source for the read() contract.

    max_failures consecutive failed reads end the stream: with EndOfStream when the capture
    says running out is normal (``can_end``) and frames came, else with SourceError.
    """

    is_live = True

    def __init__(self, capture, read_timeout_s=2.0, max_failures=10, retry_delay_s=0.05,
                 close_timeout_s=5.0):
        # type: (Any, float, int, float, float) -> None
        super(LiveSource, self).__init__()
        self._capture = capture
        self.description = capture.description
        self.fps = capture.fps
        self.read_timeout_s = float(read_timeout_s)
        self._max_failures = max(1, int(max_failures))
        self._retry_delay_s = retry_delay_s
        self._close_timeout_s = close_timeout_s
        self._cond = threading.Condition()
        self._latest = None  # type: Optional[Frame]
        self._captured = 0
        self._end = None  # type: Optional[Exception]
        self._closed = False
        self._stop = threading.Event()
        self._pool = BufferPool(POOL_SIZE)
        self._thread = threading.Thread(target=self._run, name="grabber", daemon=True)
        self._thread.start()

    @property
    def captured(self):
        # type: () -> int
        """Frames read from the capture so far (handed out + dropped + waiting)."""
        return self._captured

    def read(self, timeout=None):
        # type: (Optional[float]) -> Optional[Frame]
        wait_s = self.read_timeout_s if timeout is None else max(0.0, timeout)
        deadline = time.monotonic() + wait_s
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
            self._cond.notify_all()
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._close_timeout_s)
            if self._thread.is_alive():
                log.warning("%s: the capture thread is still blocked in a read; it releases "
                            "the device when that read returns", self.description)

    def _run(self):
        failures = 0
        try:
            while not self._stop.is_set():
                buffer = self._pool.take()
                image = self._capture.read(buffer)
                if image is None:
                    failures += 1
                    if failures >= self._max_failures:
                        self._finish(self._failure(failures))
                        return
                    self._stop.wait(self._retry_delay_s)
                    continue
                failures = 0
                if image is not buffer:
                    self._pool.keep(image)
                self._publish(image)
        # without this a bug in a capture adapter would leave read() returning None forever
        except Exception as exc:
            log.exception("%s: capture thread failed", self.description)
            self._finish(SourceError("%s: capture thread failed: %s: %s"
                                     % (self.description, type(exc).__name__, exc)))
        finally:
            self._capture.release()

    def _publish(self, image):
        frame = Frame(image, self._captured, None, time.monotonic())
        with self._cond:
            if self._closed:
                return
            if self._latest is not None:
                self._dropped += 1
            self._latest = frame
            self._captured += 1
            self._cond.notify_all()

    def _failure(self, failures):
        # type: (int) -> Exception
        """What ends the stream after ``failures`` failed reads in a row.

        Reconnecting (reopen the capture, back off, go on counting) belongs here.
        """
        if self._captured and getattr(self._capture, "can_end", False):
            return EndOfStream("%s ended after %d frames" % (self.description, self._captured))
        detail = getattr(self._capture, "last_error", None)
        detail = " (%s)" % detail if detail else ""
        hint = getattr(self._capture, "failure_hint", "")
        if not self._captured:
            return SourceError("%s opened but delivered no frame (%d reads failed%s) — %s"
                               % (self.description, failures, detail, hint))
        return SourceError("%s stopped delivering frames after %d (%d reads failed in a row%s) "
                           "— %s" % (self.description, self._captured, failures, detail, hint))

    def _finish(self, end):
        # type: (Exception) -> None
        with self._cond:
            self._end = end
            self._cond.notify_all()
