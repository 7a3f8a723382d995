"""Detections as JSON lines: one object per frame, flushed at once so the file can be followed.

    {"image": "page_001.jpg", "detections": [{"cls": 2, "label": "三", "conf": 0.91, "box": [..]}]}
    {"frame": 17, "detections": []}

"image" (the file name) for frames from an image folder, "frame" (the 0-based index) for video
and cameras. Labels are written as UTF-8 characters, not \\u escapes.
"""

import json
import os
import sys
from typing import IO, Any, Optional

from ..closing import ClosesOnExit
from ..errors import SinkError
from .free_space import FreeSpaceGuard
from .output_path import prepare_output_path


def frame_record(frame, detections, names):
    """The JSON-ready dict written for one frame (hanja_live.frame.Frame + Detections)."""
    record = {"image": frame.name} if frame.name else {"frame": int(frame.index)}
    record["detections"] = detections.to_records(names)
    return record


class JsonLinesSink(ClosesOnExit):
    """Context manager appending one JSON object per frame to ``path`` ("-": standard output).

    append: add to an existing file instead of refusing it (a restarted kiosk goes on).
    min_free_mb: stop with a SinkError while the disk still has this much room, so the lines
    written so far stay whole; 0: no check.
    """

    def __init__(self, path, names, overwrite=False, append=False, min_free_mb=0):
        self.path = str(path)
        self.names = tuple(names)
        self.lines = 0
        self._whole_bytes = 0  # bytes of complete lines in the file
        if self.path == "-":
            self._file = sys.stdout  # type: Optional[IO[Any]]  # text here, bytes for a file we own
            self._owned = False
            return
        appending = append and os.path.isfile(self.path)
        prepare_output_path(self.path, overwrite or appending, "detections file")
        self._guard = FreeSpaceGuard(os.path.dirname(os.path.abspath(self.path)), min_free_mb,
                                     "the detections file %s" % self.path)
        self._guard.check()
        try:
            # bytes, so that the length of what is known to be whole can be counted
            self._file = open(self.path, "ab" if appending else "wb")
            self._whole_bytes = self._file.tell()
        except (IOError, OSError) as exc:
            raise SinkError("cannot write the detections file %s (%s); choose a writable place"
                            % (self.path, exc.strerror or exc))
        self._owned = True

    def write(self, frame, detections):
        """Write the line for ``frame`` (hanja_live.frame.Frame) and its ``detections``.

        Any failure closes the file (the lines before stay whole) and raises SinkError.
        """
        if self._file is None:
            raise SinkError("the detections file %s is already closed" % self.path)
        line = json.dumps(frame_record(frame, detections, self.names), ensure_ascii=False) + "\n"
        try:
            if self._owned:
                data = line.encode("utf-8")
                self._guard.check()
                self._file.write(data)
                self._file.flush()
                self._whole_bytes += len(data)
            else:
                self._file.write(line)
                self._file.flush()
        except SinkError:
            self._close_quietly()
            raise
        except UnicodeEncodeError:
            raise SinkError("%s cannot take UTF-8 labels; set PYTHONIOENCODING=utf-8 or write "
                            "the detections to a file" % self.path)
        except (IOError, OSError) as exc:
            self._close_quietly()
            raise SinkError("cannot write to the detections file %s (%s); is the disk full?"
                            % (self.path, exc.strerror or exc))
        self.lines += 1

    def _close_quietly(self):
        """Close after a failure, cutting off a line the disk took only part of."""
        try:
            self.close()
        except SinkError:
            self._file = None
        try:
            if os.path.getsize(self.path) > self._whole_bytes:
                os.truncate(self.path, self._whole_bytes)
        except OSError:
            pass

    def close(self):
        if self._file is not None and self._owned:
            try:
                self._file.close()
            except (IOError, OSError) as exc:
                raise SinkError("cannot finish the detections file %s (%s)"
                                % (self.path, exc.strerror or exc))
        self._file = None
