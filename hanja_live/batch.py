"""`hanja_live detect`: every frame of an image folder or video through the model, no display."""

import contextlib
import logging
import sys
import time

from .app import load_detector
from .errors import EndOfStream, HanjaLiveError
from .overlay import Annotator
from .sinks import JsonLinesSink, VideoSink
from .sources import open_source

log = logging.getLogger("hanja_live")

PROGRESS_EVERY_S = 2.0


def run_detect(source_uri, model, json_path=None, record_path=None, overwrite=False,
               progress=True):
    """Detect on every frame in order; returns the number of frames processed."""
    if json_path is None and record_path is None:
        raise HanjaLiveError("detect needs somewhere to write: add --json OUT.jsonl and/or "
                             "--record OUT.mp4")
    detector = load_detector(model)
    src = open_source(source_uri, loop=False)
    if src.is_live:
        src.close()
        raise HanjaLiveError("detect reads files and folders; for a camera or stream use "
                             "'hanja_live --source %s --json OUT.jsonl'" % source_uri)
    frames = 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(detector.backend)
        stack.enter_context(src)
        json_sink = video = annotator = None
        if json_path:
            json_sink = stack.enter_context(JsonLinesSink(json_path, detector.names,
                                                          overwrite=overwrite))
        if record_path:
            video = stack.enter_context(VideoSink(record_path, fps=src.fps or 30.0,
                                                  overwrite=overwrite))
            annotator = Annotator(detector.names)
        log.info("detect: %s", src.description)
        start = last = time.monotonic()
        while True:
            try:
                frame = src.read()
            except EndOfStream:
                break
            if frame is None:
                continue
            detections, _ = detector(frame.image)
            if json_sink is not None:
                json_sink.write(frame, detections)
            if video is not None and annotator is not None:
                video.write(annotator.annotate(frame.image, detections))
            frames += 1
            now = time.monotonic()
            if progress and now - last >= PROGRESS_EVERY_S:
                last = now
                sys.stderr.write("\rdetect: %d frames, %.1f frames/s" % (frames, frames / (now - start)))
                sys.stderr.flush()
        if progress and frames:
            elapsed = max(time.monotonic() - start, 1e-9)
            sys.stderr.write("\rdetect: %d frames, %.1f frames/s\n" % (frames, frames / elapsed))
    log.info("detect: %d frames%s%s", frames,
             ", detections in %s" % json_path if json_path else "",
             ", video in %s" % record_path if record_path else "")
    return frames
