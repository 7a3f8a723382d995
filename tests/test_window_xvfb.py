"""A real window on a virtual X server: the annotated frame on screen, keys and closing.

Each window lives in a child process (this file run as a script): OpenCV's Qt and GTK
backends end their process when the X server goes away, and that process must not be pytest.
"""

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from hanja_live import CLASS_NAMES  # noqa: E402
from hanja_live.detections import Detections  # noqa: E402
from hanja_live.glyphs import GlyphAtlas  # noqa: E402
from hanja_live.overlay import Annotator, palette  # noqa: E402
from hanja_live.sinks.window import gui_backend, window_available, x_display_reachable  # noqa: E402

TITLE = "hanja_live window test"
SCREENSHOT = "/tmp/window_screenshot.png"
LABEL_H = 24
# (x1, y1, x2, y2, class) on the 1280x720 frame shown in the window
BOXES = [(120, 140, 330, 380, 3), (450, 100, 690, 400, 8), (800, 300, 960, 480, 1),
         (1040, 60, 1220, 260, 6), (300, 500, 520, 690, 0)]


def shown_frame():
    """The annotated frame the child shows: light paper, dark strokes, five labelled boxes."""
    rng = np.random.default_rng(7)
    img = np.clip(rng.normal(225, 5, (720, 1280, 3)), 0, 255).astype(np.uint8)
    for x1, y1, x2, y2, _ in BOXES:
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        cv2.line(img, (x1 + 30, cy), (x2 - 30, cy), (30, 30, 30), 9, cv2.LINE_AA)
    boxes = np.array([b[:4] for b in BOXES], np.float32)
    detections = Detections(boxes, [0.93, 0.71, 0.88, 0.64, 0.99], [b[4] for b in BOXES])
    annotator = Annotator(CLASS_NAMES, label_height=LABEL_H)
    annotator.annotate(img, detections)
    annotator.draw_status(img, 29.9, 11.4)
    return img, annotator


def child_main(mode):
    """Run by the child: show the frame, say "shown", then report every action as JSON."""
    from hanja_live.sinks import WindowSink

    def say(**record):
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()

    image, _ = shown_frame()
    if mode == "kiosk-destroy":
        with WindowSink(TITLE, kiosk=True, quit_keys="zx") as window:
            for _ in range(30):
                window.show(image)
            say(event="shown")
            cv2.destroyWindow(TITLE)  # what a window manager's close button does
            action = window.poll()
            for _ in range(30):
                window.show(image)
            say(event="action", action=action, quit=window.quit_requested,
                visible=cv2.getWindowProperty(TITLE, cv2.WND_PROP_VISIBLE))
        return
    with WindowSink(TITLE) as window:
        # let the backend map and paint the window before anyone looks at it
        for _ in range(30):
            window.show(image)
        say(event="shown")
        if mode == "destroy":
            cv2.destroyWindow(TITLE)
            say(event="action", action=window.poll())
            return
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            action = window.show(image)
            if action is not None:
                say(event="action", action=action, fullscreen=window.fullscreen,
                    paused=window.paused)
                if action == "quit":
                    return
        say(event="timeout")


def free_display():
    for n in range(97, 160):
        if not (os.path.exists("/tmp/.X%d-lock" % n) or os.path.exists("/tmp/.X11-unix/X%d" % n)):
            return ":%d" % n
    pytest.skip("no free X display number between :97 and :159")


@pytest.fixture(scope="module")
def xvfb():
    missing = [tool for tool in ("Xvfb", "xdotool", "import") if shutil.which(tool) is None]
    if missing:
        pytest.skip("needs %s (apt-get install xvfb xdotool imagemagick)" % ", ".join(missing))
    if gui_backend() is None:
        pytest.skip("this OpenCV has no window support (headless build)")
    display = free_display()
    proc = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):  # wait for the server to listen (or die)
            if proc.poll() is not None or x_display_reachable(display)[0]:
                break
            time.sleep(0.05)
        if not x_display_reachable(display)[0]:
            pytest.skip("Xvfb did not start on %s" % display)
        yield display
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def x_env(display):
    env = dict(os.environ, DISPLAY=display, PYTHONPATH=ROOT)
    env["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="hanja-xdg-")  # Qt wants one; no warning
    return env


class WindowChild(object):
    def __init__(self, display, mode):
        self.env = x_env(display)
        self.log = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", mode],
                                     stdout=subprocess.PIPE, stderr=self.log,
                                     universal_newlines=True, env=self.env, cwd=ROOT)

    def read(self, timeout=60):
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.log.seek(0)
            pytest.fail("window child said nothing (exit %s); its stderr:\n%s"
                        % (self.proc.poll(), self.log.read()[-3000:]))
        return json.loads(line)

    def xdotool(self, *args):
        return subprocess.run(("xdotool",) + args, env=self.env, stdout=subprocess.PIPE,
                              universal_newlines=True, timeout=30, check=True).stdout

    def press(self, key):
        window_id = self.xdotool("search", "--sync", "--name", "^%s$" % TITLE).split()[0]
        self.xdotool("windowfocus", "--sync", window_id)
        self.xdotool("key", key)

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        shutil.rmtree(self.env["XDG_RUNTIME_DIR"], ignore_errors=True)


@pytest.fixture
def child_factory(xvfb):
    children = []

    def start(mode):
        child = WindowChild(xvfb, mode)
        children.append(child)
        assert child.read() == {"event": "shown"}
        return child

    yield start
    for child in children:
        child.close()


def locate(screen, frame):
    """Top-left (x, y) where ``frame`` appears on ``screen`` pixel for pixel, or None."""
    if screen is None or screen.shape[0] < frame.shape[0] or screen.shape[1] < frame.shape[1]:
        return None
    scores = cv2.matchTemplate(screen, frame, cv2.TM_SQDIFF)
    _, _, (x, y), _ = cv2.minMaxLoc(scores)
    on_screen = screen[y:y + frame.shape[0], x:x + frame.shape[1]]
    return (x, y) if np.abs(on_screen.astype(int) - frame).mean() < 1.0 else None


def test_window_shows_annotated_frame(child_factory):
    child = child_factory("keys")
    frame, annotator = shown_frame()
    where = None
    for _ in range(20):  # the first screenshots may catch the window before it is painted
        subprocess.run(["import", "-window", "root", SCREENSHOT], env=child.env, timeout=60,
                       check=True)
        screen = cv2.imread(SCREENSHOT)
        where = locate(screen, frame)
        if where is not None:
            break
        time.sleep(0.25)
    assert where is not None, "the annotated frame is not on screen; see %s" % SCREENSHOT
    ox, oy = where
    colors = palette(len(CLASS_NAMES))
    atlas = GlyphAtlas(LABEL_H)
    templates = [atlas.glyph(name).astype(np.float32) / 255 for name in CLASS_NAMES]
    for x1, y1, x2, y2, c in BOXES:
        for x, y in ((x1, (y1 + y2) // 2), (x2 - 1, (y1 + y2) // 2), ((x1 + x2) // 2, y2 - 1)):
            assert tuple(screen[oy + y, ox + x]) == colors[c], "box %d edge not in its colour" % c
        tag = screen[oy + y1 - LABEL_H:oy + y1, ox + x1:ox + x1 + annotator.tag_width(c)]
        white = np.array((255, 255, 255), np.float32)
        bg = np.array(colors[c], np.float32)
        ink = (tag == 0).all(axis=2).any()
        fg = np.zeros(3, np.float32) if ink else white
        along = (tag.astype(np.float32) - bg) @ (fg - bg) / float((fg - bg) @ (fg - bg))
        alpha = np.clip(along, 0, 1)
        scores = [cv2.matchTemplate(alpha, t, cv2.TM_CCOEFF_NORMED).max() for t in templates]
        assert int(np.argmax(scores)) == c and scores[c] > 0.97, "tag of class %d on screen" % c
    child.press("q")
    assert child.read()["action"] == "quit"


# (key sent with xdotool, action show() must return first); "x" means nothing, so the
# "q" sent after it is the first action
KEYS = [("q", "quit"), ("Escape", "quit"), ("space", "pause"), ("s", "snapshot"),
        ("f", "fullscreen"), ("x", None)]


@pytest.mark.parametrize("key, action", KEYS)
def test_keys_become_actions(child_factory, key, action):
    child = child_factory("keys")
    child.press(key)
    if action is None:
        child.press("q")
        assert child.read()["action"] == "quit"
        return
    record = child.read()
    assert record["action"] == action
    if action == "quit":
        return
    assert record["paused"] is (action == "pause")
    assert record["fullscreen"] is (action == "fullscreen")
    child.press("q")
    assert child.read()["action"] == "quit"


def test_closed_window_means_quit(child_factory):
    child = child_factory("destroy")
    assert child.read() == {"event": "action", "action": "quit"}


def test_closed_kiosk_window_opens_again(child_factory):
    child = child_factory("kiosk-destroy")
    record = child.read()
    assert record["action"] is None and record["quit"] is False
    assert record["visible"] >= 1


@pytest.mark.parametrize("display, ok, needle", [
    ("xvfb", True, ""),
    (None, False, "$DISPLAY is not set"),
    ("free", False, "no X server answers at DISPLAY=:"),
    ("nonsense", False, "is not of the form :N or host:N"),
    ("127.0.0.1:0", False, "no X server answers at DISPLAY=127.0.0.1:0"),
])
def test_window_available(request, monkeypatch, display, ok, needle):
    if gui_backend() is None:
        pytest.skip("this OpenCV has no window support (headless build)")
    if display == "127.0.0.1:0" and x_display_reachable(display)[0]:
        pytest.skip("an X server listens on TCP 6000 here")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    if display is None:
        monkeypatch.delenv("DISPLAY", raising=False)
    else:
        if display == "xvfb":
            display = request.getfixturevalue("xvfb")
        elif display == "free":
            display = free_display()
        monkeypatch.setenv("DISPLAY", display)
    available, reason = window_available()
    assert available is ok and needle in reason


GTK_41 = """
  GUI: 
    GTK+:                        YES (ver 3.22.30)
      GThread :                  YES (ver 2.56.4)
      GtkGlExt:                  NO
    OpenGL support:              NO
    VTK support:                 NO

  Media I/O: 
"""
QT_46 = """
  GUI:                           QT5
    QT:                          YES (ver 5.15.8 )
      QT OpenGL support:         YES (Qt5::OpenGL 5.15.8)
    OpenGL support:              YES (/usr/lib/libOpenGL.so)
    VTK support:                 NO

  Media I/O:
"""
HEADLESS = """
  GUI:                           NONE

  Media I/O:
"""
OLD_HEADLESS = """
  GUI: 
    OpenGL support:              YES (fake)
    VTK support:                 NO

  Media I/O: 
"""
WIN32 = """
  GUI:                           WIN32UI
    Win32 UI:                    YES
    VTK support:                 NO
"""


@pytest.mark.parametrize("info, backend", [
    (GTK_41, "GTK+"), (QT_46, "QT"), (HEADLESS, None), (OLD_HEADLESS, None), (WIN32, "Win32 UI"),
    ("General configuration for OpenCV\n  Video I/O:\n", None), ("", None),
])
def test_gui_backend_from_build_information(info, backend):
    assert gui_backend(info) == backend


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child_main(sys.argv[2])
