"""File sinks: real MP4s read back frame for frame, JSON lines read back with json.loads."""

import io
import json
import os
import threading
import time

import cv2
import numpy as np
import pytest

from hanja_live import CLASS_NAMES
from hanja_live.detections import Detections
from hanja_live.errors import SinkError
from hanja_live.frame import Frame
from hanja_live.sinks import JsonLinesSink, PacedRecorder, VideoSink
from hanja_live.sinks.video import part_path

BITS = 6  # frame numbers 0..63 as six black/white blocks
BLOCK = 40


def numbered_frame(n, width=320, height=240):
    """A frame whose top row of blocks spells ``n`` in binary, over a gradient background."""
    img = np.zeros((240, 320, 3), np.uint8)
    img[:] = np.linspace(60, 200, 320, dtype=np.uint8)[None, :, None]
    for bit in range(BITS):
        value = 255 if (n >> bit) & 1 else 0
        img[8:8 + BLOCK, 8 + bit * (BLOCK + 8):8 + bit * (BLOCK + 8) + BLOCK] = value
    if (width, height) != (320, 240):
        img = cv2.resize(img, (width, height), interpolation=cv2.INTER_NEAREST)
    return img


def frame_number(img):
    scale_x, scale_y = img.shape[1] / 320.0, img.shape[0] / 240.0
    n = 0
    for bit in range(BITS):
        x = int((8 + bit * (BLOCK + 8) + BLOCK // 2) * scale_x)
        y = int((8 + BLOCK // 2) * scale_y)
        patch = img[y - 5:y + 5, x - 5:x + 5]
        if patch.mean() > 128:
            n |= 1 << bit
    return n


def read_back(path):
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), "OpenCV cannot open %s" % path
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return frames


def test_video_frames_read_back_in_order(tmp_path):
    path = str(tmp_path / "rec.mp4")
    n = 24
    with VideoSink(path, fps=12) as sink:
        for i in range(n):
            sink.write(numbered_frame(i))
            if i == 0:
                assert os.path.exists(part_path(path)) and not os.path.exists(path)
        assert sink.fourcc in ("avc1", "mp4v")
    assert os.path.exists(path) and not os.path.exists(part_path(path))
    frames = read_back(path)
    assert len(frames) == n
    assert [frame_number(f) for f in frames] == list(range(n))
    assert frames[0].shape == (240, 320, 3)
    # lossy, but close to what was written
    assert np.abs(frames[5].astype(int) - numbered_frame(5)).mean() < 6
    with open(path, "rb") as f:
        assert f.read(12)[4:8] == b"ftyp", "not an MP4 container"


def test_video_ctrl_c_leaves_a_playable_file(tmp_path):
    path = str(tmp_path / "interrupted.mp4")
    with pytest.raises(KeyboardInterrupt):
        with VideoSink(path, fps=10) as sink:
            for i in range(40):
                if i == 9:
                    raise KeyboardInterrupt
                sink.write(numbered_frame(i))
    assert not os.path.exists(part_path(path))
    assert [frame_number(f) for f in read_back(path)] == list(range(9))


def test_video_without_frames_leaves_nothing(tmp_path):
    path = str(tmp_path / "empty.mp4")
    with VideoSink(path, fps=10):
        assert os.path.exists(part_path(path))  # the name is claimed at once
    assert os.listdir(str(tmp_path)) == []


def test_video_fixed_size_scales_frames(tmp_path):
    path = str(tmp_path / "scaled.mp4")
    with VideoSink(path, fps=10, size=(160, 120)) as sink:
        for i in range(5):
            sink.write(numbered_frame(i, 320, 240) if i % 2 else numbered_frame(i, 640, 480))
    frames = read_back(path)
    assert [f.shape for f in frames] == [(120, 160, 3)] * 5
    assert [frame_number(f) for f in frames] == list(range(5))


def test_video_avi_and_write_after_close(tmp_path):
    path = str(tmp_path / "rec.avi")
    sink = VideoSink(path, fps=10)
    for i in range(3):
        sink.write(numbered_frame(i))
    sink.close()
    assert [frame_number(f) for f in read_back(path)] == [0, 1, 2]
    with pytest.raises(SinkError, match="already closed"):
        sink.write(numbered_frame(3))


@pytest.mark.parametrize("overwrite", [False, True])
def test_video_refuses_to_overwrite(tmp_path, overwrite):
    path = tmp_path / "keep.mp4"
    path.write_bytes(b"precious")
    if not overwrite:
        with pytest.raises(SinkError) as info:
            VideoSink(str(path), fps=10)
        assert str(path) in str(info.value) and "--overwrite" in str(info.value)
        assert path.read_bytes() == b"precious"
        assert not os.path.exists(part_path(str(path)))
        return
    with VideoSink(str(path), fps=10, overwrite=True) as sink:
        sink.write(numbered_frame(7))
    assert [frame_number(f) for f in read_back(path)] == [7]


def test_json_refuses_to_overwrite(tmp_path):
    path = tmp_path / "keep.jsonl"
    path.write_text("old\n")
    with pytest.raises(SinkError, match="already exists; pass --overwrite"):
        JsonLinesSink(str(path), CLASS_NAMES)
    assert path.read_text() == "old\n"
    with JsonLinesSink(str(path), CLASS_NAMES, overwrite=True) as sink:
        sink.write(Frame(numbered_frame(0), 0, None, 0.0), Detections.empty())
    assert json.loads(path.read_text()) == {"frame": 0, "detections": []}


def a_folder(tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    return str(folder)


def a_file(tmp_path):
    blocker = tmp_path / "plain_file"
    blocker.write_text("x")
    return str(blocker)


# (sink, path builder, message fragment); every one must name the path it refused
BAD_PATHS = [
    ("video", lambda t: os.path.join(a_file(t), "out.mp4"), "cannot create the folder"),
    ("json", lambda t: os.path.join(a_file(t), "out.jsonl"), "cannot create the folder"),
    ("video", lambda t: "/proc/hanja_live_test/out.mp4", "cannot create the folder"),
    ("json", lambda t: "/proc/hanja_live_test/out.jsonl", "cannot create the folder"),
    ("video", lambda t: a_folder(t, "rec.mp4"), "is a folder"),
    ("json", lambda t: str(t), "is a folder"),
    ("video", lambda t: os.path.join(str(t), "out.txt"), "must end in"),
    ("video", lambda t: os.path.join(str(t), "out"), "must end in"),
    ("json", lambda t: "", "needs a file name"),
]


@pytest.mark.parametrize("kind, make_path, needle", BAD_PATHS)
def test_unwritable_paths_are_one_line_sink_errors(tmp_path, kind, make_path, needle):
    path = make_path(tmp_path)
    with pytest.raises(SinkError, match=needle) as info:
        if kind == "video":
            VideoSink(path, fps=10)
        else:
            JsonLinesSink(path, CLASS_NAMES)
    message = str(info.value)
    assert "\n" not in message
    assert path in message or os.path.dirname(path) in message


def test_sinks_make_missing_folders(tmp_path):
    video = str(tmp_path / "out" / "sub" / "rec.mp4")
    with VideoSink(video, fps=10) as sink:
        sink.write(numbered_frame(1))
    with JsonLinesSink(str(tmp_path / "out" / "det.jsonl"), CLASS_NAMES) as sink:
        sink.write(Frame(numbered_frame(0), 0, None, 0.0), Detections.empty())
    assert len(read_back(video)) == 1 and os.path.getsize(str(tmp_path / "out" / "det.jsonl")) > 0


def test_video_rejects_bad_fps(tmp_path):
    for fps in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="fps must be a positive number"):
            VideoSink(str(tmp_path / "x.mp4"), fps=fps)


# (case, fps, capture times in s, frame numbers the file must hold, repeated, skipped);
# max_fill_s 0.5. Frame i of each case is numbered_frame(i).
PACED_CASES = [
    ("on_time", 10, [0.0, 0.1, 0.2, 0.3], [0, 1, 2, 3], 0, 0),
    ("jitter_within_half_a_frame", 10, [0.0, 0.14, 0.19, 0.31], [0, 1, 2, 3], 0, 0),
    ("slow_loop_repeats_the_previous_frame", 10, [0.0, 0.3, 0.5], [0, 0, 0, 1, 1, 2], 3, 0),
    ("early_frame_left_out", 10, [0.0, 0.03, 0.1], [0, 2], 0, 1),
    ("stall_cut_to_max_fill", 10, [0.0, 5.0, 5.1], [0] * 6 + [1, 2], 5, 0),
    ("unpaced_writes_each_frame_once", None, [0.0, 0.3, 0.31], [0, 1, 2], 0, 0),
]


@pytest.mark.parametrize("case, fps, times, want, repeated, skipped", PACED_CASES,
                         ids=[c[0] for c in PACED_CASES])
def test_paced_video_keeps_the_capture_clock(tmp_path, case, fps, times, want, repeated, skipped):
    path = str(tmp_path / "live.mp4")
    sink = VideoSink(path, fps=fps or 10)
    with (PacedRecorder(sink, max_fill_s=0.5, wait=True) if fps else sink) as rec:
        buf = np.empty((240, 320, 3), np.uint8)
        for i, t in enumerate(times):
            np.copyto(buf, numbered_frame(i))  # one reused buffer, as the presenter's
            rec.write(buf, 1000.0 + t)
        assert (getattr(rec, "repeated", 0), getattr(rec, "skipped", 0)) == (repeated, skipped)
    frames = read_back(path)
    assert [frame_number(f) for f in frames] == want
    cap = cv2.VideoCapture(path)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(fps or 10, rel=0.01)
    cap.release()


def test_paced_segments_split_on_the_file_clock(tmp_path):
    path = str(tmp_path / "seg.mp4")
    # 10 fps, 1 s segments: a loop at 4 fps for 2.5 s fills 25 frames of file time
    with PacedRecorder(VideoSink(path, fps=10, segment_s=1), wait=True) as rec:
        for i in range(11):
            rec.write(numbered_frame(i), 50.0 + i * 0.25)
    finished = list(rec.finished)
    counts = [len(read_back(p)) for p in finished]
    assert counts[:2] == [10, 10] and sum(counts) == 26  # frames 0..25 of the clock


class HeldSink(VideoSink):
    """A real VideoSink whose first write waits until the test lets it go: a busy encoder."""

    def __init__(self, *args, **kwargs):
        super(HeldSink, self).__init__(*args, **kwargs)
        self.entered, self.release = threading.Event(), threading.Event()

    def write(self, image, t=None):
        self.entered.set()
        assert self.release.wait(30)
        super(HeldSink, self).write(image, t)


def test_paced_recorder_drops_while_the_encoder_is_busy(tmp_path):
    # 100 fps clock, frame i captured in slot i. The encoder is busy with frame 0, frame 1
    # waits in the queue, 2..9 find it full and are dropped; frame 10 comes when the encoder
    # is free again, and repeats of frame 1 fill slots 2..9: the file keeps the clock
    path = str(tmp_path / "busy.mp4")
    sink = HeldSink(path, fps=100)
    with PacedRecorder(sink) as rec:
        rec.write(numbered_frame(0), 7.0)
        assert sink.entered.wait(30)
        for i in range(1, 10):
            rec.write(numbered_frame(i), 7.0 + i * 0.01)
        assert rec.dropped == 8
        sink.release.set()
        wait_until(lambda: rec.frames == 2)
        rec.write(numbered_frame(10), 7.10)
    assert (rec.dropped, rec.skipped, rec.repeated) == (8, 0, 8)
    assert [frame_number(f) for f in read_back(path)] == [0] + [1] * 9 + [10]


def test_paced_recorder_reports_a_sink_error_on_the_next_write(tmp_path):
    folder = tmp_path / "rec"
    rec = PacedRecorder(VideoSink(str(folder / "gone.mp4"), fps=10), wait=True)
    with rec:
        rec.write(numbered_frame(0), 1.0)
        wait_until(lambda: rec.frames == 1)  # the writer has made its file
        for name in os.listdir(str(folder)):
            os.remove(str(folder / name))
        rec.write(numbered_frame(1), 1.1)  # handed over; the encoder finds its file gone
        with pytest.raises(SinkError, match="is gone"):  # writes until the error comes out
            wait_until(lambda: rec.write(numbered_frame(2), 1.2) and False)


def test_paced_recorder_logs_an_error_the_loop_did_not_see(tmp_path, caplog):
    folder = tmp_path / "rec"
    rec = PacedRecorder(VideoSink(str(folder / "gone.mp4"), fps=10), wait=True)
    rec.write(numbered_frame(0), 1.0)
    wait_until(lambda: rec.frames == 1)
    for name in os.listdir(str(folder)):
        os.remove(str(folder / name))
    rec.write(numbered_frame(1), 1.1)  # the last frame: the loop writes no more
    with caplog.at_level("WARNING"):
        rec.close()
    assert any("is gone" in r.getMessage() for r in caplog.records)


def wait_until(predicate, patience_s=30.0):
    deadline = time.monotonic() + patience_s
    while not predicate():
        assert time.monotonic() < deadline, "waited %.0f s in vain" % patience_s
        time.sleep(0.01)


DETS = Detections([(10, 20, 110, 140.5), (200, 30, 260, 90)], [0.91234567, 0.5], [2, 9])

# (frame name, frame index, detections, expected record)
JSON_CASES = [
    ("page_001.jpg", 0, DETS, {"image": "page_001.jpg", "detections": [
        {"cls": 2, "label": "三", "conf": 0.91235, "box": [10.0, 20.0, 110.0, 140.5]},
        {"cls": 9, "label": "十", "conf": 0.5, "box": [200.0, 30.0, 260.0, 90.0]}]}),
    (None, 17, DETS, {"frame": 17, "detections": [
        {"cls": 2, "label": "三", "conf": 0.91235, "box": [10.0, 20.0, 110.0, 140.5]},
        {"cls": 9, "label": "十", "conf": 0.5, "box": [200.0, 30.0, 260.0, 90.0]}]}),
    (None, 18, Detections.empty(), {"frame": 18, "detections": []}),
    ("스캔 二.png", 3, Detections([(1, 2, 3, 4)], [0.25], [0]),
     {"image": "스캔 二.png", "detections": [{"cls": 0, "label": "一", "conf": 0.25,
                                              "box": [1.0, 2.0, 3.0, 4.0]}]}),
]


def test_json_lines_schema_and_hanja_round_trip(tmp_path):
    path = tmp_path / "det.jsonl"
    image = numbered_frame(0)
    with JsonLinesSink(str(path), CLASS_NAMES) as sink:
        for i, (name, index, detections, _) in enumerate(JSON_CASES):
            sink.write(Frame(image, index, name, 123.0), detections)
            # flushed per line: a reader sees the line while the sink is still open
            with io.open(str(path), encoding="utf-8") as f:
                assert len(f.read().splitlines()) == i + 1
    raw = path.read_bytes()
    assert "三".encode("utf-8") in raw and b"\\u" not in raw
    lines = raw.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [case[3] for case in JSON_CASES]
    assert list(json.loads(lines[0])) == ["image", "detections"]


def test_json_lines_to_stdout(capsys):
    with JsonLinesSink("-", CLASS_NAMES) as sink:
        sink.write(Frame(numbered_frame(0), 5, None, 0.0), Detections([(0, 0, 5, 5)], [1.0], [7]))
    out = capsys.readouterr().out
    assert json.loads(out)["detections"][0]["label"] == "八"
