"""mypy over the runtime package (everything but hanja_live/train), its TensorRT code against the
TensorRT 10 API as tensorrt-stubs describes it.

TensorRT cannot be installed off a Jetson/NVIDIA machine, so these type checks are what catches a
misspelt TensorRT call here. The published tensorrt-stubs (every 10.x release) hold a few
signatures that are not valid Python (a parameter named ``in``; a required parameter after
optional ones) and mypy stops at the first; the test copies the stubs and loosens just those
signatures to ``(self, *args, **kwargs)``, keeping every other declaration as published.
"""

import ast
import importlib.util
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TENSORRT_CODE = ["hanja_live/backends/tensorrt_backend.py", "hanja_live/backends/engine_builder.py",
                 "hanja_live/backends/loader.py", "hanja_live/backends/onnxruntime_backend.py",
                 "hanja_live/backends/engine_cache.py"]


def runtime_files():
    """Every module of the runtime package (the training tools in hanja_live/train are left out)."""
    out = []
    for folder, dirs, files in os.walk(os.path.join(ROOT, "hanja_live")):
        dirs[:] = sorted(d for d in dirs if d not in ("train", "__pycache__"))
        out += [os.path.relpath(os.path.join(folder, f), ROOT) for f in sorted(files) if f.endswith(".py")]
    return out
STUB_PACKAGES = ("tensorrt", "tensorrt_bindings")

_DEF = re.compile(r"^(?P<indent>\s*)def (?P<name>\w+)\((?P<params>.*)\)(?P<rest>\s*(->.*)?:.*)$")


def _stub_dir(package):
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        if os.path.isfile(os.path.join(location, "__init__.pyi")):
            return location
    return None


def loosen_invalid_signatures(text, limit=200):
    """``text`` with each def line Python cannot parse given ``(self, *args, **kwargs)``."""
    lines = text.split("\n")
    for _ in range(limit):
        try:
            ast.parse("\n".join(lines))
            return "\n".join(lines)
        except SyntaxError as exc:
            index = (exc.lineno or 1) - 1
            match = _DEF.match(lines[index])
            if match is None:
                raise
            first = "self, " if match.group("params").lstrip().startswith(("self", "this")) else ""
            lines[index] = "%sdef %s(%s*args, **kwargs)%s" % (
                match.group("indent"), match.group("name"), first, match.group("rest"))
    raise AssertionError("more than %d invalid signatures in the stubs" % limit)


@pytest.mark.parametrize("text, expected", [
    ("def f(self, in: list[int]) -> int: ...\n", "def f(self, *args, **kwargs) -> int: ...\n"),
    ("class A:\n    def g(self, a: int = 1, b: int) -> None:\n        ...\n",
     "class A:\n    def g(self, *args, **kwargs) -> None:\n        ...\n"),
    ("def ok(x: int) -> int: ...\n", "def ok(x: int) -> int: ...\n"),
    ("x = (\n", SyntaxError),
])
def test_loosen_invalid_signatures(text, expected):
    if expected is SyntaxError:
        with pytest.raises(SyntaxError):
            loosen_invalid_signatures(text)
    else:
        assert loosen_invalid_signatures(text) == expected


@pytest.fixture(scope="module")
def tensorrt_stubs(tmp_path_factory):
    """A copy of the installed stubs that Python can parse, for MYPYPATH."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy not installed: pip install mypy")
    root = tmp_path_factory.mktemp("trt-stubs")
    for package in STUB_PACKAGES:
        source = _stub_dir(package)
        if source is None:
            pytest.skip("tensorrt-stubs not installed: pip install --no-deps tensorrt-stubs (tests/run.sh does)")
        target = root / package
        target.mkdir()
        for name in os.listdir(source):
            if name.endswith(".pyi"):
                with open(os.path.join(source, name), encoding="utf-8") as f:
                    text = f.read()
                (target / name).write_text(loosen_invalid_signatures(text), encoding="utf-8")
    return str(root)


def _mypy(stubs, *args):
    env = dict(os.environ, MYPYPATH=stubs)
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", os.path.join(ROOT, "mypy.ini"),
         "--cache-dir", os.path.join(stubs, ".mypy_cache")] + list(args),
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)


def test_runtime_package_type_checks(tensorrt_stubs):
    files = runtime_files()
    assert set(TENSORRT_CODE) <= set(files) and not any("/train/" in f for f in files)
    result = _mypy(tensorrt_stubs, *files)
    assert result.returncode == 0, result.stdout


def test_mypy_sees_tensorrt_api(tensorrt_stubs, tmp_path):
    """The check above is only worth something if TensorRT calls are really typed, not Any."""
    probe = tmp_path / "probe.py"
    probe.write_text("import tensorrt as trt\n"
                     "def f(engine):\n"
                     "    # type: (trt.ICudaEngine) -> int\n"
                     "    return engine.num_bindings\n", encoding="utf-8")
    result = _mypy(tensorrt_stubs, str(probe))
    assert result.returncode != 0
    assert '"ICudaEngine" has no attribute "num_bindings"' in result.stdout
