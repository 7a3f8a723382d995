"""Room left on the disk an output is written to.

OpenCV's video writer drops write errors silently and a file cut off by a full disk may not
play at all, so file sinks stop while there is still room to finish what they have: they
ask the filesystem before each write and end with a SinkError when less than a reserve is free.
"""

import os

from ..errors import SinkError

MB = 1024 * 1024


def free_bytes(folder):
    # type: (str) -> int
    """Bytes an unprivileged process may still write in ``folder``'s filesystem."""
    info = os.statvfs(folder)
    return info.f_bavail * info.f_frsize


class FreeSpaceGuard(object):
    """``check()`` raises SinkError when ``folder`` has less than ``min_free_mb`` MB left.

    ``what`` names the output in the message ("recording out/kiosk.mp4"). min_free_mb 0
    turns the check off.
    """

    def __init__(self, folder, min_free_mb, what):
        # type: (str, float, str) -> None
        self.folder = folder
        self.min_free_bytes = int(float(min_free_mb) * MB)
        self.what = what

    def check(self, pending_bytes=0):
        # type: (int) -> None
        """``pending_bytes``: what the writer still holds back and must be able to write."""
        if self.min_free_bytes <= 0:
            return
        try:
            free = free_bytes(self.folder)
        except OSError as exc:
            raise SinkError("%s stopped: its folder %s is gone (%s); was the drive removed?"
                            % (self.what, self.folder, exc.strerror or exc))
        if free < self.min_free_bytes + pending_bytes:
            raise SinkError("%s stopped: only %.1f MB free on the disk of %s (output.min_free_mb "
                            "is %g, finishing the file takes %.1f MB); free some space there"
                            % (self.what, free / float(MB), self.folder,
                               self.min_free_bytes / float(MB), pending_bytes / float(MB)))
