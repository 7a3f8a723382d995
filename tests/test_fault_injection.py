"""The whole live pipeline (app.run_live: grabber, detector, overlay, recording, JSON lines)
fed by a real capture (OpenCV reading a real video file) with faults injected: reads that
fail every N frames, garbage instead of images, exceptions, stalls and a read that hangs for
good. It must get through all of them and keep what it recorded."""

import json
import logging
import threading
import time

import cv2
import numpy as np
import pytest

import hanja_live.app as app
from conftest import write_video
from hanja_live.config import load_config
from hanja_live.sources import LiveSource
from hanja_live.sources.opencv_capture import OpenCVCapture
from test_sinks import frame_number, numbered_frame, read_back

FRAMES = 60
GARBAGE = [np.zeros((0, 0, 3), np.uint8), np.zeros((240, 320), np.float32),
           np.zeros((240, 320, 3), np.uint16), np.zeros((240, 320, 2), np.uint8), b"\xff\xd8"]


class FaultyCapture(object):
    """Wraps a real capture; read number k (from 1) is spoiled as ``faults`` says.

    faults: list of (every, kind) with kind "fail" (None), "garbage", "raise", "stall"
    (1.2 s, then the frame) or "hang" (blocks until released, at most once).
    """

    def __init__(self, capture, faults):
        self.capture = capture
        self.faults = faults
        self.description = "faulty " + capture.description
        self.fps = capture.fps
        self.failure_hint = capture.failure_hint
        self.can_end = True  # the file's end ends the run
        self.last_error = None
        self.reads = 0
        self.injected = {"fail": 0, "garbage": 0, "raise": 0, "stall": 0, "hang": 0}
        self.release_hang = threading.Event()
        self.released = False

    def read(self, out=None):
        self.reads += 1
        for every, kind in self.faults:
            if self.reads % every:
                continue
            self.injected[kind] += 1
            if kind == "fail":
                return None
            if kind == "garbage":
                return GARBAGE[self.injected[kind] % len(GARBAGE)]
            if kind == "raise":
                raise OSError("VIDIOC_DQBUF: No such device")
            if kind == "stall":
                time.sleep(1.2)
            if kind == "hang":
                self.faults = [f for f in self.faults if f[1] != "hang"]
                self.release_hang.wait(60)
        time.sleep(1.0 / 30)  # the clip's 30 fps, as a camera keeps its declared rate
        return self.capture.read(out)

    def release(self):
        self.released = True
        self.capture.release()


def open_clip(path):
    capture = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
    assert capture.isOpened()
    return OpenCVCapture(capture, "clip %s" % path, "check the clip", can_end=True)


@pytest.mark.parametrize("faults, reopened", [
    ([(7, "fail")], 0),
    ([(5, "garbage")], 0),
    ([(6, "raise")], 0),
    ([(25, "stall")], 0),
    ([(4, "fail"), (9, "garbage"), (11, "raise"), (30, "stall")], 0),
    ([(20, "hang")], 1),
])
def test_pipeline_survives_injected_faults(tmp_path, tiny_model, monkeypatch, caplog, faults,
                                           reopened):
    clip = write_video(tmp_path / "clip.avi", [numbered_frame(i) for i in range(FRAMES)], fps=30)
    made = []  # (LiveSource, [FaultyCapture, ...])

    def open_faulty(uri, **kwargs):
        captures = [FaultyCapture(open_clip(uri), faults)]

        def reopen():
            # the file again, from its start, with no faults left to hang
            captures.append(FaultyCapture(open_clip(uri), [f for f in faults if f[1] != "hang"]))
            return captures[-1]

        src = LiveSource(captures[0], read_timeout_s=kwargs["read_timeout_s"], max_failures=10,
                         retry_delay_s=0.001, reopen=reopen, stall_s=3.0)
        made.append((src, captures))
        return src

    monkeypatch.setattr(app, "open_source", open_faulty)
    record, detections = tmp_path / "rec.mp4", tmp_path / "det.jsonl"
    config = load_config(overrides={
        "model": {"path": tiny_model, "verifier": None},  # the tiny model draws no numeral
        "source": {"uri": clip, "read_timeout_s": 0.5},
        "display": {"window": False},
        "output": {"record": str(record), "json": str(detections)}})
    with caplog.at_level(logging.INFO):
        code = app.run_live(config.model, config.source, config.display, config.output)
    (src, captures), = made
    for capture in captures:
        capture.release_hang.set()  # a hung read returns; its thread then lets the capture go
    deadline = time.monotonic() + 30
    while not all(c.released for c in captures) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert code == 0
    first = captures[0]
    assert first.injected["garbage"] == src.corrupt
    assert len(captures) == 1 + reopened and all(c.released for c in captures)
    rows = [json.loads(line) for line in detections.read_text(encoding="utf-8").splitlines()]
    assert [r["frame"] for r in rows] == sorted(set(r["frame"] for r in rows))
    assert all(r["detections"][0]["label"] == "三" for r in rows)
    video = read_back(record)
    assert len(video) >= 10 and len(rows) >= 10
    numbers = [frame_number(img) for img in video]
    if not reopened:
        # on the camera's clock (a stall repeats the last picture), in the order the camera
        # gave them, and only frames that were shown: never stale or garbage ones
        assert numbers == sorted(numbers)
        assert set(numbers) <= set(r["frame"] for r in rows)
        assert numbers[-1] >= FRAMES - 3
        # one file frame per camera frame from the first shown to the last, and up to 1 s
        # (30 frames) of the last picture for each stall
        span = rows[-1]["frame"] - rows[0]["frame"] + 1
        stalls = first.injected["stall"]
        assert 0.9 * span <= len(video) <= span + 31 * stalls + 3, (len(video), span)
    messages = [r.getMessage() for r in caplog.records]
    if any(kind in ("stall", "hang") for _, kind in faults):
        assert any("waiting" in m for m in messages)
    if reopened:
        assert any("a read has hung" in m for m in messages)
        assert any("camera back" in m for m in messages)
