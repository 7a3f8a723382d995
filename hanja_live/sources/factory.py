"""open_source: one call from a source string (or camera number) to a running Source."""

import functools
from typing import Union

from ..errors import SourceError
from . import uri as kinds
from .base import Source
from .csi import open_csi
from .files import VideoFileSource
from .grabber import LiveSource
from .images import ImageFileSource, ImageFolderSource
from .opencv_capture import open_camera, open_gstreamer, open_stream

# a read blocked this long (or 5 read timeouts, if longer) counts as a lost camera; capture
# libraries time out on their own well before (V4L2 10 s, FFmpeg streams 5 s)
STALL_MIN_S = 15.0


def open_source(uri, width=1280, height=720, fps=30, csi_flip=0, loop=False, read_timeout_s=2.0,
                reconnect=True, reconnect_max_s=10.0):
    # type: (Union[int, str], int, int, int, int, bool, float, bool, float) -> Source
    """Open what ``uri`` names (see hanja_live.sources.uri for the kinds).

    width, height, fps: asked of cameras (V4L2, CSI); files keep their own.
    csi_flip:           nvvidconv flip-method 0..7 for CSI cameras.
    loop:               start video files and image folders again at their end.
    read_timeout_s:     how long read() waits when no timeout is given.
    reconnect:          a camera or stream that stops is reopened (pauses growing up to
                        reconnect_max_s seconds) instead of ending the stream.
    Raises SourceError, naming the source and the fix, when it cannot be opened.
    """
    if isinstance(read_timeout_s, bool) or not isinstance(read_timeout_s, (int, float)) \
            or not read_timeout_s > 0:
        raise SourceError("read_timeout_s must be a number of seconds > 0, got %r; fix "
                          "source.read_timeout_s" % (read_timeout_s,))
    spec = kinds.parse_uri(uri)
    if spec.kind == kinds.FOLDER:
        return ImageFolderSource(str(spec.target), loop=loop, read_timeout_s=read_timeout_s)
    if spec.kind == kinds.IMAGE:
        return ImageFileSource(str(spec.target), loop=loop, read_timeout_s=read_timeout_s)
    if spec.kind == kinds.VIDEO:
        return VideoFileSource(str(spec.target), loop=loop, read_timeout_s=read_timeout_s)
    if spec.kind == kinds.CAMERA:
        opener = functools.partial(open_camera, spec.target, width=width, height=height, fps=fps)
    elif spec.kind == kinds.CSI:
        opener = functools.partial(open_csi, int(spec.target), width=width, height=height,
                                   fps=fps, flip=csi_flip)
    elif spec.kind == kinds.GSTREAMER:
        opener = functools.partial(open_gstreamer, str(spec.target))
    else:
        opener = functools.partial(open_stream, str(spec.target))
    # the first open reports its failure to the user; later ones are retried
    capture = opener()
    return LiveSource(capture, read_timeout_s=read_timeout_s,
                      reopen=opener if reconnect else None, backoff_max_s=reconnect_max_s,
                      stall_s=max(STALL_MIN_S, 5.0 * read_timeout_s))
