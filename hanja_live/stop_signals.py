"""The signals that end a run: SIGINT (Ctrl-C), SIGTERM (systemd, kill) and SIGHUP (the
terminal went away).

The first one raises KeyboardInterrupt in the main thread, so the ``with`` blocks around the
outputs close them and the recording is finalised. After that, and once ``hold()`` says the
outputs are being closed, further signals are only logged: a second Ctrl-C or an impatient
stop must not cut the finalising short and leave an unplayable file.
"""

import logging
import signal
from typing import Any, Dict, Optional

log = logging.getLogger("hanja_live")

SIGNAL_NAMES = ("SIGINT", "SIGTERM", "SIGHUP")


class StopSignals(object):
    """Context manager installing the handlers (main thread only; elsewhere it does nothing).

    received:  the number of the first signal, or None
    exit_code: 128 + that number (the shell's convention), or None
    """

    def __init__(self):
        self.received = None  # type: Optional[int]
        self._holding = False
        self._previous = {}  # type: Dict[int, Any]

    @property
    def name(self):
        # type: () -> Optional[str]
        return signal.Signals(self.received).name if self.received is not None else None

    @property
    def exit_code(self):
        # type: () -> Optional[int]
        return 128 + self.received if self.received is not None else None

    def hold(self):
        # type: () -> None
        """From now on signals are logged, not raised: the outputs are being finished."""
        self._holding = True

    def _handle(self, signum, frame):
        if self.received is None and not self._holding:
            self.received = signum
            raise KeyboardInterrupt(signal.Signals(signum).name)
        if self.received is None:
            self.received = signum
        log.warning("%s: still finishing the outputs, a moment (kill -9 now would lose the "
                    "unfinished recording segment)", signal.Signals(signum).name)

    def __enter__(self):
        for name in SIGNAL_NAMES:
            signum = getattr(signal, name, None)
            if signum is None:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                break
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            # None: a handler not set from Python; the default is the closest there is
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
        return False
