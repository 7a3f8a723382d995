"""Turn a source string (or camera number) into the kind of source it names.

Kinds:
  camera     int index or /dev/video* path (V4L2)
  csi        csi://N, a Jetson ribbon camera (N = sensor id)
  gstreamer  "gst:<pipeline>" or any string holding " ! "; the pipeline must end in appsink
  stream     rtsp:// rtmp:// http(s):// udp:// tcp:// URLs
  folder     a directory of images
  image      one image file
  video      any other existing file
"""

import os
import re
from typing import NamedTuple, Union

from ..errors import SourceError

CAMERA = "camera"
CSI = "csi"
GSTREAMER = "gstreamer"
STREAM = "stream"
FOLDER = "folder"
IMAGE = "image"
VIDEO = "video"

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp")
GST_PREFIX = "gst:"

_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://")
# scheme://user:PASSWORD@ — the password runs to the last '@' before the path, so one
# containing a raw '@' is still masked whole
_URL_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)([^/\s]*)(@)")
_QUERY_SECRET = re.compile(
    r"([?&](?:password|passwd|pwd|pass|token|access_token|api_key|apikey|key|secret|auth|"
    r"sig|signature)=)([^&\s\"']*)", re.IGNORECASE)

SourceSpec = NamedTuple("SourceSpec", [("kind", str), ("target", Union[int, str])])


def mask_credentials(text):
    # type: (str) -> str
    """``text`` with URL passwords and secret query values replaced by ***.

    Works on bare URLs and on GStreamer pipelines that hold them
    (``rtspsrc location=rtsp://user:pw@host``), so any description is safe to print.
    """
    text = _URL_PASSWORD.sub(r"\1***\3", text)
    return _QUERY_SECRET.sub(r"\1***", text)


def parse_uri(uri):
    # type: (Union[int, str]) -> SourceSpec
    """Classify ``uri``; raises SourceError for what cannot be a source (missing path, ...)."""
    if isinstance(uri, bool) or not isinstance(uri, (int, str)):
        raise SourceError("source must be a camera number or a string, got %r; pass e.g. "
                          "--camera 0 or --source FILE" % (uri,))
    if isinstance(uri, int):
        return _camera_index(uri, str(uri))
    text = uri.strip()
    if not text:
        raise SourceError("the source is empty; pass --camera N, --csi N or --source FILE/URL")
    if re.match(r"^[+-]?\d+$", text):
        return _camera_index(int(text), text)
    if text.startswith(GST_PREFIX):
        return SourceSpec(GSTREAMER, text[len(GST_PREFIX):].strip())
    if " ! " in text:
        return SourceSpec(GSTREAMER, text)
    scheme = _SCHEME.match(text)
    if scheme is not None:
        return _with_scheme(scheme.group(1).lower(), text)
    if text.startswith("/dev/video") or text.startswith("/dev/v4l/"):
        return SourceSpec(CAMERA, text)
    return _path(os.path.expanduser(text))


def _camera_index(index, text):
    if index < 0:
        raise SourceError("camera index %s is negative; camera numbers start at 0 "
                          "(ls /dev/video*)" % text)
    return SourceSpec(CAMERA, index)


def _with_scheme(scheme, text):
    if scheme == "csi":
        sensor = text[len("csi://"):]
        if not sensor.isdigit():
            raise SourceError("%s: a CSI camera is written csi://N with N the sensor number, "
                              "e.g. csi://0" % text)
        return SourceSpec(CSI, int(sensor))
    if scheme in STREAM_SCHEMES:
        return SourceSpec(STREAM, text)
    if scheme == "file":
        return _path(text[len("file://"):])
    raise SourceError("%s: unknown source kind '%s://'; use a camera number, csi://N, a file, "
                      "a folder, an %s:// URL or gst:PIPELINE"
                      % (mask_credentials(text), scheme, "/".join(STREAM_SCHEMES[:3])))


def _path(path):
    if os.path.isdir(path):
        return SourceSpec(FOLDER, path)
    if os.path.isfile(path):
        if path.lower().endswith(IMAGE_EXTENSIONS):
            return SourceSpec(IMAGE, path)
        return SourceSpec(VIDEO, path)
    if os.path.exists(path):
        raise SourceError("%s is neither a file nor a folder; pass a video, an image or a "
                          "folder of images" % path)
    raise SourceError("no such file or folder: %s" % path)
