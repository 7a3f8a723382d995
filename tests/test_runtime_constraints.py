"""The runtime package (everything but hanja_live/train) must run on JetPack 4.6: Python 3.6,
and no torch, which a Jetson Nano has no memory for next to TensorRT."""

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "hanja_live")


def runtime_files():
    """Every .py file of the runtime package, as paths relative to the repository root."""
    found = []
    for folder, dirs, files in os.walk(PACKAGE):
        rel = os.path.relpath(folder, ROOT)
        if rel.replace(os.sep, "/").startswith("hanja_live/train"):
            dirs[:] = []
            continue
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        found.extend(os.path.join(rel, f) for f in files if f.endswith(".py"))
    return sorted(found)


def runtime_modules():
    modules = []
    for path in runtime_files():
        name = path[:-3].replace(os.sep, ".")
        if name.endswith(".__init__"):
            name = name[:-len(".__init__")]
        if name.endswith("__main__"):
            continue  # importing it runs the app
        modules.append(name)
    return modules


IMPORT_ALL = r"""
import importlib, json, sys, traceback
failed = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except Exception:
        failed[name] = traceback.format_exc(limit=3)
print(json.dumps({"failed": failed, "torch": sorted(m for m in sys.modules if m.split(".")[0] == "torch")}))
"""


def test_runtime_files_exclude_training():
    files = runtime_files()
    assert os.path.join("hanja_live", "backends", "loader.py") in files
    assert not [f for f in files if f.startswith(os.path.join("hanja_live", "train"))]


def test_runtime_modules_never_import_torch():
    modules = runtime_modules()
    assert "hanja_live.backends.tensorrt_backend" in modules
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL, json.dumps(modules)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["failed"] == {}, "\n".join(report["failed"].values())
    assert report["torch"] == []


def test_runtime_code_is_python36_compatible():
    if importlib.util.find_spec("vermin") is None:
        pytest.skip("vermin not installed: pip install vermin")
    # vermin has no __main__ module; this is what its console script runs
    vermin = [sys.executable, "-c", "import sys; from vermin import main; sys.exit(main())"]
    result = subprocess.run(vermin + ["-t=3.6-", "--no-tips", "--violations"] + runtime_files(), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300)
    assert result.returncode == 0, result.stdout
