"""Detections as JSON lines: one object per frame, flushed at once so the file can be followed.

    {"image": "page_001.jpg", "detections": [{"cls": 2, "label": "三", "conf": 0.91, "box": [..]}]}
    {"frame": 17, "detections": []}

"image" (the file name) for frames from an image folder, "frame" (the 0-based index) for video
and cameras. Labels are written as UTF-8 characters, not \\u escapes.
"""

import json
import sys

from ..closing import ClosesOnExit
from ..errors import SinkError
from .output_path import prepare_output_path


def frame_record(frame, detections, names):
    """The JSON-ready dict written for one frame (hanja_live.frame.Frame + Detections)."""
    record = {"image": frame.name} if frame.name else {"frame": int(frame.index)}
    record["detections"] = detections.to_records(names)
    return record


class JsonLinesSink(ClosesOnExit):
    """Context manager appending one JSON object per frame to ``path`` ("-": standard output)."""

    def __init__(self, path, names, overwrite=False):
        self.path = str(path)
        self.names = tuple(names)
        self.lines = 0
        if self.path == "-":
            self._file = sys.stdout
            self._owned = False
            return
        prepare_output_path(self.path, overwrite, "detections file")
        try:
            self._file = open(self.path, "w", encoding="utf-8")
        except (IOError, OSError) as exc:
            raise SinkError("cannot write the detections file %s (%s); choose a writable place"
                            % (self.path, exc.strerror or exc))
        self._owned = True


    def write(self, frame, detections):
        """Write the line for ``frame`` (hanja_live.frame.Frame) and its ``detections``."""
        if self._file is None:
            raise SinkError("the detections file %s is already closed" % self.path)
        line = json.dumps(frame_record(frame, detections, self.names), ensure_ascii=False)
        try:
            self._file.write(line + "\n")
            self._file.flush()
        except UnicodeEncodeError:
            raise SinkError("%s cannot take UTF-8 labels; set PYTHONIOENCODING=utf-8 or write "
                            "the detections to a file" % self.path)
        except (IOError, OSError) as exc:
            raise SinkError("cannot write to the detections file %s (%s); is the disk full?"
                            % (self.path, exc.strerror or exc))
        self.lines += 1

    def close(self):
        if self._file is not None and self._owned:
            try:
                self._file.close()
            except (IOError, OSError) as exc:
                raise SinkError("cannot finish the detections file %s (%s)"
                                % (self.path, exc.strerror or exc))
        self._file = None
