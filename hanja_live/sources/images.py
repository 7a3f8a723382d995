"""Still images: one file, or every image of a folder in natural order (img2 before img10)."""

import logging
import os
import re
import time
from typing import List, Optional, Set, Tuple

import cv2
import numpy as np

from ..errors import EndOfStream, SourceError
from ..frame import Frame
from .base import Source
from .buffers import BufferPool
from .uri import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)


def natural_key(name):
    # type: (str) -> Tuple
    """Sort key reading digit runs as numbers: 'page2.png' < 'page10.png'."""
    parts = re.split(r"(\d+)", name.lower())
    return tuple(int(p) if i % 2 else p for i, p in enumerate(parts)) + (name,)


def list_images(folder):
    # type: (str) -> List[str]
    """Image files directly in ``folder`` (no subfolders, no hidden files), natural order."""
    names = [n for n in os.listdir(folder)
             if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")
             and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=natural_key)]


def decode_image(path):
    # type: (str) -> Optional[np.ndarray]
    """(H, W, 3) uint8 BGR, EXIF rotation applied; None when the file is not an image.

    Reads the bytes first so that paths OpenCV's imread cannot open (non-ASCII on some
    platforms) work too.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except (IOError, OSError) as exc:
        log.debug("cannot read %s: %s", path, exc)
        return None
    if data.size == 0:
        return None
    try:
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    except cv2.error:
        return None


class ImageFolderSource(Source):
    """Each image once (or forever with ``loop``); frame.name is the file name.

    Files that do not decode are skipped with a warning and counted in ``skipped`` (once
    each: a loop does not try them again).
    Frame.index is the file's position in the sorted list (plus one list length per loop),
    so skipped files leave gaps.
    """

    is_live = False

    def __init__(self, folder, loop=False, read_timeout_s=2.0):
        # type: (str, bool, float) -> None
        super(ImageFolderSource, self).__init__()
        try:
            paths = list_images(folder)
        except (IOError, OSError) as exc:
            raise SourceError("cannot list folder %s (%s); check its permissions"
                              % (folder, exc.strerror or exc))
        if not paths:
            raise SourceError("no images in folder %s (looked for %s); put images there or "
                              "pass a video file" % (folder, " ".join(IMAGE_EXTENSIONS)))
        self._init(paths, "folder %s (%d image%s%s)" % (
            folder, len(paths), "" if len(paths) == 1 else "s", ", looping" if loop else ""),
            "folder %s" % folder, loop, read_timeout_s)

    def _init(self, paths, description, where, loop, read_timeout_s):
        self.paths = paths
        self._where = where
        self.loop = loop
        self.read_timeout_s = float(read_timeout_s)
        self.description = description
        self._next = 0
        self._decoded_this_pass = 0
        self._closed = False
        self._bad = set()  # type: Set[str]

    def read(self, timeout=None):
        # type: (Optional[float]) -> Optional[Frame]
        """The next image that decodes; ``timeout`` does not apply (files are always ready)."""
        count = len(self.paths)
        while True:
            if self._closed:
                raise EndOfStream("%s was closed" % self.description)
            position = self._next % count
            if position == 0 and self._next:
                if not self._decoded_this_pass:
                    raise SourceError("none of the %d image files in %s could be decoded; "
                                      "check they are complete, or re-save them as .png or "
                                      ".jpg" % (count, self._where))
                if not self.loop:
                    raise EndOfStream(self.description)
                self._decoded_this_pass = 0
            path = self.paths[position]
            index = self._next
            self._next += 1
            if path in self._bad:
                continue
            image = self._decode(path)
            if image is None:
                self._bad.add(path)
                continue
            self._decoded_this_pass += 1
            return Frame(image, index, os.path.basename(path), time.monotonic())

    def _decode(self, path):
        image = decode_image(path)
        if image is None:
            self._skipped += 1
            log.warning("skipping %s: not an image OpenCV can decode", path)
        return image

    def close(self):
        # type: () -> None
        self._closed = True


class ImageFileSource(ImageFolderSource):
    """One image as a one-frame stream (``loop`` repeats it); decoded once, at open.

    Each frame is a copy (into a reused buffer), so a reader drawing on it does not draw on
    the next one.
    """

    def __init__(self, path, loop=False, read_timeout_s=2.0):
        # type: (str, bool, float) -> None
        Source.__init__(self)
        image = decode_image(path)
        if image is None:
            raise SourceError("cannot decode %s: not an image OpenCV can read (is the file "
                              "complete? re-save it as .png or .jpg)" % path)
        self._image = image
        height, width = image.shape[:2]
        self._pool = BufferPool(3)
        self._init([path], "image %s (%dx%d)" % (path, width, height), "image %s" % path, loop,
                   read_timeout_s)

    def _decode(self, path):
        buffer = self._pool.take()
        if buffer is None:
            buffer = np.empty_like(self._image)
            self._pool.keep(buffer)
        np.copyto(buffer, self._image)
        return buffer
