"""Annotated frames to a video file that common players open (H.264 in MP4 where possible)."""

import logging
import math
import os
import re
import time
from typing import List, Optional, Tuple

import cv2
import numpy as np

from ..closing import ClosesOnExit
from ..errors import SinkError
from .free_space import FreeSpaceGuard
from .output_path import prepare_output_path

log = logging.getLogger(__name__)

# Tried in order; 'avc1' (H.264) plays in browsers and phones, 'mp4v' (MPEG-4 part 2) is the
# encoder every FFmpeg build has.
FOURCCS = {
    ".mp4": ("avc1", "mp4v"),
    ".m4v": ("avc1", "mp4v"),
    ".mov": ("avc1", "mp4v"),
    ".avi": ("MJPG", "XVID"),
}
MUXER_SLACK_BYTES = 1024 * 1024  # the muxer's write buffer and the index written at the end


def part_path(path):
    # type: (str) -> str
    """Where the video is written until it is complete: ``rec.mp4`` -> ``rec.mp4.part.mp4``.

    The ``.part`` mark cannot be the last suffix: OpenCV's FFmpeg writer picks the container
    from the extension and, given ``rec.mp4.part``, silently writes an AVI or nothing at all.
    """
    return path + ".part" + os.path.splitext(path)[1]


def segment_path(path, number):
    # type: (str, int) -> str
    """Segment ``number`` of a recording asked for as ``path``: ``rec.mp4`` -> ``rec-0001.mp4``."""
    stem, ext = os.path.splitext(path)
    return "%s-%04d%s" % (stem, number, ext)


def next_segment_number(path):
    # type: (str) -> int
    """1 + the highest segment number of ``path`` on disk (finished or not), so a restarted
    recording goes on after the earlier segments instead of replacing them."""
    stem, ext = os.path.splitext(os.path.basename(path))
    pattern = re.compile(r"^%s-(\d{4,})%s(?:\.part%s)?$" % (re.escape(stem), re.escape(ext),
                                                          re.escape(ext)))
    folder = os.path.dirname(os.path.abspath(path))
    try:
        names = os.listdir(folder)
    except OSError:
        return 1
    numbers = [int(m.group(1)) for m in (pattern.match(n) for n in names) if m]
    return max(numbers) + 1 if numbers else 1


class VideoSink(ClosesOnExit):
    """Context manager writing BGR frames to ``path``.

    The writer opens on the first frame (its size taken from that frame unless ``size`` =
    (width, height) is given; frames of another size are scaled to it). Frames go to
    ``part_path(file)``, which is renamed to the file's name when it is complete, also after
    Ctrl-C, so a file under a final name always plays.

    segment_s: start a new file every ``segment_s`` seconds (of video, or of wall-clock time
               when frames come slower): ``rec-0001.mp4``, ``rec-0002.mp4``, ... numbered after
               any already there, so nothing is replaced. A crash or power cut loses only the
               unfinished segment. None or 0: one file, ``path``.
    min_free_mb: the recording stops with a SinkError (after finishing its file) when the
               disk has less than this left; 0: no check.
    A write that fails (full disk, folder gone) finishes what was written, closes the sink
    and raises SinkError; the caller may drop the sink and go on.
    """

    def __init__(self, path, fps, size=None, overwrite=False, segment_s=None, min_free_mb=0):
        self.path = str(path)
        ext = os.path.splitext(self.path)[1].lower()
        if ext not in FOURCCS:
            raise SinkError("cannot record to %s: the file name must end in %s"
                            % (self.path, " or ".join(sorted(FOURCCS))))
        fps = float(fps)
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError("VideoSink fps must be a positive number, got %r" % (fps,))
        if segment_s is not None and not (segment_s >= 0 and math.isfinite(segment_s)):
            raise ValueError("VideoSink segment_s must be >= 0 seconds, got %r" % (segment_s,))
        self.fps = fps
        self.segment_s = float(segment_s) if segment_s else None
        self._segment_frames = (max(1, int(round(self.segment_s * fps)))
                                if self.segment_s else None)
        if self.segment_s:
            self._number = next_segment_number(self.path)
            self.file = segment_path(self.path, self._number)  # the file being written
            prepare_output_path(self.file, False, "recording")
        else:
            self._number = 0
            self.file = self.path
            prepare_output_path(self.path, overwrite, "recording")
        self._guard = FreeSpaceGuard(os.path.dirname(os.path.abspath(self.file)), min_free_mb,
                                     "the recording %s" % self.path)
        self._guard.check()
        # (width, height) asked for, else that of the first frame
        self.size = None  # type: Optional[Tuple[int, int]]
        if size is not None:
            self.size = (int(size[0]), int(size[1]))
        self.fourcc = None  # type: Optional[str]  # the code that worked, once open
        self.frames = 0
        self.finished = []  # type: List[str]  # complete files, in order
        self._candidates = FOURCCS[ext]
        self._writer = None
        self._resized = None
        self._closed = False
        self._segment_frames_done = 0
        self._segment_started = time.monotonic()
        # frames the encoder holds back and bytes per frame on disk, once measured
        self._lag = None  # type: Optional[int]
        self._per_frame = None  # type: Optional[int]
        self._empty_size = 0
        self._claim()

    @property
    def part_path(self):
        # type: () -> str
        return part_path(self.file)

    def _claim(self):
        """Create the part file now: claims the name and proves the folder writable before
        the first frame arrives."""
        try:
            with open(self.part_path, "wb"):
                pass
        except (IOError, OSError) as exc:
            raise SinkError("cannot write the recording %s (%s); choose a writable place"
                            % (self.part_path, exc.strerror or exc))

    def _open(self, size):
        writer = self._open_writer(size)
        try:
            # the container header: the file holds no frame until it grows past this
            self._empty_size = os.path.getsize(self.part_path)
        except OSError:
            self._empty_size = 0
        return writer

    def _open_writer(self, size):
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

    def write(self, image, t=None):
        # type: (np.ndarray, Optional[float]) -> None
        """Append one (H, W, 3) uint8 BGR frame. ``t`` (its capture time) is not used: a file
        sink writes every frame it gets; PacedRecorder keeps a live camera's clock."""
        if self._closed:
            raise SinkError("the recording %s is already closed" % self.path)
        try:
            if self.segment_s is not None and self._segment_frames is not None and self._segment_frames_done and (
                    self._segment_frames_done >= self._segment_frames
                    or time.monotonic() - self._segment_started >= self.segment_s):
                self._next_segment()
            self._guard.check(self._pending_bytes(image))
            writer = self._writer
            size = self.size or (int(image.shape[1]), int(image.shape[0]))
            if writer is None:
                writer = self._open(size)
        except SinkError as exc:
            self._stop_after(exc)
            raise
        if (image.shape[1], image.shape[0]) != size:
            if self._resized is None:
                self._resized = np.empty((size[1], size[0], 3), np.uint8)
            image = cv2.resize(image, size, dst=self._resized, interpolation=cv2.INTER_AREA)
        writer.write(image)
        self.frames += 1
        self._segment_frames_done += 1

    def _pending_bytes(self, image):
        # type: (np.ndarray) -> int
        """Room the file still needs to be finished: encoders hold frames back (x264 about
        50), so the disk must take those, the muxer's buffer and the index at the end."""
        try:
            size = os.path.getsize(self.part_path)
        except OSError as exc:
            raise SinkError("the recording file %s is gone (%s; drive removed or file "
                            "deleted); recording stopped" % (self.part_path, exc.strerror or exc))
        done = self._segment_frames_done
        raw_half = image.nbytes // 2  # 2:1 compression: safe for any picture
        if self._lag is None and size > self._empty_size:
            self._lag = done  # frames written before the first reached the disk
        if self._lag is not None and done > self._lag:
            self._per_frame = min(raw_half, size // (done - self._lag))
        if self._per_frame is None or self._lag is None:
            pending = (done + 1) * raw_half  # nothing measured yet
        else:
            pending = (self._lag + 8) * self._per_frame
        return pending + MUXER_SLACK_BYTES

    def _stop_after(self, exc):
        # type: (SinkError) -> None
        """Finish what was written before ``exc`` ends the recording; say where it is."""
        try:
            self.close()
        except SinkError as late:
            log.warning("%s", late)
        if self.finished:
            log.warning("recording stopped; kept %s", ", ".join(self.finished[-3:]))

    def _finish_file(self):
        """Release the writer and give the part file its final name (remove it if empty)."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        try:
            if self._segment_frames_done:
                os.replace(self.part_path, self.file)
                self.finished.append(self.file)
            elif os.path.exists(self.part_path):
                os.remove(self.part_path)
        except OSError as exc:
            raise SinkError("cannot finish the recording %s (%s); the frames are in %s"
                            % (self.file, exc.strerror or exc, self.part_path))

    def _next_segment(self):
        self._finish_file()
        self._number = max(self._number + 1, next_segment_number(self.path))
        self.file = segment_path(self.path, self._number)
        self._segment_frames_done = 0
        self._segment_started = time.monotonic()
        self._empty_size = 0
        self._claim()

    def close(self):
        """Finish the file and give it its final name; without frames, leave nothing behind."""
        if self._closed:
            return
        self._closed = True
        self._finish_file()
