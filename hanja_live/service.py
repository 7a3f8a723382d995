"""A systemd user unit that starts the kiosk with the desktop session and restarts it when it
fails: ``hanja-live install-service [RUN OPTIONS]`` writes it.

    systemctl --user daemon-reload && systemctl --user enable --now hanja-live

It runs this Python (the venv's) as ``python -m hanja_live run --kiosk RUN OPTIONS`` in the
folder it was installed from, so relative paths in the options keep their meaning. Before the
display is up the app exits with "--kiosk needs a screen" and systemd tries again every
RESTART_SEC seconds, without limit.
"""

import os
import sys
from typing import List, Optional, Sequence

from .errors import SinkError

UNIT_NAME = "hanja-live.service"
RESTART_SEC = 5


def systemd_quote(arg):
    # type: (str) -> str
    """One ExecStart= word: specifiers (%) and variables ($) kept literal, quoted when needed."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if text and not any(c in text for c in " \t\"'\\;"):
        return text
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def unit_text(run_args, python=None, workdir=None, display=":0"):
    # type: (Sequence[str], Optional[str], Optional[str], Optional[str]) -> str
    """The unit file's text for ``python -m hanja_live run RUN_ARGS``."""
    python = os.path.abspath(python or sys.executable)
    workdir = os.path.abspath(workdir or os.getcwd())
    command = " ".join(systemd_quote(a) for a in [python, "-m", "hanja_live", "run"] + list(run_args))
    environment = ["Environment=PYTHONUNBUFFERED=1"]
    if display:
        environment.insert(0, "Environment=%s" % systemd_quote("DISPLAY=%s" % display))
    lines = [
        "# Written by hanja-live install-service; write it again rather than editing it.",
        "[Unit]",
        "Description=hanja_live kiosk: live hanja numeral recognition",
        "After=graphical-session.target",
        # never stop trying: a kiosk waits for its display and its camera as long as it takes
        "StartLimitIntervalSec=0",
        "",
        "[Service]",
        "Type=simple",
        "WorkingDirectory=%s" % workdir.replace("%", "%%"),
    ] + environment + [
        "ExecStart=%s" % command,
        "Restart=on-failure",
        "RestartSec=%d" % RESTART_SEC,
        # 128 + SIGINT / SIGTERM: stopped on purpose, outputs finished
        "SuccessExitStatus=130 143",
        "TimeoutStopSec=30",
        "",
        "[Install]",
        "WantedBy=default.target",
        "",
    ]
    return "\n".join(lines)


def default_unit_path():
    # type: () -> str
    config_home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                                    ".config")
    return os.path.join(config_home, "systemd", "user", UNIT_NAME)


def kiosk_args(run_args):
    # type: (Sequence[str]) -> List[str]
    """The run options with --kiosk added, unless they ask for --kiosk or --headless already."""
    args = list(run_args)
    if "--kiosk" not in args and "--headless" not in args:
        args.insert(0, "--kiosk")
    return args


def install_service(run_args, path=None, replace=False, display=":0", python=None, workdir=None):
    # type: (Sequence[str], Optional[str], bool, Optional[str], Optional[str], Optional[str]) -> str
    """Write the unit for ``run_args`` to ``path`` (default: the user unit folder); returns
    the path. An existing file is kept unless ``replace``."""
    path = os.path.abspath(os.path.expanduser(path or default_unit_path()))
    if os.path.exists(path) and not replace:
        raise SinkError("%s already exists; pass --replace to write it again" % path)
    text = unit_text(run_args, python=python, workdir=workdir, display=display)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # the options may hold a stream password: readable by the owner only
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    except OSError as exc:
        raise SinkError("cannot write the unit file %s (%s); pass --unit-file with a writable "
                        "path" % (path, exc.strerror or exc))
    return path
