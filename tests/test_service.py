"""``hanja-live install-service``: the systemd user unit it writes, checked by systemd itself."""

import os
import shutil
import stat
import subprocess

import pytest

from hanja_live.service import kiosk_args, systemd_quote, unit_text


def analyze(unit_path, tmp_path):
    """systemd-analyze verify --user on the unit: (exit code, its output)."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.skip("systemd-analyze is missing (apt-get install systemd)")
    runtime = tmp_path / "xdg-runtime"
    runtime.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, XDG_RUNTIME_DIR=str(runtime), SYSTEMD_LOG_COLOR="0")
    proc = subprocess.run([tool, "verify", "--user", str(unit_path)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, env=env, timeout=60)
    return proc.returncode, proc.stdout


@pytest.mark.parametrize("arg, quoted", [
    ("--kiosk", "--kiosk"),
    ("/opt/hanja live/model.onnx", '"/opt/hanja live/model.onnx"'),
    ("rtsp://u:p%40ss@cam/s", "rtsp://u:p%%40ss@cam/s"),
    ("$HOME/rec.mp4", "$$HOME/rec.mp4"),
    ('say "hi"', '"say \\"hi\\""'),
    ("a\\b", '"a\\\\b"'),
    ("", '""'),
])
def test_systemd_quote(arg, quoted):
    assert systemd_quote(arg) == quoted


@pytest.mark.parametrize("given, expected", [
    ([], ["--kiosk"]),
    (["--csi", "0"], ["--kiosk", "--csi", "0"]),
    (["--kiosk", "--csi", "0"], ["--kiosk", "--csi", "0"]),
    (["--headless", "--record", "r.mp4"], ["--headless", "--record", "r.mp4"]),
])
def test_kiosk_args(given, expected):
    assert kiosk_args(given) == expected


def test_unit_text_runs_this_python_in_this_folder(tmp_path):
    text = unit_text(["--kiosk", "--source", "my clip.mp4"], python="/venv/bin/python",
                     workdir=str(tmp_path), display=":1")
    lines = text.splitlines()
    assert 'ExecStart=/venv/bin/python -m hanja_live run --kiosk --source "my clip.mp4"' in lines
    assert "WorkingDirectory=%s" % tmp_path in lines
    assert "Environment=DISPLAY=:1" in lines
    assert "Restart=on-failure" in lines and "WantedBy=default.target" in lines
    assert "SuccessExitStatus=130 143" in lines


def test_install_service_writes_a_unit_systemd_accepts(tmp_path, run_cli):
    unit = tmp_path / "units" / "hanja-live.service"
    proc = run_cli("install-service", "--unit-file", unit, "--source",
                   "rtsp://admin:hunter2@10.0.0.5/live", "--record", "out/kiosk.mp4",
                   "--record-segment", "30", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert str(unit) in proc.stdout and "systemctl --user enable --now hanja-live" in proc.stdout
    text = unit.read_text()
    assert ("-m hanja_live run --kiosk --source rtsp://admin:hunter2@10.0.0.5/live --record "
            "out/kiosk.mp4 --record-segment 30") in text
    assert "WorkingDirectory=%s" % tmp_path in text
    # the password is in the command line: the file is the owner's alone
    assert stat.S_IMODE(os.stat(str(unit)).st_mode) == 0o600
    code, said = analyze(unit, tmp_path)
    assert code == 0, said
    # a second install keeps the first unless asked
    proc = run_cli("install-service", "--unit-file", unit, "--csi", "0", cwd=str(tmp_path))
    assert proc.returncode == 2 and "already exists; pass --replace" in proc.stderr
    proc = run_cli("install-service", "--unit-file", unit, "--replace", "--csi", "0",
                   cwd=str(tmp_path))
    assert proc.returncode == 0 and "run --kiosk --csi 0" in unit.read_text()


def test_systemd_analyze_refuses_a_broken_unit(tmp_path):
    """The check above can fail: a unit naming a missing program is refused."""
    unit = tmp_path / "broken.service"
    unit.write_text(unit_text(["--kiosk"], python=str(tmp_path / "no-python")))
    code, said = analyze(unit, tmp_path)
    assert code != 0 and "no-python" in said


@pytest.mark.parametrize("args, needle", [
    (["--camera", "zero"], "invalid int value: 'zero'"),
    (["--config", "{tmp}/bad.yaml"], "unknown key 'display.kisok'"),
    (["--headless", "--kiosk"], "--headless and --kiosk contradict each other"),
])
def test_install_service_checks_the_run_options_first(tmp_path, run_cli, args, needle):
    (tmp_path / "bad.yaml").write_text("display:\n  kisok: true\n")
    unit = tmp_path / "hanja-live.service"
    proc = run_cli("install-service", "--unit-file", unit,
                   *[a.format(tmp=tmp_path) for a in args], cwd=str(tmp_path))
    assert proc.returncode == 2 and needle in proc.stderr
    assert not unit.exists()
