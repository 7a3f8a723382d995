"""The signals that end a run: SIGINT (Ctrl-C), SIGTERM (systemd, kill) and SIGHUP (the
terminal went away).

The handlers only take note; they never raise. A handler that raised KeyboardInterrupt
let CPython go on to the handlers of signals that came with it while that exception was
still set, and the run ended in a SystemError traceback instead of a finished recording
(SIGTERM, SIGTERM and SIGINT at once: about 1 run in 30 under load). So the code that waits
asks: the pipeline polls ``requested()`` between frames, and the steps before it call
``check()``, which raises Stopped from ordinary code. Signals after the first, and any once
``hold()`` says the outputs are being closed, get one line on stderr: a second Ctrl-C or an
impatient stop must not cut the finalising short and leave an unplayable file.
"""

import os
import signal
from typing import Any, Dict, List, Optional

SIGNAL_NAMES = ("SIGINT", "SIGTERM", "SIGHUP")


def signal_name(signum):
    # type: (int) -> str
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "signal %d" % signum


class Stopped(KeyboardInterrupt):
    """A stop signal came before the pipeline ran (raised by StopSignals.check()).

    signum: the signal's number
    """

    def __init__(self, signum):
        # type: (int) -> None
        KeyboardInterrupt.__init__(self, signal_name(signum))
        self.signum = signum


class StopSignals(object):
    """Context manager installing the handlers (main thread only; elsewhere it does nothing).

    received:  the number of the first signal, or None
    late:      the numbers of the signals after it, in order
    exit_code: 128 + the first one's number (the shell's convention), or None
    """

    def __init__(self):
        self.received = None  # type: Optional[int]
        self.late = []  # type: List[int]
        self._holding = False
        self._previous = {}  # type: Dict[int, Any]

    @property
    def name(self):
        # type: () -> Optional[str]
        return signal_name(self.received) if self.received is not None else None

    @property
    def exit_code(self):
        # type: () -> Optional[int]
        return 128 + self.received if self.received is not None else None

    def requested(self):
        # type: () -> bool
        """Whether a stop signal came (for loops that poll: Pipeline's stop_requested)."""
        return self.received is not None

    def check(self):
        # type: () -> None
        """Raise Stopped if a stop signal came: call it between slow steps."""
        if self.received is not None:
            raise Stopped(self.received)

    def hold(self):
        # type: () -> None
        """From now on the outputs are being finished: a signal only gets its line."""
        self._holding = True

    def _handle(self, signum, frame):
        # no locks and no logging here: the handler runs between two bytecodes of the main
        # thread, which may hold the very lock (or be inside the stream write) it would need
        first = self.received is None
        if first:
            self.received = signum
        else:
            self.late.append(signum)
        if not first or self._holding:
            line = ("hanja_live: %s: still finishing the outputs, a moment (kill -9 now would "
                    "lose the unfinished recording segment)\n" % signal_name(signum))
            try:
                os.write(2, line.encode("ascii"))
            except OSError:  # no stderr (a service whose journal went away): nothing to tell
                pass

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
