"""Frame buffers that are reused once nobody holds them any more.

A source hands its images out and cannot know how long the reader keeps them (the app may
keep the last frame on screen while paused). So a buffer is written again only when the
pool holds the last reference to it: any Frame, view or slice of it held elsewhere keeps
its reference count up and the pool allocates instead. No reader ever sees a frame change
under it, and in the steady state (reader drops each frame before the next) no frame is
allocated.
"""

import sys
import threading
from typing import List, Optional

import numpy as np


def _references(buffers, i):
    # type: (List[np.ndarray], int) -> int
    return sys.getrefcount(buffers[i])


class BufferPool(object):
    """Up to ``size`` arrays of one shape; ``take()`` returns one nobody else holds."""

    def __init__(self, size):
        # type: (int) -> None
        self._size = size
        self._buffers = []  # type: List[np.ndarray]
        self._lock = threading.Lock()
        # the count a held-by-nobody buffer shows, measured the same way as in take(), so
        # that interpreter differences in how getrefcount counts do not matter
        probe = [np.empty((1,), np.uint8)]
        self._free_count = _references(probe, 0)

    def take(self):
        # type: () -> Optional[np.ndarray]
        """A free buffer to decode into, or None: let the decoder allocate (then ``keep`` it)."""
        with self._lock:
            for i in range(len(self._buffers)):
                if _references(self._buffers, i) <= self._free_count:
                    return self._buffers[i]
        return None

    def keep(self, image):
        # type: (np.ndarray) -> None
        """Adopt ``image`` (a decoder allocated it) for later reuse, if the pool has room.

        A new frame size (camera renegotiated, next video in a loop) empties the pool.
        """
        with self._lock:
            if self._buffers and self._buffers[0].shape != image.shape:
                self._buffers = []
            if len(self._buffers) < self._size and image.base is None and not any(
                    b is image for b in self._buffers):
                self._buffers.append(image)

    def __len__(self):
        return len(self._buffers)
