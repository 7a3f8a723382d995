"""Live captures through cv2.VideoCapture: V4L2 cameras, GStreamer pipelines, network streams.

Each ``open_*`` function returns an ``OpenCVCapture`` (the object the grabber thread reads)
or raises SourceError with one line saying what is wrong and what to do.
"""

import glob
import logging
import os
import re
import shutil
import subprocess
import sys
from typing import List, Optional, Tuple

import cv2
import numpy as np

from ..errors import SourceError
from .uri import mask_credentials

log = logging.getLogger(__name__)

# L4T (the Jetson Linux) writes this file; nothing else does
TEGRA_RELEASE_FILE = "/etc/nv_tegra_release"
STREAM_OPEN_TIMEOUT_MS = 10000
STREAM_READ_TIMEOUT_MS = 5000


def on_jetson():
    # type: () -> bool
    return os.path.exists(TEGRA_RELEASE_FILE)


def gstreamer_status():
    # type: () -> Tuple[bool, str]
    """(usable, what cv2.getBuildInformation() says about GStreamer, e.g. 'YES (1.22.0)')."""
    match = re.search(r"GStreamer:\s*([^\n]*)", cv2.getBuildInformation())
    said = match.group(1).strip() if match else "not listed"
    return said.upper().startswith("YES"), said


def require_gstreamer(what):
    # type: (str) -> None
    usable, said = gstreamer_status()
    if not usable:
        raise SourceError(
            "%s needs OpenCV built with GStreamer, but cv2 %s (%s) has GStreamer: %s; on Jetson "
            "use JetPack's OpenCV (sudo apt install python3-opencv, and pip uninstall "
            "opencv-python opencv-python-headless), elsewhere a distribution OpenCV such as "
            "Debian/Ubuntu python3-opencv" % (what, cv2.__version__, cv2.__file__, said))


def has_backend(api):
    # type: (int) -> bool
    """Whether this cv2 was built with the videoio backend ``api`` (True when it cannot say)."""
    registry = getattr(cv2, "videoio_registry", None)
    if registry is not None and hasattr(registry, "hasBackend"):
        return bool(registry.hasBackend(api))
    if registry is not None and hasattr(registry, "getBackends"):
        return api in registry.getBackends()
    return True


def as_bgr(image):
    # type: (np.ndarray) -> np.ndarray
    """(H, W, 3) uint8 BGR from what a user's pipeline may deliver (gray, BGRA, 16 bit)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.size == 0 or image.dtype != np.uint8:
        return image  # garbage: the grabber counts it as a corrupt frame
    if image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1):
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _positive(value):
    # type: (float) -> Optional[float]
    return float(value) if value and value > 0 and value == value and value < 1e5 else None


class OpenCVCapture(object):
    """A cv2.VideoCapture as the grabber reads it.

    description:  safe to print
    fps:          what the backend reports, or None
    failure_hint: what to do when reads keep failing
    can_end:      True when running out of frames is a normal end (a pipeline with
                  num-buffers, a file served over HTTP), not a failure
    """

    def __init__(self, capture, description, failure_hint, can_end=False):
        # type: (cv2.VideoCapture, str, str, bool) -> None
        self._capture = capture
        self.description = description
        self.failure_hint = failure_hint
        self.can_end = can_end
        self.fps = _positive(capture.get(cv2.CAP_PROP_FPS))
        self.last_error = None  # type: Optional[str]

    def read(self, out=None):
        # type: (Optional[np.ndarray]) -> Optional[np.ndarray]
        """The next image, decoded into ``out`` when its shape fits; None when the read failed."""
        try:
            ok, image = self._capture.read(out) if out is not None else self._capture.read()
        except cv2.error as exc:
            self.last_error = str(exc).strip().splitlines()[-1]
            return None
        if not ok or image is None:
            return None
        if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
            return image
        return as_bgr(image)

    def release(self):
        # type: () -> None
        self._capture.release()


def _fourcc_text(value):
    code = int(value)
    text = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return text if text.isalnum() else "?"


def _video_devices():
    return sorted(glob.glob("/dev/video*"), key=lambda p: (len(p), p))


def open_camera(target, width=1280, height=720, fps=30):
    # type: (object, int, int, int) -> OpenCVCapture
    """A V4L2 camera by index (0) or device path (/dev/video0), asked for MJPG at width x height."""
    label = "camera %s" % target
    linux = sys.platform.startswith("linux")
    device = "/dev/video%d" % target if isinstance(target, int) else str(target)
    where = "%s, " % device if isinstance(target, int) else ""
    if linux and not os.path.exists(device):
        found = _video_devices()
        listing = ("cameras present: %s" % ", ".join(found)) if found else "no /dev/video* at all"
        raise SourceError(
            "%s could not be opened: %s does not exist (%s) — check the cable or pick another "
            "index (ls /dev/video*), use --csi 0 for a ribbon camera, or --source FILE"
            % (label, device, listing))
    if linux:
        capture = cv2.VideoCapture(target if isinstance(target, int) else device, cv2.CAP_V4L2)
    else:
        capture = cv2.VideoCapture(target if isinstance(target, int) else device)
    if not capture.isOpened():
        capture.release()
        if linux and not os.access(device, os.R_OK | os.W_OK):
            raise SourceError(
                "%s could not be opened: no permission to use %s — add yourself to the video "
                "group (sudo usermod -aG video $USER, then log in again)" % (label, device))
        raise SourceError(
            "%s could not be opened: %s is busy or not a capture device — close other programs "
            "using it (fuser %s), try another index (ls /dev/video*), or use --csi 0 for a "
            "ribbon camera" % (label, device, device))
    # FOURCC before size: many UVC cameras offer 720p at 30 fps only as MJPG
    capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*"MJPG"))
    capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
    capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
    capture.set(cv2.CAP_PROP_FPS, fps)
    got_w = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    got_h = int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    got_fps = _positive(capture.get(cv2.CAP_PROP_FPS))
    if (got_w, got_h) != (width, height):
        log.info("%s: asked for %dx%d, the camera gives %dx%d", label, width, height, got_w, got_h)
    description = "%s (%s%dx%d %s%s)" % (
        label, where, got_w, got_h, _fourcc_text(capture.get(cv2.CAP_PROP_FOURCC)),
        " @ %g fps" % got_fps if got_fps else "")
    return OpenCVCapture(capture, description,
                         "check the cable and that no other program took the camera")


def _element_names(pipeline):
    # type: (str) -> List[str]
    """Factory names in a gst-launch pipeline; caps ('video/x-raw,...') and pad references
    ('t.') are not elements."""
    names = []  # type: List[str]
    for segment in pipeline.split("!"):
        words = segment.split()
        if words and re.match(r"^[a-z][a-z0-9_-]*$", words[0]) and words[0] not in names:
            names.append(words[0])
    return names


def missing_gstreamer_elements(pipeline):
    # type: (str) -> List[str]
    """Elements of ``pipeline`` this GStreamer lacks; [] when gst-inspect-1.0 cannot tell.

    Asked before opening because OpenCV's GStreamer backend can hang for good on a
    pipeline with more than one missing element (seen with cv2 4.6 / GStreamer 1.22).
    """
    tool = shutil.which("gst-inspect-1.0")
    if tool is None:
        return []

    def exists(name):
        try:
            return subprocess.call([tool, "--exists", name], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, timeout=10) == 0
        except (OSError, subprocess.SubprocessError):
            return True

    if not exists("fakesink"):  # a core element: this gst-inspect cannot answer
        return []
    return [name for name in _element_names(pipeline) if not exists(name)]


def _last_element(pipeline):
    # type: (str) -> str
    tail = pipeline.rsplit("!", 1)[-1].strip()
    return tail.split()[0] if tail else ""


def open_gstreamer(pipeline, description=None, failure_hint=None, can_end=True):
    # type: (str, Optional[str], Optional[str], bool) -> OpenCVCapture
    """A GStreamer pipeline ending in appsink (BGR caps before it give frames without a copy)."""
    shown = mask_credentials(pipeline)
    require_gstreamer("the GStreamer pipeline '%s'" % shown)
    if not _last_element(pipeline).startswith("appsink"):
        raise SourceError(
            "the GStreamer pipeline '%s' must end in appsink so OpenCV can take its frames; add "
            "'! videoconvert ! video/x-raw,format=BGR ! appsink' at the end" % shown)
    missing = missing_gstreamer_elements(pipeline)
    if missing:
        raise SourceError(
            "the GStreamer pipeline '%s' uses elements this GStreamer lacks: %s — install the "
            "plugins that provide them (gst-inspect-1.0 NAME tells whether one is there)"
            % (shown, ", ".join(missing)))
    capture = cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER)
    if not capture.isOpened():
        capture.release()
        raise SourceError(
            "GStreamer could not start the pipeline '%s'; run it with gst-launch-1.0 (appsink "
            "replaced by fakesink) to see which element fails" % shown)
    return OpenCVCapture(capture, description or "GStreamer pipeline '%s'" % shown,
                         failure_hint or "run the pipeline with gst-launch-1.0 to see why",
                         can_end=can_end)


def rtsp_gstreamer_pipeline(url, latency_ms=200):
    # type: (str, int) -> str
    """RTSP through the Jetson's hardware decoder (decodebin picks nvv4l2decoder there)."""
    quoted = url.replace("\\", "\\\\").replace('"', '\\"')
    return ('rtspsrc location="%s" latency=%d ! decodebin ! nvvidconv ! video/x-raw,format=BGRx '
            "! videoconvert ! video/x-raw,format=BGR ! appsink drop=true max-buffers=1 sync=false"
            % (quoted, latency_ms))


def _open_ffmpeg(url):
    api = cv2.CAP_FFMPEG if has_backend(cv2.CAP_FFMPEG) else cv2.CAP_ANY
    if hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC") and hasattr(cv2, "CAP_PROP_READ_TIMEOUT_MSEC"):
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_OPEN_TIMEOUT_MS,
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, STREAM_READ_TIMEOUT_MS]
        try:
            return cv2.VideoCapture(url, api, params)
        except (TypeError, cv2.error):
            # this cv2 lacks the (url, api, params) constructor; open without timeouts
            pass
    return cv2.VideoCapture(url, api)


def open_stream(url):
    # type: (str) -> OpenCVCapture
    """A network stream: RTSP through GStreamer's hardware decoder on a Jetson, else FFmpeg."""
    shown = mask_credentials(url)
    scheme = url.split("://", 1)[0].lower()
    hint = "check the network and that the stream is still up (try it in VLC or ffplay)"
    if scheme in ("rtsp", "rtsps") and on_jetson() and gstreamer_status()[0]:
        try:
            return open_gstreamer(rtsp_gstreamer_pipeline(url), description="stream %s" % shown,
                                  failure_hint=hint, can_end=False)
        except SourceError as exc:
            log.info("GStreamer could not open %s (%s); trying FFmpeg", shown, exc)
    capture = _open_ffmpeg(url)
    if not capture.isOpened():
        capture.release()
        raise SourceError(
            "cannot open stream %s — check the URL, user name and password, and that the "
            "device is reachable (ping it; try the URL in VLC or ffplay)" % shown)
    # a file served over HTTP has a length and ends like a file; a camera stream (MJPEG over
    # HTTP, RTSP) has none, and when it stops it has failed
    can_end = scheme in ("http", "https") and capture.get(cv2.CAP_PROP_FRAME_COUNT) > 0
    return OpenCVCapture(capture, "stream %s" % shown, hint, can_end=can_end)
