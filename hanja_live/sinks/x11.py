"""The two things a kiosk window needs from X11 that OpenCV's HighGUI does not offer: the
screen size (to cover it even with no window manager to honour "fullscreen") and an
invisible mouse cursor over the window.

Through ctypes and libX11, which every X desktop (and JetPack's) has; without it, or off
X11, each call says it could not and the window works as before.
"""

import ctypes
import ctypes.util
import logging
import os
from typing import Any, List, Optional, Tuple

log = logging.getLogger(__name__)

_Window = ctypes.c_ulong


class _XColor(ctypes.Structure):
    _fields_ = [("pixel", ctypes.c_ulong), ("red", ctypes.c_ushort), ("green", ctypes.c_ushort),
                ("blue", ctypes.c_ushort), ("flags", ctypes.c_char), ("pad", ctypes.c_char)]


def _load_xlib():
    # type: () -> Optional[Any]
    name = ctypes.util.find_library("X11") or "libX11.so.6"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.XOpenDisplay.restype = ctypes.c_void_p
    lib.XOpenDisplay.argtypes = [ctypes.c_char_p]
    lib.XCloseDisplay.argtypes = [ctypes.c_void_p]
    lib.XDefaultScreen.argtypes = [ctypes.c_void_p]
    lib.XDisplayWidth.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.XDisplayHeight.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.XDefaultRootWindow.restype = _Window
    lib.XDefaultRootWindow.argtypes = [ctypes.c_void_p]
    lib.XQueryTree.argtypes = [ctypes.c_void_p, _Window, ctypes.POINTER(_Window),
                               ctypes.POINTER(_Window), ctypes.POINTER(ctypes.POINTER(_Window)),
                               ctypes.POINTER(ctypes.c_uint)]
    lib.XFetchName.argtypes = [ctypes.c_void_p, _Window, ctypes.POINTER(ctypes.c_char_p)]
    lib.XFree.argtypes = [ctypes.c_void_p]
    lib.XCreateBitmapFromData.restype = ctypes.c_ulong
    lib.XCreateBitmapFromData.argtypes = [ctypes.c_void_p, _Window, ctypes.c_char_p,
                                          ctypes.c_uint, ctypes.c_uint]
    lib.XCreatePixmapCursor.restype = ctypes.c_ulong
    lib.XCreatePixmapCursor.argtypes = [ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong,
                                        ctypes.POINTER(_XColor), ctypes.POINTER(_XColor),
                                        ctypes.c_uint, ctypes.c_uint]
    lib.XDefineCursor.argtypes = [ctypes.c_void_p, _Window, ctypes.c_ulong]
    lib.XFreePixmap.argtypes = [ctypes.c_void_p, ctypes.c_ulong]
    lib.XFlush.argtypes = [ctypes.c_void_p]
    return lib


class X11Display(object):
    """A connection to $DISPLAY; ``ok`` is False (and every call a no-op) without one."""

    def __init__(self):
        # Any: ctypes calls are untyped, and ``ok`` (a display is open) implies a library
        self._lib = _load_xlib() if os.environ.get("DISPLAY") else None  # type: Any
        self._display = self._lib.XOpenDisplay(None) if self._lib is not None else None
        self._blank = 0  # the invisible cursor, made once

    @property
    def ok(self):
        # type: () -> bool
        return bool(self._display)

    def screen_size(self):
        # type: () -> Optional[Tuple[int, int]]
        """(width, height) of the default screen, or None."""
        if not self.ok:
            return None
        screen = self._lib.XDefaultScreen(self._display)
        return (int(self._lib.XDisplayWidth(self._display, screen)),
                int(self._lib.XDisplayHeight(self._display, screen)))

    def windows_named(self, title):
        # type: (str) -> List[int]
        """Ids of the windows whose WM_NAME is ``title``, with all their subwindows."""
        if not self.ok:
            return []
        wanted = title.encode("utf-8")
        found = []  # type: List[int]
        stack = [int(self._lib.XDefaultRootWindow(self._display))]
        while stack:
            window = stack.pop()
            name = ctypes.c_char_p()
            if self._lib.XFetchName(self._display, window, ctypes.byref(name)) and name.value:
                matched = name.value == wanted
                self._lib.XFree(name)
                if matched:
                    found.extend(self._tree(window))
                    continue
            stack.extend(self._children(window))
        return found

    def _children(self, window):
        # type: (int) -> List[int]
        root, parent = _Window(), _Window()
        children = ctypes.POINTER(_Window)()
        count = ctypes.c_uint()
        if not self._lib.XQueryTree(self._display, window, ctypes.byref(root), ctypes.byref(parent),
                                    ctypes.byref(children), ctypes.byref(count)):
            return []
        ids = [int(children[i]) for i in range(count.value)]
        if children:
            self._lib.XFree(children)
        return ids

    def _tree(self, window):
        # type: (int) -> List[int]
        ids = [window]
        for child in self._children(window):
            ids.extend(self._tree(child))
        return ids

    def hide_cursor(self, title):
        # type: (str) -> int
        """Give the windows titled ``title`` an invisible cursor; returns how many."""
        windows = self.windows_named(title)
        if not windows:
            return 0
        if not self._blank:
            root = self._lib.XDefaultRootWindow(self._display)
            bitmap = self._lib.XCreateBitmapFromData(self._display, root, b"\0" * 8, 8, 8)
            black = _XColor()
            self._blank = self._lib.XCreatePixmapCursor(self._display, bitmap, bitmap,
                                                        ctypes.byref(black), ctypes.byref(black),
                                                        0, 0)
            self._lib.XFreePixmap(self._display, bitmap)
        for window in windows:
            self._lib.XDefineCursor(self._display, window, self._blank)
        self._lib.XFlush(self._display)
        return len(windows)

    def close(self):
        # type: () -> None
        if self.ok:
            self._lib.XCloseDisplay(self._display)
        self._display = None
