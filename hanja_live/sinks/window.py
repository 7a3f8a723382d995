"""An OpenCV window that shows annotated frames and turns key presses into actions.

    q / Esc   "quit"        space   "pause" (pressed again: go on)
    s         "snapshot"    f       "fullscreen" (toggled here; the caller may ignore it)

Closing the window also gives "quit". In kiosk mode only the quit sequence does anything.
"""

import errno
import logging
import os
import socket
import sys
import time
from typing import Optional

import cv2

from ..closing import ClosesOnExit
from ..config import valid_quit_keys
from ..errors import ConfigError, SinkError
from .x11 import X11Display

log = logging.getLogger(__name__)

KEY_ACTIONS = {ord("q"): "quit", ord("Q"): "quit", 27: "quit", ord(" "): "pause",
               ord("s"): "snapshot", ord("S"): "snapshot", ord("f"): "fullscreen",
               ord("F"): "fullscreen"}
# kiosk: the quit sequence must be typed within this many seconds
QUIT_SEQUENCE_S = 5.0
DEFAULT_QUIT_KEYS = "hanja"
CURSOR_TRIES = 100
# Build-information entries under "GUI:" that are features, not window backends.
_NOT_BACKENDS = ("opengl", "vtk", "gthread", "gtkglext", "qt opengl")


def gui_backend(build_info=None):
    """Name of this OpenCV's window backend ("GTK+", "QT", "Win32 UI", ...) or None.

    Read from cv2.getBuildInformation(): there is no API for it, and trying namedWindow
    instead can end the process (GTK calls exit() when it finds no display).
    """
    lines = (build_info if build_info is not None else cv2.getBuildInformation()).splitlines()
    for i, line in enumerate(lines):
        if not line.strip().startswith("GUI:"):
            continue
        indent = len(line) - len(line.lstrip())
        head = line.split(":", 1)[1].strip()
        if head.upper() == "NONE":
            return None
        for sub in lines[i + 1:]:
            if not sub.strip() or len(sub) - len(sub.lstrip()) <= indent:
                break
            key, _, value = sub.strip().partition(":")
            key = key.strip()
            is_feature = key.lower().startswith(_NOT_BACKENDS)
            if value.strip().upper().startswith("YES") and not is_feature:
                return key
        return head or None
    return None


def _connect(family, address, timeout=1.0):
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(address)
    finally:
        sock.close()


def x_display_reachable(display):
    """(True, "") when an X server answers at ``display`` (":0", "host:10.0"), else (False, why)."""
    host, sep, rest = display.rpartition(":")
    number = rest.split(".")[0]
    if not sep or not number.isdigit():
        return False, "DISPLAY=%s is not of the form :N or host:N" % display
    try:
        if host in ("", "unix") or host.startswith("/"):
            path = "/tmp/.X11-unix/X" + number
            try:
                _connect(socket.AF_UNIX, path)
            except (IOError, OSError):
                if not sys.platform.startswith("linux"):
                    raise
                # Linux X servers also listen on the abstract socket of the same name
                _connect(socket.AF_UNIX, "\0" + path)
        else:
            _connect(socket.AF_INET, (host, 6000 + int(number)))
    except (IOError, OSError) as exc:
        reason = exc.strerror or errno.errorcode.get(exc.errno or 0) or str(exc) or "timed out"
        return False, "no X server answers at DISPLAY=%s (%s)" % (display, reason)
    return True, ""


def window_available():
    """(True, "") when a window can be opened, else (False, reason) — without opening one."""
    backend = gui_backend()
    if backend is None:
        return False, "this OpenCV has no window support (a headless build)"
    if sys.platform.startswith("linux"):
        display = os.environ.get("DISPLAY", "")
        if display:
            return x_display_reachable(display)
        wayland = os.environ.get("WAYLAND_DISPLAY", "")
        runtime = os.environ.get("XDG_RUNTIME_DIR", "")
        if wayland and os.path.exists(os.path.join(runtime, wayland)):
            return True, ""
        return False, "no display ($DISPLAY is not set)"
    return True, ""


class WindowSink(ClosesOnExit):
    """Context manager around one OpenCV window titled ``title``.

    kiosk: the window covers the screen, the mouse cursor is invisible over it, a window
    closed by someone opens again, and no key does anything except ``quit_keys``, a sequence
    typed within QUIT_SEQUENCE_S seconds (case ignored), which gives "quit". A sequence and
    not a chord such as Ctrl+Q: OpenCV's Qt backend reports no modifier keys.
    ``quit_requested`` tells afterwards whether the user asked to quit.
    """

    def __init__(self, title, kiosk=False, quit_keys=DEFAULT_QUIT_KEYS):
        self.title = str(title)
        self.kiosk = bool(kiosk)
        self.quit_keys = check_quit_keys(quit_keys) if kiosk else ""
        self.fullscreen = False
        self.paused = False
        self.quit_requested = False
        self._sized = False
        self._seen_visible = False
        self._typed = 0  # keys of quit_keys typed so far
        self._typed_at = 0.0
        self._x11 = None  # type: Optional[X11Display]
        self._cursor_tries = 0
        self._wait_key = getattr(cv2, "waitKeyEx", cv2.waitKey)  # Ex: keys past 0xFF intact
        self._create()

    def _create(self):
        flags = cv2.WINDOW_NORMAL | getattr(cv2, "WINDOW_GUI_NORMAL", 0)  # Qt: no toolbar
        try:
            cv2.namedWindow(self.title, flags)
        except cv2.error as exc:
            raise SinkError("cannot open a window (%s); run without a window (--headless)"
                            % str(exc).strip().splitlines()[-1])
        if self.kiosk:
            self.set_fullscreen(True)
            self._cover_screen()
            self._cursor_tries = 0

    def _cover_screen(self):
        """Place the window over the whole screen: without a window manager (a bare X
        session, common on kiosks) "fullscreen" alone leaves it small in a corner."""
        if self._x11 is None:
            self._x11 = X11Display()
        size = self._x11.screen_size()
        if size is None:
            return
        cv2.moveWindow(self.title, 0, 0)
        cv2.resizeWindow(self.title, size[0], size[1])

    def _hide_cursor(self):
        # the window appears on screen some frames after it is created
        if self._cursor_tries >= CURSOR_TRIES or self._x11 is None:
            return
        self._cursor_tries += 1
        if self._x11.hide_cursor(self.title):
            self._cursor_tries = CURSOR_TRIES
        elif self._cursor_tries == CURSOR_TRIES:
            log.warning("could not hide the mouse cursor (%s)", "no X11 window named %r found"
                        % self.title if self._x11.ok else "no X11 display")

    def set_fullscreen(self, on):
        # type: (bool) -> None
        mode = cv2.WINDOW_FULLSCREEN if on else cv2.WINDOW_NORMAL
        cv2.setWindowProperty(self.title, cv2.WND_PROP_FULLSCREEN, mode)
        self.fullscreen = bool(on)

    def show(self, image):
        """Show ``image`` and handle events; returns an action string or None."""
        if not self._sized:
            # WINDOW_NORMAL windows start at a backend default size; start at the frame's
            self._sized = True
            if not self.fullscreen:
                cv2.resizeWindow(self.title, int(image.shape[1]), int(image.shape[0]))
        cv2.imshow(self.title, image)
        if self.kiosk:
            self._hide_cursor()
        return self.poll()

    def poll(self):
        """Handle window events for 1 ms without drawing; returns an action string or None."""
        key = self._wait_key(1)
        if self.kiosk:
            action = self._kiosk_key(key) if key != -1 else None
        else:
            action = KEY_ACTIONS.get(key & 0xFF) if key != -1 else None
        if action == "fullscreen":
            self.set_fullscreen(not self.fullscreen)
        elif action == "pause":
            self.paused = not self.paused
        if action is None and self._closed_by_user():
            if self.kiosk:
                log.warning("the kiosk window was closed; opening it again")
                self._seen_visible = False
                self._create()
            else:
                action = "quit"
        if action == "quit":
            self.quit_requested = True
        return action

    def _kiosk_key(self, key):
        # type: (int) -> Optional[str]
        """Follow the quit sequence; every key is otherwise ignored."""
        code = key & 0xFFFF  # GTK puts modifier flags above bit 16
        if code > 0xFF:
            return None  # Shift, Ctrl, function keys: neither part of it nor breaking it
        char = chr(code).lower()
        now = time.monotonic()
        if self._typed and now - self._typed_at > QUIT_SEQUENCE_S:
            self._typed = 0
        if char == self.quit_keys[self._typed]:
            if self._typed == 0:
                self._typed_at = now
            self._typed += 1
        else:
            self._typed = 1 if char == self.quit_keys[0] else 0
            self._typed_at = now
        if self._typed == len(self.quit_keys):
            self._typed = 0
            return "quit"
        return None

    def _closed_by_user(self):
        prop = getattr(cv2, "WND_PROP_VISIBLE", None)
        if prop is None:  # this OpenCV cannot tell; q / Esc still quit
            return False
        try:
            visible = cv2.getWindowProperty(self.title, prop)
        except cv2.error:  # Qt: no window left at all
            return self._seen_visible
        if visible >= 1:
            self._seen_visible = True
            return False
        # backends without this property answer -1 from the start: never seen visible
        return self._seen_visible

    def close(self):
        try:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        except cv2.error:
            pass  # already closed by the user
        if self._x11 is not None:
            self._x11.close()
            self._x11 = None


def check_quit_keys(keys):
    # type: (object) -> str
    """The kiosk quit sequence, lower case; ConfigError unless 2 or more printable ASCII keys."""
    if not valid_quit_keys(keys):
        raise ConfigError("display.kiosk_quit_keys must be 2 or more printable ASCII keys "
                          "without spaces, typed in a row, e.g. %s; got %r"
                          % (DEFAULT_QUIT_KEYS, keys))
    return str(keys).lower()
