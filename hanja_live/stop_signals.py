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

import itertools
import os
import signal
from typing import Any, Dict, List, Optional, Tuple

SIGNAL_NAMES = ("SIGINT", "SIGTERM", "SIGHUP")


def signal_name(signum):
    # type: (int) -> str
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "signal %d" % signum


class Stopped(KeyboardInterrupt):
    """A stop signal came while no loop was polling for it (raised by StopSignals.check():
    while the app starts, while the kiosk pauses between runs).

    signum: the signal's number
    """

    def __init__(self, signum):
        # type: (int) -> None
        KeyboardInterrupt.__init__(self, signal_name(signum))
        self.signum = signum


class StopSignals(object):
    """Context manager installing the handlers (main thread only; elsewhere it does nothing).
    Nested in another (the kiosk's around each run of the app), it starts with what the outer
    one received and hands what it received back on the way out, whatever ends the inner run.

    received:  the number of the first signal, or None
    late:      the numbers of the signals after it, in order
    exit_code: 128 + the first one's number (the shell's convention), or None
    """

    def __init__(self):
        self._seen = []  # type: List[Tuple[int, int]]  # (arrival, signal number)
        self._arrivals = itertools.count()
        self._holding = False
        self._previous = {}  # type: Dict[int, Any]
        self._outer = None  # type: Optional[StopSignals]

    @property
    def received(self):
        # type: () -> Optional[int]
        return min(self._seen)[1] if self._seen else None

    @property
    def late(self):
        # type: () -> List[int]
        return [signum for _, signum in sorted(self._seen)[1:]]

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
        return bool(self._seen)  # polled every frame: no sorting

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
        if self._note(signum) > 0 or self._holding:
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
            # ignored when we started (nohup: SIGHUP; a script's "cmd &": SIGINT): stays so
            if signal.getsignal(signum) == signal.SIG_IGN:
                continue
            try:
                self._previous[signum] = signal.signal(signum, self._handle)
            except ValueError:  # not the main thread: signals stay as they are
                break
            outer = getattr(self._previous[signum], "__self__", None)
            if isinstance(outer, StopSignals):
                self._outer = outer
        if self._outer is not None and self._outer.received is not None:
            self._note(self._outer.received)  # it came just before these handlers
        return self

    def _note(self, signum):
        # type: (int) -> int
        """Record ``signum``; returns its place in the order of arrival (0: the first)."""
        arrival = next(self._arrivals)  # one step: a handler interrupting this one gets the next
        self._seen.append((arrival, signum))
        return arrival

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            # None: a handler not set from Python; the default is the closest there is
            signal.signal(signum, previous if previous is not None else signal.SIG_DFL)
        self._previous = {}
        outer, self._outer = self._outer, None
        if outer is not None and outer.received is None and self.received is not None:
            outer._note(self.received)  # e.g. a kiosk run that failed after the signal
        return False
