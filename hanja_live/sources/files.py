"""Video files: every frame, in order, decoded ahead by a background thread.

The thread keeps a small bounded queue full, so decoding the next frame overlaps the
detector working on this one; nothing is ever dropped. The queue ends with a sentinel (the
end, or the error that stopped decoding).
"""

import logging
import os
import queue
import threading
import time
from typing import Optional

import cv2

from ..errors import EndOfStream, SourceError
from ..frame import Frame
from .base import Source
from .buffers import BufferPool
from .opencv_capture import has_backend

log = logging.getLogger(__name__)

QUEUE_SIZE = 4
_PUT_POLL_S = 0.1


class _End(object):
    """Queue sentinel: ``error`` is None at the end of the file, else what stopped decoding."""

    def __init__(self, error=None):
        # type: (Optional[SourceError]) -> None
        self.error = error


def _open_video(path):
    """A VideoCapture on ``path``: FFmpeg when this cv2 has it (it fails quietly on a file
    it cannot read, where GStreamer prints warnings), else whatever backend cv2 picks."""
    return cv2.VideoCapture(path, cv2.CAP_FFMPEG if has_backend(cv2.CAP_FFMPEG) else cv2.CAP_ANY)


class VideoFileSource(Source):
    """Frames of a video file; ``loop=True`` starts again at the end (indices keep counting)."""

    is_live = False

    def __init__(self, path, loop=False, read_timeout_s=2.0, queue_size=QUEUE_SIZE):
        # type: (str, bool, float, int) -> None
        super(VideoFileSource, self).__init__()
        self.path = path
        self.loop = loop
        self.read_timeout_s = float(read_timeout_s)
        capture = _open_video(path)
        first = capture.read()[1] if capture.isOpened() else None
        if first is None:
            capture.release()
            raise SourceError("cannot decode %s: not a video OpenCV can read (convert it with "
                              "ffmpeg -i %s out.mp4, or check the file is complete)"
                              % (path, os.path.basename(path)))
        fps = capture.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1e5 else None
        count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        height, width = first.shape[:2]
        self.description = "video %s (%dx%d%s%s%s)" % (
            path, width, height, ", %d frames" % count if count > 0 else "",
            ", %g fps" % self.fps if self.fps else "", ", looping" if loop else "")
        self._queue = queue.Queue(maxsize=max(1, queue_size))  # type: queue.Queue
        self._pool = BufferPool(queue_size + 3)
        self._pool.keep(first)
        self._stop = threading.Event()
        self._end = None  # type: Optional[_End]
        self._thread = threading.Thread(target=self._decode, args=(capture, first),
                                        name="video-decoder", daemon=True)
        self._thread.start()

    def read(self, timeout=None):
        # type: (Optional[float]) -> Optional[Frame]
        if self._end is None:
            try:
                item = self._queue.get(timeout=self.read_timeout_s if timeout is None
                                       else max(0.0, timeout))
            except queue.Empty:
                return None
            if not isinstance(item, _End):
                return item
            self._end = item
        if self._end.error is not None:
            raise SourceError(str(self._end.error))
        raise EndOfStream(self.description)

    def close(self):
        # type: () -> None
        self._stop.set()
        while self._thread.is_alive():
            self._drain()
            self._thread.join(_PUT_POLL_S)
        self._drain()
        if self._end is None:
            self._end = _End()

    def _drain(self):
        try:
            while True:
                self._queue.get_nowait()
        except queue.Empty:
            pass

    def _put(self, item):
        # type: (object) -> bool
        """Queue ``item``, waiting for room; False when close() asked the thread to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_PUT_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _decode(self, capture, image):
        index = 0
        end = _End()
        try:
            while image is not None:
                if not self._put(Frame(image, index, None, time.monotonic())):
                    return
                index += 1
                buffer = self._pool.take()
                ok, image = capture.read(buffer) if buffer is not None else capture.read()
                if not ok or image is None:
                    image = None
                    if self.loop and not self._stop.is_set():
                        # reopening is the one restart every backend supports; a seek to
                        # frame 0 is ignored by some
                        capture.release()
                        capture = _open_video(self.path)
                        image = capture.read()[1] if capture.isOpened() else None
                if image is not None and image is not buffer:
                    self._pool.keep(image)
        # whatever stops the decoder must reach read() as an error, not look like the end
        except Exception as exc:
            log.debug("decoding %s failed", self.path, exc_info=True)
            end = _End(SourceError("decoding %s failed after %d frames (%s: %s) — check the "
                                   "file is complete" % (self.path, index, type(exc).__name__,
                                                         str(exc).strip())))
        finally:
            capture.release()
            self._put(end)
