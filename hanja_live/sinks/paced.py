"""PacedRecorder: a live camera's recording on the camera's clock, encoded on its own thread.

A live loop slower than its camera hands the recorder fewer frames than the camera made; a
file written at the camera's fps from those alone plays fast. The recorder places each frame
at its capture time on the file's clock (``fps`` frames a second): into the gap before it
goes the previous frame again, a frame early for its slot is left out, and a gap longer than
``max_fill_s`` (camera lost, reconnecting) is cut to that length.

Encoding happens on the recorder's thread, so neither a frame nor its repeats hold up the
loop: ``write`` copies the frame into one of a few reused buffers and hands it over through a
queue of one. When the encoder is still busy with the frame before, the new frame is not
recorded (``dropped``); its time goes to the next frame's repeats, so the file keeps the clock
and only shows fewer distinct pictures. A SinkError of the file sink (disk nearly full, folder
gone) comes out of the next ``write``, after the sink has finished what it wrote.
"""

import logging
import math
import queue
import threading
from typing import List, Optional

import numpy as np

from ..closing import ClosesOnExit
from ..errors import SinkError

log = logging.getLogger(__name__)

class PacedRecorder(ClosesOnExit):
    """Wraps a VideoSink (whose ``fps`` is the camera's); owns it and closes it.

    wait: block ``write`` while the encoder is busy instead of dropping the frame (for tests
          and offline use: every frame handed over is encoded).
    """

    def __init__(self, sink, max_fill_s=1.0, wait=False):
        self.sink = sink
        self.path = sink.path
        self.fps = float(sink.fps)
        self._max_fill = max(0, int(round(float(max_fill_s) * self.fps)))
        self._wait = bool(wait)
        self._t0 = None  # type: Optional[float]  # capture time of the file clock's frame 0
        self._clock = 0  # frames placed on the file's clock, repeats included
        self.repeated = 0  # frames written again to fill gaps
        self.skipped = 0  # frames left out for coming early
        self.dropped = 0  # frames left out because the encoder was busy
        self._jobs = queue.Queue(maxsize=1)  # type: queue.Queue  # (buffer, repeats of the previous frame) or None
        self._free = []  # type: List[np.ndarray]  # buffers back from the encoder
        self._lock = threading.Lock()
        self._error = None  # type: Optional[SinkError]
        self._error_raised = False
        self._sentinel_sent = False
        self._closed = False
        self._thread = threading.Thread(target=self._encode, name="recorder", daemon=True)
        self._thread.start()

    @property
    def finished(self):
        return self.sink.finished

    @property
    def frames(self):
        return self.sink.frames

    def write(self, image, t):
        # type: (np.ndarray, float) -> None
        """Place one (H, W, 3) uint8 BGR frame captured at ``t`` (time.monotonic())."""
        if self._error is not None:
            self._error_raised = True
            raise self._error
        if self._closed:
            raise SinkError("the recording %s is already closed" % self.path)
        if self._t0 is None:
            self._t0 = t
        slot = int(math.floor((t - self._t0) * self.fps + 0.5))  # index on the file's clock
        if slot < self._clock:
            self.skipped += 1
            return
        gap = slot - self._clock
        if gap > self._max_fill:
            self._t0 += (gap - self._max_fill) / self.fps  # cut the stall to max_fill_s
            gap = self._max_fill
        if not self._wait and self._jobs.full():
            self.dropped += 1
            return
        buf = self._buffer_like(image)
        np.copyto(buf, image)  # the caller reuses its image
        self._jobs.put((buf, gap))
        self.repeated += gap
        self._clock += gap + 1

    def _buffer_like(self, image):
        with self._lock:
            while self._free:
                buf = self._free.pop()
                if buf.shape == image.shape and buf.dtype == image.dtype:
                    return buf
        return np.empty_like(image)  # at most four exist: queued, encoding, last, this one

    def _encode(self):
        last = None  # the frame encoded last, repeated into gaps
        while True:
            job = self._jobs.get()
            if job is None:
                return
            buf, repeats = job
            if self._error is None:
                try:
                    if last is not None:
                        for _ in range(repeats):
                            self.sink.write(last)
                    self.sink.write(buf)
                except SinkError as exc:  # the sink has finished its file and says where
                    self._error = exc
                except Exception as exc:  # noqa: BLE001  (an encoder error must reach the loop, not end this thread)
                    self._error = SinkError("the recording %s stopped: %s" % (self.path, exc))
                    try:
                        self.sink.close()
                    except Exception as late:  # noqa: BLE001  (same: this thread must live on)
                        self._error = SinkError("the recording %s stopped: %s" % (self.path, late))
            if last is not None:
                with self._lock:
                    self._free.append(last)
            last = buf

    def _stop_encoder(self):
        while not self._sentinel_sent and self._thread.is_alive():
            try:
                self._jobs.put(None, timeout=0.1)
                self._sentinel_sent = True
            except queue.Full:
                pass
        self._thread.join()

    def close(self):
        """Encode what was handed over, then finish the file; an error the loop has not seen
        yet is logged."""
        if self._closed:
            return
        self._closed = True
        try:
            try:
                self._stop_encoder()
            except BaseException:
                # interrupted while waiting: the encoder must be done before the sink closes
                self._stop_encoder()
                raise
        finally:
            self.sink.close()
            if self._error is not None and not self._error_raised:
                log.warning("%s", self._error)
