"""Annotated frames to a video file that common players open (H.264 in MP4 where possible)."""

import math
import os
from typing import Optional, Tuple

import cv2
import numpy as np

from ..closing import ClosesOnExit
from ..errors import SinkError
from .output_path import prepare_output_path

# Tried in order; 'avc1' (H.264) plays in browsers and phones, 'mp4v' (MPEG-4 part 2) is the
# encoder every FFmpeg build has.
FOURCCS = {
    ".mp4": ("avc1", "mp4v"),
    ".m4v": ("avc1", "mp4v"),
    ".mov": ("avc1", "mp4v"),
    ".avi": ("MJPG", "XVID"),
}


def part_path(path):
    # type: (str) -> str
    """Where the video is written until it is complete: ``rec.mp4`` -> ``rec.mp4.part.mp4``.

    The ``.part`` mark cannot be the last suffix: OpenCV's FFmpeg writer picks the container
    from the extension and, given ``rec.mp4.part``, silently writes an AVI or nothing at all.
    """
    return path + ".part" + os.path.splitext(path)[1]


class VideoSink(ClosesOnExit):
    """Context manager writing BGR frames to ``path``.

    The writer opens on the first frame (its size taken from that frame unless ``size`` =
    (width, height) is given; frames of another size are scaled to it). Frames go to
    ``part_path(path)``, which is renamed to ``path`` on close, also after Ctrl-C, so a file
    under the final name is always complete.
    """

    def __init__(self, path, fps, size=None, overwrite=False):
        self.path = str(path)
        ext = os.path.splitext(self.path)[1].lower()
        if ext not in FOURCCS:
            raise SinkError("cannot record to %s: the file name must end in %s"
                            % (self.path, " or ".join(sorted(FOURCCS))))
        fps = float(fps)
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError("VideoSink fps must be a positive number, got %r" % (fps,))
        prepare_output_path(self.path, overwrite, "recording")
        self.part_path = part_path(self.path)
        try:
            # claims the name and proves the folder writable before the first frame arrives
            with open(self.part_path, "wb"):
                pass
        except (IOError, OSError) as exc:
            raise SinkError("cannot write the recording %s (%s); choose a writable place"
                            % (self.part_path, exc.strerror or exc))
        self.fps = fps
        # (width, height) asked for, else that of the first frame
        self.size = None  # type: Optional[Tuple[int, int]]
        if size is not None:
            self.size = (int(size[0]), int(size[1]))
        self.fourcc = None  # type: Optional[str]  # the code that worked, once open
        self.frames = 0
        self._candidates = FOURCCS[ext]
        self._writer = None
        self._resized = None
        self._closed = False


    def _open(self, size):
        api = getattr(cv2, "CAP_FFMPEG", None)
        attempts = [(api, code) for code in self._candidates] if api is not None else []
        attempts += [(None, code) for code in self._candidates]
        for api, code in attempts:
            fourcc = cv2.VideoWriter_fourcc(*code)
            if api is None:
                writer = cv2.VideoWriter(self.part_path, fourcc, self.fps, size)
            else:
                writer = cv2.VideoWriter(self.part_path, api, fourcc, self.fps, size)
            if writer.isOpened():
                self._writer, self.fourcc, self.size = writer, code, size
                return writer
            writer.release()
        raise SinkError("this OpenCV cannot encode %s (tried %s); record to another format, "
                        "e.g. --record out.avi" % (self.path, ", ".join(self._candidates)))

    def write(self, image):
        # type: (np.ndarray) -> None
        """Append one (H, W, 3) uint8 BGR frame."""
        if self._closed:
            raise SinkError("the recording %s is already closed" % self.path)
        writer = self._writer
        size = self.size or (int(image.shape[1]), int(image.shape[0]))
        if writer is None:
            writer = self._open(size)
        if (image.shape[1], image.shape[0]) != size:
            if self._resized is None:
                self._resized = np.empty((size[1], size[0], 3), np.uint8)
            image = cv2.resize(image, size, dst=self._resized, interpolation=cv2.INTER_AREA)
        writer.write(image)
        self.frames += 1

    def close(self):
        """Finish the file and give it its final name; without frames, leave nothing behind."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        try:
            if self.frames:
                os.replace(self.part_path, self.path)
            elif os.path.exists(self.part_path):
                os.remove(self.part_path)
        except OSError as exc:
            raise SinkError("cannot finish the recording %s (%s); the frames are in %s"
                            % (self.path, exc.strerror or exc, self.part_path))
