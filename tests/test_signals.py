"""Real signals to the real app (``python -m hanja_live run`` in a child process): the
recording it was writing must play afterwards, whatever stopped it. Then the handlers in
this process: they take note and never raise, also when several signals come at once."""

import json
import logging
import os
import signal
import threading
import time

import pytest

from conftest import write_video
from hanja_live import app
from hanja_live.config import load_config
from hanja_live.stop_signals import StopSignals, Stopped
from live_process import LiveProcess, count_lines
from test_pipeline import _GST_OK, _GST_WHY
from test_sinks import frame_number, numbered_frame, read_back


@pytest.fixture
def clip(tmp_path):
    """A 30-frame numbered clip; played with --loop it never ends by itself."""
    return write_video(tmp_path / "clip.avi", [numbered_frame(i) for i in range(30)], fps=10)


def start(clip, tmp_path, tiny_model, *extra):
    record = tmp_path / "rec.mp4"
    detections = tmp_path / "det.jsonl"
    app = LiveProcess("--source", clip, "--loop", "--headless", "--record", record, "--json",
                      detections, "--model", tiny_model, *extra)
    return app, record, detections


@pytest.mark.parametrize("signals", [
    [signal.SIGINT],
    [signal.SIGTERM],
    [signal.SIGHUP],
    [signal.SIGTERM, signal.SIGTERM, signal.SIGINT],  # impatient: more while it closes
])
def test_stop_signals_leave_a_playable_recording(tmp_path, clip, tiny_model, signals):
    app, record, detections = start(clip, tmp_path, tiny_model)
    try:
        app.wait_lines(detections, 45)
        for signum in signals:
            app.send(signum)
        code = app.finish()
        log = app.log()
    finally:
        app.close()
    # signals that arrive together are handled in signal-number order: any may be first
    assert code - 128 in signals, log
    assert "%s: closing outputs" % signal.Signals(code - 128).name in log
    assert "Traceback" not in log
    assert not os.path.exists(str(record) + ".part.mp4")
    frames = read_back(record)
    lines = count_lines(detections)
    # each presented frame is recorded, then written as a line; the signal may fall between
    assert lines <= len(frames) <= lines + 1 and len(frames) >= 45
    assert [frame_number(f) for f in frames] == [i % 30 for i in range(len(frames))]


def test_kill_9_loses_only_the_open_segment(tmp_path, clip, tiny_model):
    app, record, detections = start(clip, tmp_path, tiny_model, "--record-segment", "0.5")
    try:
        app.wait_for(lambda: len([n for n in os.listdir(str(tmp_path)) if n.startswith("rec-")
                                  and ".part." not in n]) >= 3, "three finished segments")
        app.send(signal.SIGKILL)
        assert app.finish() == -signal.SIGKILL
    finally:
        app.close()
    names = sorted(os.listdir(str(tmp_path)))
    finished = [n for n in names if n.startswith("rec-") and ".part." not in n]
    unfinished = [n for n in names if ".part." in n]
    assert len(unfinished) <= 1  # the segment being written: lost
    assert finished == ["rec-%04d.mp4" % n for n in range(1, len(finished) + 1)]
    numbers = [frame_number(img) for n in finished for img in read_back(tmp_path / n)]
    assert numbers == [i % 30 for i in range(len(numbers))] and len(numbers) >= 3
    # the detections file, one flushed line per frame, is whole up to the kill
    rows = [json.loads(line) for line in detections.read_text(encoding="utf-8").splitlines()]
    assert [r["frame"] for r in rows] == list(range(len(rows))) and len(rows) >= len(numbers)


def test_headless_output_never_replaces_a_file(tmp_path, clip, tiny_model):
    record = tmp_path / "rec.mp4"
    record.write_bytes(b"precious")
    app = LiveProcess("--source", clip, "--headless", "--record", record, "--model", tiny_model)
    try:
        code = app.finish()
        log = app.log()
    finally:
        app.close()
    assert code == 2 and "already exists; pass --overwrite" in log
    assert record.read_bytes() == b"precious"


@pytest.mark.skipif(not _GST_OK, reason=_GST_WHY)
def test_live_recording_keeps_the_camera_clock(tmp_path):
    # a 120 fps live camera against the real default model, which no CPU runs at 120 fps: the
    # loop takes the newest frame and drops the rest, and the recording must still last as
    # long as the camera ran (frames repeated), not play fast
    camera = ("videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,"
              "framerate=120/1 ! videoconvert ! video/x-raw,format=BGR ! appsink")
    record, detections = tmp_path / "live.mp4", tmp_path / "det.jsonl"
    app = LiveProcess("--source", camera, "--headless", "--record", record, "--json", detections)
    try:
        app.wait_lines(detections, 60)
        app.send(signal.SIGTERM)
        code = app.finish()
        log = app.log()
    finally:
        app.close()
    assert code == 128 + signal.SIGTERM and "Traceback" not in log, log
    shown = [json.loads(line)["frame"] for line in open(str(detections), encoding="utf-8")]
    span = shown[-1] - shown[0] + 1  # camera frames from the first shown to the last
    if len(shown) > span * 0.9:
        pytest.skip("this machine's loop kept up with a 120 fps camera; nothing to pace")
    frames = read_back(record)
    # the file holds the camera's time: one frame per camera frame, give or take the edges
    # and the frames the grabber itself could not take in time under load (unpaced, the file
    # held only the frames shown: 20 % short here)
    assert abs(len(frames) - span) <= max(3, 0.05 * span), (len(frames), span, len(shown))
    assert "frames repeated" in log


def send_together(*signums):
    """Deliver ``signums`` to this (the main) thread at one moment: blocked while they are sent,
    then unblocked at once (a signal sent twice is then pending once). Sent to the thread, not
    the process: another thread (a decoder, ONNX Runtime's pool) would take them one by one."""
    mask = set(signums)
    signal.pthread_sigmask(signal.SIG_BLOCK, mask)
    try:
        for signum in signums:
            signal.pthread_kill(threading.main_thread().ident, signum)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, mask)


# (signals sent together, before or after hold(); the first noted, the later ones; CPython
# runs the handlers of pending signals in number order: SIGHUP 1, SIGINT 2, SIGTERM 15)
TOGETHER = [
    ([signal.SIGINT], False, signal.SIGINT, []),
    ([signal.SIGTERM], False, signal.SIGTERM, []),
    ([signal.SIGTERM, signal.SIGTERM, signal.SIGINT], False, signal.SIGINT, [signal.SIGTERM]),
    ([signal.SIGTERM, signal.SIGHUP], False, signal.SIGHUP, [signal.SIGTERM]),
    ([signal.SIGTERM], True, signal.SIGTERM, []),  # while the outputs close: told to wait
]


@pytest.fixture
def default_handlers():
    """SIGINT, SIGTERM and SIGHUP as an interactive shell starts Python (a "cmd &" in a script
    starts it with SIGINT ignored), put back afterwards."""
    signums = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {s: signal.getsignal(s) for s in signums}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in signums[1:]:
        signal.signal(signum, signal.SIG_DFL)
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("sent, holding, first, late", TOGETHER)
def test_handlers_take_note_and_never_raise(capfd, default_handlers, sent, holding, first, late):
    with StopSignals() as stop:
        if holding:
            stop.hold()
        assert not stop.requested()
        stop.check()  # nothing came yet: no Stopped
        send_together(*sent)
        for _ in range(5):
            time.sleep(0.01)  # the handlers ran at the unblock or run here; none may raise
        assert stop.requested() and stop.received == first and stop.late == late
        assert stop.name == signal.Signals(first).name and stop.exit_code == 128 + first
        with pytest.raises(Stopped) as stopped:
            stop.check()
        assert stopped.value.signum == first and str(stopped.value) == stop.name
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    told = capfd.readouterr().err.splitlines()
    expected = late + ([first] if holding else [])
    assert told == ["hanja_live: %s: still finishing the outputs, a moment (kill -9 now would "
                    "lose the unfinished recording segment)" % signal.Signals(s).name
                    for s in expected]


def test_a_signal_ignored_at_start_stays_ignored(default_handlers):
    # nohup sets SIGHUP to SIG_IGN so that the run outlives its terminal
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with StopSignals() as stop:
        assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) not in (signal.SIG_IGN, signal.SIG_DFL)
        send_together(signal.SIGHUP)
        time.sleep(0.01)
        assert not stop.requested()
    assert signal.getsignal(signal.SIGHUP) == signal.SIG_IGN


def test_a_signal_while_starting_ends_the_start(tmp_path, clip, tiny_model, caplog,
                                                monkeypatch, default_handlers):
    # SIGTERM while the model loads: nothing after that step is opened
    real_load = app.load_detectors
    loaded = []

    def load_then_signal(model):
        loaded.extend(real_load(model))
        os.kill(os.getpid(), signal.SIGTERM)
        return loaded

    monkeypatch.setattr(app, "load_detectors", load_then_signal)
    record = tmp_path / "rec.mp4"
    config = load_config(overrides={
        "model": {"path": tiny_model}, "source": {"uri": clip, "loop": True},
        "display": {"window": False}, "output": {"record": str(record)}})
    before = signal.getsignal(signal.SIGTERM)
    with caplog.at_level(logging.INFO):
        code = app.run_live(config.model, config.source, config.display, config.output)
    assert code == 128 + signal.SIGTERM and loaded
    assert "SIGTERM: stopped before the first frame" in caplog.text
    assert "source:" not in caplog.text  # the source was never reported open
    assert sorted(os.listdir(str(tmp_path))) == ["clip.avi", "tiny.onnx"]  # no recording begun
    assert signal.getsignal(signal.SIGTERM) == before
