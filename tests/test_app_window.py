"""The app end to end in a real window on a virtual X server: `python -m hanja_live` on a
looping clip, keys sent with xdotool — pause stops the frames, s saves a snapshot while
paused, space goes on, q quits with exit code 0."""

import glob
import os
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from test_window_xvfb import x_env, xvfb  # noqa: F401  (xvfb is a fixture used below)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TITLE = "hanja_live app test"


def clip(path, count=30, size=(160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15.0, size)
    assert writer.isOpened()
    for i in range(count):
        image = np.full((size[1], size[0], 3), 200, np.uint8)
        cv2.putText(image, str(i), (40, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (20, 20, 20), 3)
        writer.write(image)
    writer.release()
    return str(path)


def lines(path):
    if not os.path.exists(path):
        return 0
    with open(path, "r", encoding="utf-8") as f:
        return sum(1 for _ in f)


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail("gave up waiting for %s" % what)


def settled(path, quiet_s=1.0, timeout=20.0):
    """The line count once it has not changed for ``quiet_s`` seconds."""
    deadline = time.monotonic() + timeout
    last, since = lines(path), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = lines(path)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return now
    pytest.fail("frames kept coming: the pause did not stop them")


def test_pause_snapshot_resume_quit(tmp_path, tiny_model, xvfb):  # noqa: F811
    env = x_env(xvfb)
    video = clip(tmp_path / "clip.avi")
    jsonl = str(tmp_path / "out.jsonl")
    log = open(str(tmp_path / "stderr.txt"), "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "hanja_live", "--source", video, "--loop", "--model", tiny_model,
         "--json", jsonl, "--title", TITLE],
        cwd=str(tmp_path), env=dict(env, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL, stderr=log)

    def press(key):
        found = subprocess.run(["xdotool", "search", "--sync", "--name", "^%s$" % TITLE],
                               env=env, stdout=subprocess.PIPE, universal_newlines=True,
                               timeout=30, check=True).stdout.split()
        subprocess.run(["xdotool", "windowfocus", "--sync", found[0]], env=env, timeout=30,
                       check=True)
        subprocess.run(["xdotool", "key", key], env=env, timeout=30, check=True)

    try:
        wait_for(lambda: lines(jsonl) >= 5 or proc.poll() is not None, 60, "the first frames")
        assert proc.poll() is None, "the app ended early"
        press("space")
        paused_at = settled(jsonl)
        press("s")
        wait_for(lambda: glob.glob(str(tmp_path / "snapshot-*.png")), 20, "the snapshot")
        assert lines(jsonl) == paused_at, "frames went on while paused"
        press("space")
        wait_for(lambda: lines(jsonl) > paused_at + 3, 20, "frames after the pause")
        press("q")
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.seek(0)
        said = log.read()
        log.close()
    assert code == 0, said
    assert "done: " in said
    snapshot = cv2.imread(glob.glob(str(tmp_path / "snapshot-*.png"))[0])
    assert snapshot.shape == (120, 160, 3)
