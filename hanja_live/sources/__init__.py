"""Capture sources: cameras (V4L2, Jetson CSI), network streams, GStreamer pipelines, video
files, images and image folders, all read through one interface (``Source``).

    with open_source("csi://0", width=1280, height=720) as src:
        frame = src.read(timeout=1.0)  # Frame, None (no new frame yet), or raises
                                       # EndOfStream / SourceError
        src.status_text                # None, or e.g. "camera lost - reconnecting (try 3)"

Cameras and streams that stop are reopened with growing pauses (grabber.LiveSource) unless
``reconnect=False``; broken frames are skipped and counted in ``src.corrupt``.
"""

from .base import Source
from .buffers import BufferPool
from .csi import FLIP_METHODS, JetsonUtilsCapture, csi_pipeline, jetson_utils_argv, open_csi
from .factory import open_source
from .files import VideoFileSource
from .grabber import LiveSource
from .images import ImageFileSource, ImageFolderSource, natural_key
from .opencv_capture import (OpenCVCapture, gstreamer_status, open_camera, open_gstreamer,
                             open_stream, rtsp_gstreamer_pipeline)
from .uri import IMAGE_EXTENSIONS, SourceSpec, mask_credentials, parse_uri

__all__ = [
    "open_source", "Source", "LiveSource", "VideoFileSource", "ImageFolderSource",
    "ImageFileSource", "OpenCVCapture", "JetsonUtilsCapture", "BufferPool", "SourceSpec",
    "parse_uri", "mask_credentials", "csi_pipeline", "jetson_utils_argv", "open_csi",
    "open_camera", "open_gstreamer", "open_stream", "rtsp_gstreamer_pipeline",
    "gstreamer_status", "natural_key", "FLIP_METHODS", "IMAGE_EXTENSIONS",
]
