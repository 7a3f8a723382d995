"""Kiosk mode: the live view fullscreen, unattended, for as long as the power is on.

A supervisor runs the live pipeline (app.run_live) in one window that stays open across
restarts. When the pipeline stops for any reason but the quit sequence or a stop signal (an
internal error, a source that ended or failed, a model that failed to load again) it shows
"restarting" and starts it again after a pause that doubles from 1 s up to 60 s (back to
1 s after a run that lasted HEALTHY_S). Only on the very first start do user errors (a
missing model, a camera that is not there) end the program with their one line: systemd's
Restart= (see service.py) then starts it again.

Kiosk settings on top of the config: video files loop, and a recording is written in
segments (KIOSK_SEGMENT_S unless output.record_segment_s says otherwise) numbered on across
restarts, with the detections file appended to.
"""

import logging
import time
from typing import Any, Callable, List, Optional

import cv2
import numpy as np

from .errors import HanjaLiveError
from .sinks import WindowSink, window_available
from .stop_signals import StopSignals, Stopped

log = logging.getLogger("hanja_live")

FIRST_DELAY_S = 1.0
MAX_DELAY_S = 60.0
HEALTHY_S = 120.0
KIOSK_SEGMENT_S = 60.0
SCREEN_WH = (1280, 720)  # the restart notice; the window scales it to the screen


def kiosk_settings(source, output):
    """(source, output) config sections as a kiosk runs them (see the module text)."""
    source = source._replace(loop=True)
    if output.record and not output.record_segment_s:
        output = output._replace(record_segment_s=KIOSK_SEGMENT_S)
    return source, output


def ascii_line(text, limit=90):
    # type: (str, int) -> str
    """``text`` as one line OpenCV's Hershey fonts can draw."""
    text = " ".join(str(text).replace("\u2014", "-").split())
    text = text.encode("ascii", "replace").decode("ascii")
    return text if len(text) <= limit else text[:limit - 3] + "..."


def restart_notice(seconds, reason, image=None):
    # type: (float, str, Optional[np.ndarray]) -> np.ndarray
    """The (720, 1280, 3) frame shown while the pipeline is down."""
    if image is None:
        image = np.empty((SCREEN_WH[1], SCREEN_WH[0], 3), np.uint8)
    image[:] = (40, 20, 20)
    lines = [("restarting in %d s" % max(0, int(round(seconds))), 1.6, 3),
             (ascii_line(reason), 0.8, 2)]
    y = SCREEN_WH[1] // 2 - 40
    for text, scale, thickness in lines:
        (w, h), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        cv2.putText(image, text, ((SCREEN_WH[0] - w) // 2, y), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (240, 240, 240), thickness, cv2.LINE_AA)
        y += h + 40
    return image


class Supervisor(object):
    """Runs ``run(model, source, display, output, window=, resume=, on_running=)`` (the
    signature of app.run_live) again after each failure; see the module text.

    window: the WindowSink to show the restart notice in (None: just wait).
    stop:   the StopSignals in force between runs: a stop signal during a pause raises its
            Stopped (None: no check)
    """

    def __init__(self, run, window=None, first_delay_s=FIRST_DELAY_S, max_delay_s=MAX_DELAY_S,
                 healthy_s=HEALTHY_S, stop=None):
        # type: (Callable[..., int], Optional[Any], float, float, float, Optional[StopSignals]) -> None
        self._run = run
        self._window = window
        self._stop = stop
        self._first_delay_s = first_delay_s
        self._max_delay_s = max_delay_s
        self._healthy_s = healthy_s
        self.restarts = 0
        self.reasons = []  # type: List[str]  # why each restart happened
        self.delays = []  # type: List[float]  # the pause before each

    def run(self, model, source, display, output):
        # type: (Any, Any, Any, Any) -> int
        """The exit code: that of a run ended by the quit sequence or a signal."""
        delay = self._first_delay_s
        while True:
            if self._stop is not None:
                self._stop.check()
            running = []  # type: List[bool]
            started = time.monotonic()
            try:
                code = self._run(model, source, display, output, window=self._window,
                                 resume=self.restarts > 0,
                                 on_running=lambda: running.append(True))
            except HanjaLiveError as exc:
                if not self.restarts and not running:
                    raise  # the first start: the user must fix something
                reason = str(exc)
                log.error("kiosk: %s", reason)
            # an internal error must not end the kiosk: log it whole, start again
            except Exception as exc:
                log.exception("kiosk: internal error")
                reason = "internal error: %s: %s" % (type(exc).__name__, exc)
            else:
                quit_asked = self._window is not None and self._window.quit_requested
                if code != 0 or quit_asked:
                    return code
                reason = "the source ended"
            if time.monotonic() - started >= self._healthy_s:
                delay = self._first_delay_s
            self.restarts += 1
            self.reasons.append(reason)
            self.delays.append(delay)
            log.warning("kiosk: restart %d in %.0f s (%s)", self.restarts, delay,
                        ascii_line(reason, 200))
            if self._wait(delay, reason):
                return 0
            delay = min(delay * 2.0, self._max_delay_s)

    def _wait(self, seconds, reason):
        # type: (float, str) -> bool
        """Pause, showing the notice; True when the quit sequence was typed meanwhile."""
        end = time.monotonic() + seconds
        image = None
        while True:
            if self._stop is not None:
                self._stop.check()
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self._window is not None:
                image = restart_notice(left, reason, image)
                if self._window.show(image) == "quit":
                    return True
            time.sleep(min(0.05, max(0.0, left)))


def run_kiosk(model, source, display, output, run=None):
    # type: (Any, Any, Any, Any, Optional[Callable[..., int]]) -> int
    """Kiosk mode from the four config sections; returns the process exit code."""
    if run is None:
        from .app import run_live
        run = run_live
    ok, reason = window_available()
    if not ok:
        raise HanjaLiveError("--kiosk needs a screen, but %s; run it on the device's display "
                             "(DISPLAY=:0) or drop --kiosk" % reason)
    source, output = kiosk_settings(source, output)
    with StopSignals() as stop:
        try:
            with WindowSink(display.title, kiosk=True, quit_keys=display.kiosk_quit_keys) as window:
                return Supervisor(run, window, stop=stop).run(model, source, display, output)
        except Stopped as exc:
            log.info("kiosk: stopped by %s", exc)
            return 128 + exc.signum
