"""An OpenCV window that shows annotated frames and turns key presses into actions.

    q / Esc   "quit"        space   "pause" (pressed again: go on)
    s         "snapshot"    f       "fullscreen" (toggled here; the caller may ignore it)

Closing the window also gives "quit".
"""

import errno
import os
import socket
import sys

import cv2

from ..closing import ClosesOnExit
from ..errors import SinkError

KEY_ACTIONS = {ord("q"): "quit", ord("Q"): "quit", 27: "quit", ord(" "): "pause",
               ord("s"): "snapshot", ord("S"): "snapshot", ord("f"): "fullscreen",
               ord("F"): "fullscreen"}
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
    """Context manager around one OpenCV window titled ``title``; ``kiosk``: fullscreen."""

    def __init__(self, title, kiosk=False):
        self.title = str(title)
        self.fullscreen = False
        self.paused = False
        self._sized = False
        self._seen_visible = False
        flags = cv2.WINDOW_NORMAL | getattr(cv2, "WINDOW_GUI_NORMAL", 0)  # Qt: no toolbar
        try:
            cv2.namedWindow(self.title, flags)
        except cv2.error as exc:
            raise SinkError("cannot open a window (%s); run without a window (--headless)"
                            % str(exc).strip().splitlines()[-1])
        if kiosk:
            self.set_fullscreen(True)


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
        return self.poll()

    def poll(self):
        """Handle window events for 1 ms without drawing; returns an action string or None."""
        key = cv2.waitKey(1)
        action = KEY_ACTIONS.get(key & 0xFF) if key != -1 else None
        if action == "fullscreen":
            self.set_fullscreen(not self.fullscreen)
        elif action == "pause":
            self.paused = not self.paused
        if action is None and self._closed_by_user():
            action = "quit"
        return action

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
