"""Where annotated frames and detections go: a window, a video file, a JSON-lines file
(and PacedRecorder, which keeps a live camera's recording on the camera's clock).

Every sink is a context manager; the file sinks refuse to replace an existing file unless
``overwrite=True`` and report unwritable paths as one-line SinkErrors. While running, a file
sink that cannot go on (disk nearly full, folder gone) finishes what it wrote and raises
SinkError; the live loop then drops it and goes on.
"""

from .json_lines import JsonLinesSink
from .paced import PacedRecorder
from .video import VideoSink
from .window import WindowSink, window_available

__all__ = ["JsonLinesSink", "PacedRecorder", "VideoSink", "WindowSink", "window_available"]
