"""``python -m hanja_live ARGS`` as a real process that the test watches and signals."""

import os
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATIENCE_S = 120.0  # waiting for what should take seconds; reaching it fails the test


def count_lines(path):
    try:
        with open(str(path), "rb") as f:
            return f.read().count(b"\n")
    except OSError:
        return 0


def _stop_signals_as_from_a_terminal():
    # the app keeps a stop signal ignored that it inherited ignored (nohup, a script's "cmd &"),
    # so a test run started that way would send signals nobody takes
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class LiveProcess(object):
    """The app in a child process; its stderr goes to a file (``log_path``, else a temporary
    one) read with ``log()``."""

    def __init__(self, *args, env=None, cwd=None, log_path=None):
        full_env = dict(os.environ)
        full_env.pop("DISPLAY", None)
        full_env["PYTHONUNBUFFERED"] = "1"
        if env:
            full_env.update(env)
        # a named file stays to be read when a test failed
        self._err = open(str(log_path), "w+") if log_path else tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen([sys.executable, "-m", "hanja_live"] + [str(a) for a in args],
                                     stdout=subprocess.DEVNULL, stderr=self._err,
                                     universal_newlines=True, env=full_env, cwd=cwd or ROOT,
                                     preexec_fn=_stop_signals_as_from_a_terminal)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        self._err.seek(0)
        return self._err.read()

    def wait_for(self, predicate, what, patience_s=PATIENCE_S):
        """Poll ``predicate()`` until true; AssertionError (with the log) if the process ends
        first or patience runs out."""
        deadline = time.monotonic() + patience_s
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                raise AssertionError("the app ended (exit %s) before %s:\n%s"
                                     % (self.proc.returncode, what, self.log()[-4000:]))
            time.sleep(0.05)
        raise AssertionError("%s did not happen within %.0f s:\n%s"
                             % (what, patience_s, self.log()[-4000:]))

    def wait_lines(self, path, count):
        self.wait_for(lambda: count_lines(path) >= count, "%d lines in %s" % (count, path))

    def send(self, signum):
        os.kill(self.proc.pid, signum)

    def finish(self, timeout=PATIENCE_S):
        """Wait for the exit; returns the exit code (killed if it does not come)."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("the app did not exit within %.0f s:\n%s"
                                 % (timeout, self.log()[-4000:]))

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()
        self._err.close()
