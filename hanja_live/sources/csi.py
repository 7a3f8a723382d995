"""Jetson CSI (ribbon) cameras: jetson_utils when installed, else an nvarguscamerasrc pipeline.

flip is nvvidconv's flip-method: 0 none, 1 counterclockwise, 2 rotate-180, 3 clockwise,
4 horizontal, 5 upper-right-diagonal, 6 vertical, 7 upper-left-diagonal.
"""

import importlib
from typing import List, Optional

import cv2
import numpy as np

from ..errors import SourceError
from .opencv_capture import (TEGRA_RELEASE_FILE, missing_gstreamer_elements, on_jetson,
                             open_gstreamer, require_gstreamer)


FLIP_METHODS = ("none", "counterclockwise", "rotate-180", "clockwise", "horizontal",
                "upper-right-diagonal", "vertical", "upper-left-diagonal")
CAPTURE_TIMEOUT_MS = 1000


def check_csi_settings(sensor_id, width, height, fps, flip):
    # type: (int, int, int, int, int) -> None
    for name, value, low in (("sensor id", sensor_id, 0), ("width", width, 1),
                             ("height", height, 1), ("fps", fps, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise SourceError("CSI camera %s must be a whole number >= %d, got %r"
                              % (name, low, value))
    if isinstance(flip, bool) or not isinstance(flip, int) or not 0 <= flip < len(FLIP_METHODS):
        raise SourceError("csi_flip must be 0..7 (nvvidconv flip-method; 2 turns the image "
                          "upside down), got %r; fix source.csi_flip or --flip" % (flip,))


def csi_pipeline(sensor_id=0, width=1280, height=720, fps=30, flip=0):
    # type: (int, int, int, int, int) -> str
    """The OpenCV GStreamer pipeline for sensor ``sensor_id``, delivering BGR frames."""
    check_csi_settings(sensor_id, width, height, fps, flip)
    return ("nvarguscamerasrc sensor-id=%d ! video/x-raw(memory:NVMM),width=%d,height=%d,"
            "framerate=%d/1 ! nvvidconv flip-method=%d ! video/x-raw,format=BGRx ! videoconvert "
            "! video/x-raw,format=BGR ! appsink drop=true max-buffers=1"
            % (sensor_id, width, height, fps, flip))


def jetson_utils_argv(width=1280, height=720, fps=30, flip=0):
    # type: (int, int, int, int) -> List[str]
    """videoSource options giving nvvidconv flip-method ``flip``.

    jetson_utils' gstCamera swaps none and rotate-180 for CSI cameras on every JetPack with
    TensorRT 5 or newer (its authors' sensors sat upside down), so those two are passed
    swapped to end up with the flip asked for.
    """
    check_csi_settings(0, width, height, fps, flip)
    swapped = {0: 2, 2: 0}.get(flip, flip)
    return ["--input-width=%d" % width, "--input-height=%d" % height,
            "--input-rate=%d" % fps, "--input-flip=%s" % FLIP_METHODS[swapped]]


def import_jetson_utils():
    """The jetson_utils module (jetson-inference's Python bindings), or None."""
    for name in ("jetson_utils", "jetson.utils"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


class JetsonUtilsCapture(object):
    """jetson_utils.videoSource as the grabber reads it (frames copied out as BGR)."""

    can_end = False
    failure_hint = ("check the ribbon cable, then restart the camera daemon "
                    "(sudo systemctl restart nvargus-daemon)")

    def __init__(self, module, sensor_id, width, height, fps, flip):
        self._module = module
        self.last_error = None  # type: Optional[str]
        uri = "csi://%d" % sensor_id
        try:
            self._source = module.videoSource(uri, argv=jetson_utils_argv(width, height, fps, flip))
        # jetson_utils reports every failure as a plain Exception
        except Exception as exc:
            raise SourceError("CSI camera %d could not be opened by jetson_utils (%s) — %s"
                              % (sensor_id, exc, self.failure_hint))
        got_fps = float(self._source.GetFrameRate()) if hasattr(self._source, "GetFrameRate") \
            else 0.0
        self.fps = got_fps if got_fps > 0 else float(fps)
        self.description = "CSI camera %d via jetson_utils (%dx%d @ %g fps, flip-method %d)" % (
            sensor_id, self._source.GetWidth(), self._source.GetHeight(), self.fps, flip)

    def read(self, out=None):
        # type: (Optional[np.ndarray]) -> Optional[np.ndarray]
        try:
            image = self._source.Capture(format="rgb8", timeout=CAPTURE_TIMEOUT_MS)
        # older jetson_utils raise a plain Exception on timeout as well as on failure
        except Exception as exc:
            self.last_error = str(exc)
            return None
        if image is None:  # newer jetson_utils: timeout
            return None
        if hasattr(self._module, "cudaDeviceSynchronize"):
            self._module.cudaDeviceSynchronize()
        rgb = self._module.cudaToNumpy(image)  # (H, W, 3) uint8 view of the capture ring
        if out is not None and out.shape == rgb.shape:
            return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR, dst=out)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)

    def release(self):
        # type: () -> None
        if hasattr(self._source, "Close"):
            self._source.Close()


def open_csi(sensor_id=0, width=1280, height=720, fps=30, flip=0):
    """A capture for csi://sensor_id (jetson_utils, else OpenCV + GStreamer)."""
    check_csi_settings(sensor_id, width, height, fps, flip)
    module = import_jetson_utils()
    if module is not None:
        return JetsonUtilsCapture(module, sensor_id, width, height, fps, flip)
    # nvarguscamerasrc is part of JetPack only; checked first because OpenCV can hang for
    # good on a pipeline whose elements are missing
    if not on_jetson():
        raise SourceError(
            "csi://%d needs a Jetson (its nvarguscamerasrc element), and this machine is none "
            "(no %s); a USB camera is --camera N" % (sensor_id, TEGRA_RELEASE_FILE))
    require_gstreamer("csi://%d" % sensor_id)
    pipeline = csi_pipeline(sensor_id, width, height, fps, flip)
    missing = missing_gstreamer_elements(pipeline)
    if missing:
        raise SourceError(
            "csi://%d needs the GStreamer elements %s, which JetPack provides; install them "
            "with sudo apt install nvidia-l4t-gstreamer" % (sensor_id, ", ".join(missing)))
    try:
        return open_gstreamer(
            pipeline,
            description="CSI camera %d (nvarguscamerasrc %dx%d @ %d fps, flip-method %d)"
                        % (sensor_id, width, height, fps, flip),
            failure_hint=JetsonUtilsCapture.failure_hint, can_end=False)
    except SourceError:
        raise SourceError(
            "CSI camera %d could not be opened: nvarguscamerasrc did not start — check the "
            "ribbon cable and the sensor number, restart the camera daemon (sudo systemctl "
            "restart nvargus-daemon); a USB camera is --camera N" % sensor_id) from None
