"""Credentials in a stream URL never reach the screen, the log or the outputs: the real app
against an unreachable RTSP camera and a real MJPEG camera that drops out and comes back."""

import signal

import pytest

from live_process import LiveProcess, count_lines
from mjpeg_camera import MjpegCamera

SECRET = "hunter2"


@pytest.mark.parametrize("url", [
    "rtsp://admin:%s@127.0.0.1:9/live" % SECRET,  # port 9: nobody listens
    "http://admin:%s@127.0.0.1:9/video.mjpg" % SECRET,
    "http://127.0.0.1:9/video.mjpg?user=admin&password=%s" % SECRET,
])
def test_unreachable_camera_error_hides_the_password(run_cli, tiny_model, url):
    proc = run_cli("--source", url, "--headless", "--model", tiny_model, timeout=60)
    assert proc.returncode == 2
    assert "hanja_live: error: cannot open stream" in proc.stderr and "***" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_reconnect_logs_hide_the_password(tmp_path, tiny_model):
    camera = MjpegCamera()
    detections = tmp_path / "det.jsonl"
    app = LiveProcess("--source", camera.url("admin:%s@" % SECRET), "--headless", "--json",
                      detections, "--model", tiny_model, log_path=tmp_path / "app.log")
    try:
        app.wait_lines(detections, 10)
        camera.unplug()
        app.wait_for(lambda: "reconnect try 2 failed" in app.log(), "two reconnect tries")
        camera.plug()
        back = count_lines(detections)
        app.wait_lines(detections, back + 10)
        app.send(signal.SIGTERM)
        assert app.finish() == 128 + signal.SIGTERM
        log = app.log()
    finally:
        app.close()
        camera.close()
    assert "camera lost" in log and "camera back after" in log and "admin:***@" in log
    assert SECRET not in log
    assert SECRET not in detections.read_text(encoding="utf-8")
