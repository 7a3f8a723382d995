"""The interface every capture source offers."""

from typing import Optional

from ..closing import ClosesOnExit
from ..frame import Frame


class Source(ClosesOnExit):
    """A stream of frames.

    description: what is being read, safe to print (URL passwords masked as ***)
    is_live:     True for cameras and network streams (frames that are not read in time
                 are dropped), False for files and folders (every frame, in order)
    fps:         frame rate the source reports, or None when it does not know
    dropped:     frames a live source replaced with newer ones before anyone read them
    skipped:     files of an image folder that could not be decoded
    corrupt:     frames a live capture delivered broken (empty, wrong shape or type), skipped
    status_text: None while frames flow; else one short ASCII line for the screen saying what
                 is wrong, e.g. "camera lost - reconnecting (try 3)" (drawn with Hershey fonts)

    ``read(timeout)`` has three outcomes: a Frame; None when no new frame arrived within
    ``timeout`` seconds (default: the source's read_timeout_s); or an exception —
    EndOfStream after the last frame of a finite source, SourceError on failure.
    """

    description = ""
    is_live = False
    fps = None  # type: Optional[float]
    read_timeout_s = 2.0

    def __init__(self):
        self._dropped = 0
        self._skipped = 0
        self._corrupt = 0

    @property
    def dropped(self):
        # type: () -> int
        return self._dropped

    @property
    def skipped(self):
        # type: () -> int
        return self._skipped

    @property
    def corrupt(self):
        # type: () -> int
        return self._corrupt

    @property
    def status_text(self):
        # type: () -> Optional[str]
        return None

    def read(self, timeout=None):
        # type: (Optional[float]) -> Optional[Frame]
        raise NotImplementedError

    def close(self):
        # type: () -> None
        """Stop background threads and release the device or file; safe to call twice."""

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.description)
