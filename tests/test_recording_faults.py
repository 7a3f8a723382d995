"""Recordings that must survive: segments (a crash loses only the last), a real disk filling
up under the sinks and under the running app, an output folder that disappears."""

import json
import os
import shutil
import signal

import numpy as np
import pytest

from conftest import write_video
from hanja_live import CLASS_NAMES
from hanja_live.detections import Detections
from hanja_live.errors import SinkError
from hanja_live.frame import Frame
from hanja_live.sinks import JsonLinesSink, VideoSink
from hanja_live.sinks.video import next_segment_number, segment_path
from live_process import LiveProcess, count_lines
from small_disk import fill, mount_small_disk, unmount
from test_sinks import frame_number, numbered_frame, read_back


@pytest.fixture
def small_disk(tmp_path):
    folder = mount_small_disk(str(tmp_path / "disk"), 16384)
    yield folder
    unmount(folder)


def noisy_frame(n, rng):
    """A numbered frame that compresses badly, so a small disk fills after a few."""
    image = numbered_frame(n)
    image[60:] = rng.integers(0, 256, image[60:].shape, dtype=np.uint8)
    return image


# --- segments -------------------------------------------------------------------------------

@pytest.mark.parametrize("existing, expected", [
    ([], 1),
    (["rec-0001.mp4", "rec-0002.mp4"], 3),
    (["rec-0007.mp4.part.mp4"], 8),  # an unfinished one from a crash is not written over
    (["rec-0002.mp4", "rec-0010.mp4", "rec-12345.mp4"], 12346),
    (["rec.mp4", "rec-1.mp4", "rec-0003.avi", "record-0009.mp4", "rec-0004.mp4.bak"], 1),
])
def test_next_segment_number(tmp_path, existing, expected):
    for name in existing:
        (tmp_path / name).write_bytes(b"x")
    path = str(tmp_path / "rec.mp4")
    assert next_segment_number(path) == expected
    assert segment_path(path, expected) == str(tmp_path / ("rec-%04d.mp4" % expected))


def test_segments_hold_every_frame_in_order(tmp_path):
    path = str(tmp_path / "rec.mp4")
    with VideoSink(path, fps=10, segment_s=0.5) as sink:
        for i in range(23):
            sink.write(numbered_frame(i))
    files = sorted(os.listdir(str(tmp_path)))
    assert files == ["rec-%04d.mp4" % n for n in range(1, len(files) + 1)]
    assert len(files) >= 5 and sink.finished == [str(tmp_path / f) for f in files]
    counts = [len(read_back(f)) for f in sink.finished]
    # 5 frames of video per segment, fewer when writing took longer than 0.5 s of clock
    assert all(1 <= c <= 5 for c in counts) and sum(counts) == 23
    numbers = [frame_number(img) for f in sink.finished for img in read_back(f)]
    assert numbers == list(range(23))


def test_segments_go_on_after_existing_ones(tmp_path):
    (tmp_path / "rec-0003.mp4").write_bytes(b"precious")
    path = str(tmp_path / "rec.mp4")
    with VideoSink(path, fps=10, segment_s=1.0) as sink:
        sink.write(numbered_frame(1))
    assert sink.finished == [str(tmp_path / "rec-0004.mp4")]
    assert (tmp_path / "rec-0003.mp4").read_bytes() == b"precious"
    assert [frame_number(f) for f in read_back(sink.finished[0])] == [1]


def test_finished_segments_play_while_the_next_is_written(tmp_path):
    """What kill -9 or a power cut leaves: the finished segments play, only the open one is lost."""
    path = str(tmp_path / "rec.mp4")
    sink = VideoSink(path, fps=10, segment_s=0.3)
    for i in range(10):
        sink.write(numbered_frame(i))
    assert sink.finished and os.path.exists(sink.part_path)
    kept = [frame_number(img) for f in sink.finished for img in read_back(f)]
    assert kept == list(range(len(kept))) and len(kept) >= 3
    sink.close()


# --- a disk filling up ----------------------------------------------------------------------

@pytest.mark.parametrize("segment_s", [None, 0.5])
def test_video_stops_before_the_disk_is_full_and_stays_playable(small_disk, segment_s):
    fill(small_disk, leave_kb=9000)
    path = os.path.join(small_disk, "rec.mp4")
    rng = np.random.default_rng(0)
    sink = VideoSink(path, fps=10, min_free_mb=1, segment_s=segment_s)
    with pytest.raises(SinkError) as info:
        for i in range(10000):
            sink.write(noisy_frame(i % 64, rng))
    message = str(info.value)
    assert "the recording %s stopped: only" % path in message and "MB free" in message
    assert "\n" not in message
    assert sink.frames > 30
    leftovers = [n for n in os.listdir(small_disk) if ".part." in n]
    assert leftovers == []
    numbers = [frame_number(img) for f in sink.finished for img in read_back(f)]
    assert numbers == [i % 64 for i in range(sink.frames)]
    with pytest.raises(SinkError, match="already closed"):
        sink.write(numbered_frame(0))


def test_json_lines_on_a_full_disk_stay_whole(small_disk):
    fill(small_disk, leave_kb=40)
    path = os.path.join(small_disk, "det.jsonl")
    detections = Detections([(1, 2, 3, 4)] * 20, [0.5] * 20, [3] * 20)
    frame = Frame(numbered_frame(0), 0, None, 0.0)
    with JsonLinesSink(path, CLASS_NAMES, min_free_mb=0) as sink:
        with pytest.raises(SinkError, match="cannot write to the detections file .*No space left"):
            for i in range(100000):
                sink.write(frame._replace(index=i), detections)
    lines = open(path, encoding="utf-8").read().splitlines()
    assert len(lines) == sink.lines > 10
    assert [json.loads(line)["frame"] for line in lines] == list(range(sink.lines))


@pytest.mark.parametrize("sink_kind", ["video", "json"])
def test_a_vanished_output_folder_stops_the_sink(tmp_path, sink_kind):
    folder = tmp_path / "usb"
    folder.mkdir()
    frame = Frame(numbered_frame(0), 0, None, 0.0)
    if sink_kind == "video":
        sink = VideoSink(str(folder / "rec.mp4"), fps=10, min_free_mb=1)
        write = lambda: sink.write(numbered_frame(0))  # noqa: E731
    else:
        sink = JsonLinesSink(str(folder / "det.jsonl"), CLASS_NAMES, min_free_mb=1)
        write = lambda: sink.write(frame, Detections.empty())  # noqa: E731
    write()
    shutil.rmtree(str(folder))  # the stick is pulled
    with pytest.raises(SinkError) as info:
        write()
    assert str(folder) in str(info.value) and "\n" not in str(info.value)
    sink.close()


# --- the running app on a disk that fills up -------------------------------------------------

def test_app_on_a_full_disk_keeps_the_live_view_going(tmp_path, small_disk, tiny_model):
    rng = np.random.default_rng(1)
    frames = [noisy_frame(i, rng) for i in range(40)]
    clip = write_video(tmp_path / "clip.avi", frames, fps=10)
    fill(small_disk, leave_kb=9000)
    config = tmp_path / "kiosk.yaml"
    config.write_text("output:\n  min_free_mb: 1\n")
    record = os.path.join(small_disk, "rec.mp4")
    detections = tmp_path / "det.jsonl"
    app = LiveProcess("--source", clip, "--loop", "--headless", "--record", record,
                      "--record-segment", "1", "--json", detections, "--config", config,
                      "--model", tiny_model)
    try:
        app.wait_for(lambda: "stopped: only" in app.log(), "the recording to stop")
        stopped_at = count_lines(detections)
        app.wait_lines(detections, stopped_at + 100)  # the live view goes on
        app.send(signal.SIGTERM)
        assert app.finish() == 128 + signal.SIGTERM
        log = app.log()
    finally:
        app.close()
    assert "the live view goes on" in log and "Traceback" not in log
    lines = detections.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["frame"] for line in lines] == list(range(len(lines)))
    recorded = sorted(n for n in os.listdir(small_disk) if n.startswith("rec-"))
    assert recorded and not [n for n in recorded if ".part." in n]
    total = sum(len(read_back(os.path.join(small_disk, n))) for n in recorded)
    assert 3 < total <= stopped_at


def test_a_restart_on_a_full_disk_goes_on_without_recording(tmp_path, small_disk, tiny_model,
                                                            caplog):
    from hanja_live.app import run_live
    from hanja_live.config import load_config

    clip = write_video(tmp_path / "clip.avi", [numbered_frame(i) for i in range(10)], fps=10)
    fill(small_disk, leave_kb=300)
    detections = tmp_path / "det.jsonl"
    config = load_config(overrides={
        "model": {"path": tiny_model}, "source": {"uri": clip}, "display": {"window": False},
        "output": {"record": os.path.join(small_disk, "rec.mp4"), "record_segment_s": 1,
                   "min_free_mb": 1, "json": str(detections)}})
    # the first start: the user is told, nothing runs
    with pytest.raises(SinkError, match="only .* MB free"):
        run_live(config.model, config.source, config.display, config.output)
    assert not detections.exists()
    # a kiosk restart: the live view and the other outputs go on
    with caplog.at_level("WARNING"):
        assert run_live(config.model, config.source, config.display, config.output,
                        resume=True) == 0
    assert count_lines(detections) == 10
    assert any("going on without it" in r.getMessage() for r in caplog.records)
    assert not [n for n in os.listdir(small_disk) if n.startswith("rec")]
