"""TensorRT engine building: everything that needs no GPU runs here (cache names, precision choice,
workspace and flag selection, progress lines, calibration images, atomic writes); the build
itself without TensorRT must fail with one clear line."""

import hashlib
import os
import re
import sys
import threading
import types

import numpy as np
import pytest

from hanja_live.backends import engine_builder as eb
from hanja_live.backends.engine_cache import (EngineName, calibration_cache_path, engine_path, gpu_slug, model_digest,
                                              onnx_sibling, parse_engine_name, timing_cache_path, version_tag)
from hanja_live.errors import ConfigError, HanjaLiveError
from hanja_live.paths import PROJECT_DIR

cv2 = pytest.importorskip("cv2")


# --- engine cache names --------------------------------------------------------------------------

D = "1a2b3c4d"  # a model digest


@pytest.mark.parametrize("model, digest, gpu, version, precision, engine_dir, expected", [
    ("models/hanja.onnx", D, "NVIDIA Tegra X1", "8.2.1.8", "fp16", None,
     "models/hanja.1a2b3c4d.nvidia-tegra-x1.trt8.2.1.8.fp16.engine"),
    ("models/hanja.onnx", D, "Orin (nvgpu)", "10.3.0", "int8", "/var/cache/hanja",
     "/var/cache/hanja/hanja.1a2b3c4d.orin-nvgpu.trt10.3.0.int8.engine"),
    ("/m/hanja.v2.onnx", D, "NVIDIA GeForce RTX 3060 Laptop GPU", "10.13.0.35", "fp32", None,
     "/m/hanja.v2.1a2b3c4d.nvidia-geforce-rtx-3060-laptop-gpu.trt10.13.0.35.fp32.engine"),
    ("hanja.onnx", D, "Xavier", "8.5.2.2.post1", "fp16", "", "hanja.1a2b3c4d.xavier.trt8.5.2.2.fp16.engine"),
    ("hanja.onnx", D, "", "8.2.1", "fp16", None, "hanja.1a2b3c4d.unknown-gpu.trt8.2.1.fp16.engine"),
    ("hanja.onnx", D, "Xavier", "8.2.1", "bf16", None, ValueError),
    ("hanja.onnx", D, "Xavier", "unknown", "fp16", None, ValueError),
    ("hanja.onnx", "1A2B3C4D", "Xavier", "8.2.1", "fp16", None, ValueError),
    ("hanja.onnx", "1a2b", "Xavier", "8.2.1", "fp16", None, ValueError),
])
def test_engine_path(model, digest, gpu, version, precision, engine_dir, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            engine_path(model, digest, gpu, version, precision, engine_dir)
    else:
        assert engine_path(model, digest, gpu, version, precision, engine_dir) == expected


def test_a_changed_model_gets_other_cache_names(tmp_path):
    """Retrained weights under the same file name (git pull) must not reuse the old engine."""
    model = tmp_path / "hanja.onnx"
    model.write_bytes(b"old weights")
    old = model_digest(str(model))
    model.write_bytes(b"new weights")
    new = model_digest(str(model))
    assert old != new and len(new) == 8
    assert new == hashlib.sha256(b"new weights").hexdigest()[:8]
    assert engine_path(str(model), old, "Xavier", "8.2.1", "fp16") != \
        engine_path(str(model), new, "Xavier", "8.2.1", "fp16")
    assert calibration_cache_path(str(model), old, "8.2.1") != calibration_cache_path(str(model), new, "8.2.1")


@pytest.mark.parametrize("name, expected", [
    ("NVIDIA Tegra X1", "nvidia-tegra-x1"),
    ("  Tesla T4  ", "tesla-t4"),
    ("NVIDIA H100 80GB HBM3", "nvidia-h100-80gb-hbm3"),
    ("Orin (nvgpu)", "orin-nvgpu"),
    ("???", "unknown-gpu"),
])
def test_gpu_slug(name, expected):
    assert gpu_slug(name) == expected


@pytest.mark.parametrize("version, expected", [
    ("8.2.1.8", "8.2.1.8"), ("10.3.0", "10.3.0"), ("10.0.0b6", "10.0.0"), (" 8.6.1.post1", "8.6.1"),
    ("", ValueError), ("trt", ValueError),
])
def test_version_tag(version, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            version_tag(version)
    else:
        assert version_tag(version) == expected


def test_side_cache_names():
    assert timing_cache_path("models/hanja.onnx", "NVIDIA Tegra X1", "8.2.1.8") == \
        "models/hanja.nvidia-tegra-x1.trt8.2.1.8.timing.cache"
    assert timing_cache_path("models/hanja.onnx", "Xavier", "8.5.2", "/c") == "/c/hanja.xavier.trt8.5.2.timing.cache"
    assert calibration_cache_path("models/hanja.onnx", D, "8.2.1.8") == "models/hanja.1a2b3c4d.trt8.2.1.8.int8.calib"


@pytest.mark.parametrize("name, expected", [
    ("hanja.1a2b3c4d.nvidia-tegra-x1.trt8.2.1.8.fp16.engine",
     EngineName("hanja", D, "nvidia-tegra-x1", "8.2.1.8", "fp16")),
    ("/x/hanja.v2.1a2b3c4d.xavier.trt10.3.0.int8.engine", EngineName("hanja.v2", D, "xavier", "10.3.0", "int8")),
    # named before digests were added
    ("hanja.nvidia-tegra-x1.trt8.2.1.8.fp16.engine", EngineName("hanja", None, "nvidia-tegra-x1", "8.2.1.8", "fp16")),
    ("/x/hanja.v2.xavier.trt10.3.0.int8.engine", EngineName("hanja.v2", None, "xavier", "10.3.0", "int8")),
    # a stem part that looks like a digest stays in the stem
    ("m.deadbeef.1a2b3c4d.xavier.trt8.2.fp16.engine", EngineName("m.deadbeef", D, "xavier", "8.2", "fp16")),
    ("hanja.engine", None),
    ("hanja.xavier.trt8.2.bf16.engine", None),
    ("hanja.Xavier.trt8.2.fp16.engine", None),
    ("hanja.xavier.trt8.2.fp16.engine.tmp", None),
])
def test_parse_engine_name(name, expected):
    assert parse_engine_name(name) == expected


def test_engine_name_round_trip():
    path = engine_path("/m/hanja.v2.onnx", D, "NVIDIA Tegra X1", "8.2.1.8", "fp16")
    assert parse_engine_name(path) == EngineName("hanja.v2", D, "nvidia-tegra-x1", "8.2.1.8", "fp16")


def test_onnx_sibling(tmp_path):
    (tmp_path / "hanja.onnx").write_bytes(b"x")
    built = str(tmp_path / "hanja.1a2b3c4d.nvidia-tegra-x1.trt8.2.1.8.fp16.engine")
    assert onnx_sibling(built) == str(tmp_path / "hanja.onnx")
    assert onnx_sibling(str(tmp_path / "hanja.engine")) == str(tmp_path / "hanja.onnx")
    assert onnx_sibling(str(tmp_path / "other.engine")) is None


# --- precision and builder settings --------------------------------------------------------------

@pytest.mark.parametrize("requested, fast16, fast8, qdq, calib_dir, expected", [
    ("auto", True, False, False, None, ("fp16", "GPU has fast FP16")),
    ("auto", False, False, False, None, ("fp32", "GPU has no fast FP16")),
    ("fp32", True, True, False, None, ("fp32", "requested")),
    ("fp16", True, False, False, None, ("fp16", "requested")),
    ("fp16", False, False, False, None, ("fp16", "requested, although this GPU has no fast FP16")),
    ("auto", True, True, True, None, ("int8", "the model holds Q/DQ (explicitly quantized) layers")),
    ("fp32", False, False, True, None, ("int8", "the model holds Q/DQ (explicitly quantized) layers")),
    ("int8", True, True, False, "frames/", ("int8", "requested, calibrated on frames/")),
    ("int8", True, False, False, "frames/", "this GPU has no fast INT8"),
    ("int8", True, True, False, None, "INT8 needs calibration images"),
    ("bf16", True, True, False, None, "precision must be one of auto, fp16, fp32, int8"),
])
def test_choose_precision(requested, fast16, fast8, qdq, calib_dir, expected):
    if isinstance(expected, tuple):
        assert eb.choose_precision(requested, fast16, fast8, qdq, calib_dir) == expected
    else:
        with pytest.raises(ConfigError, match=expected):
            eb.choose_precision(requested, fast16, fast8, qdq, calib_dir)


def test_choose_precision_int8_from_cached_scales(tmp_path):
    cache = tmp_path / "m.trt8.2.1.int8.calib"
    cache.write_bytes(b"TRT-8201-EntropyCalibration2\n")
    assert eb.choose_precision("int8", True, True, calib_cache=str(cache)) == \
        ("int8", "requested, calibrated on the cached scales")


@pytest.mark.parametrize("capability, expected", [
    ((5, 3), True),  # Jetson Nano / TX1
    ((5, 2), False),  # Maxwell desktop
    ((6, 1), False),  # Pascal desktop: FP16 at 1/64 rate
    ((6, 2), True),  # TX2
    ((7, 2), True),  # Xavier
    ((8, 7), True),  # Orin
])
def test_fast_fp16_for_compute_capability(capability, expected):
    assert eb.fast_fp16_for_compute_capability(capability) is expected


@pytest.mark.parametrize("module, expected", [
    (types.SimpleNamespace(NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=0)), 1),
    (types.SimpleNamespace(NetworkDefinitionCreationFlag=types.SimpleNamespace(EXPLICIT_BATCH=3)), 8),
    (types.SimpleNamespace(NetworkDefinitionCreationFlag=types.SimpleNamespace(STRONGLY_TYPED=1)), 0),
    (types.SimpleNamespace(), 0),
])
def test_network_flags(module, expected):
    assert eb.network_flags(module) == expected


class PoolConfig(object):
    """IBuilderConfig as TensorRT >= 8.3 offers the workspace limit."""

    def __init__(self):
        self.limits = {}

    def set_memory_pool_limit(self, pool, size):
        self.limits[pool] = size


class LegacyConfig(object):
    """IBuilderConfig of TensorRT 8.2."""

    max_workspace_size = 0


def test_set_workspace_picks_the_call_the_config_offers():
    trt = types.SimpleNamespace(MemoryPoolType=types.SimpleNamespace(WORKSPACE="WORKSPACE"))
    pool = PoolConfig()
    assert eb.set_workspace(pool, trt, 1 << 30) == "set_memory_pool_limit"
    assert pool.limits == {"WORKSPACE": 1 << 30}
    legacy = LegacyConfig()
    assert eb.set_workspace(legacy, trt, 256 << 20) == "max_workspace_size"
    assert legacy.max_workspace_size == 256 << 20


# --- without TensorRT ----------------------------------------------------------------------------

def _tensorrt_present():
    try:
        import tensorrt
    except ImportError:
        return False
    return hasattr(tensorrt, "Builder")


MODELS = os.path.join(PROJECT_DIR, "models")
NO_TENSORRT = ("TensorRT is not installed: it comes with JetPack on Jetson; on x86 install "
               "TensorRT from NVIDIA, or use --backend onnxruntime")


@pytest.mark.skipif(_tensorrt_present(), reason="TensorRT is installed here")
@pytest.mark.parametrize("hide_module, model, message", [
    (True, "hanja_yolov5n.onnx", NO_TENSORRT),
    (False, "hanja_yolov5n.onnx", NO_TENSORRT),  # only tensorrt-stubs' empty namespace package
    (True, "hanja_yolov5n.int8sym.onnx", NO_TENSORRT),  # symmetric Q/DQ: what TensorRT takes
    # ONNX Runtime's uint8 Q/DQ: refused before TensorRT is needed, naming the file to use
    (True, "hanja_yolov5n.int8.onnx", "is quantized with uint8 activations"),
    (True, "missing.onnx", "cannot read model file"),
])
def test_build_engine_refuses_before_building(tmp_path, monkeypatch, hide_module, model, message):
    if hide_module:
        monkeypatch.setitem(sys.modules, "tensorrt", None)
    with pytest.raises(HanjaLiveError) as err:
        eb.build_engine(os.path.join(MODELS, model), str(tmp_path / "m.engine"), log=lambda _: None)
    assert message in str(err.value) and "\n" not in str(err.value)
    if "uint8" in message:
        assert "models/hanja_yolov5n.int8sym.onnx" in str(err.value)
    assert not os.path.exists(str(tmp_path / "m.engine"))


# --- atomic writes -------------------------------------------------------------------------------

def test_write_atomic_replaces_whole_files(tmp_path):
    target = tmp_path / "sub" / "m.engine"
    eb.write_atomic(str(target), b"first")
    eb.write_atomic(str(target), memoryview(b"second version"))
    assert target.read_bytes() == b"second version"
    assert sorted(os.listdir(str(tmp_path / "sub"))) == ["m.engine"]


def test_write_atomic_unwritable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(HanjaLiveError) as err:
        eb.write_atomic(str(blocker / "m.engine"), b"data")
    message = str(err.value)
    assert message.startswith("cannot write %s (" % (blocker / "m.engine"))
    assert "set model.engine_dir to a writable folder" in message
    assert "\n" not in message


# --- progress ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, expected", [
    (0, "0s"), (5.9, "5s"), (65, "1m 05s"), (600, "10m 00s"), (3725, "1h 02m 05s"), (-3, "0s"),
])
def test_format_elapsed(seconds, expected):
    assert eb.format_elapsed(seconds) == expected


class Clock(object):
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_tracker_lines():
    clock = Clock()
    lines = []
    tracker = eb.ProgressTracker(lines.append, interval_s=10.0, clock=clock)
    tracker.phase_start("Building engine", None, 3)
    clock.now = 2.0
    tracker.phase_start("Tactic selection", "Building engine", 100)
    assert tracker.step_complete("Tactic selection", 0) is True  # 2 s since the last line: quiet
    clock.now = 12.5
    assert tracker.step_complete("Tactic selection", 41) is True
    clock.now = 13.0
    tracker.step_complete("Tactic selection", 42)
    tracker.phase_finish("Tactic selection")
    clock.now = 75.0
    tracker.phase_finish("Building engine")
    assert lines == [
        "TensorRT build: Building engine started (3 steps), 0s elapsed",
        "TensorRT build: Building engine > Tactic selection 42/100, 12s elapsed",
        "TensorRT build: Building engine finished, 1m 15s elapsed",
    ]


def test_heartbeat_lines_until_stopped():
    lines = []
    two = threading.Event()

    def log(text):
        lines.append(text)
        if len(lines) >= 2:
            two.set()

    readings = iter([0.0])
    beat = eb.Heartbeat(log, label="building", interval_s=0.01, clock=lambda: next(readings, 130.0))
    with beat:
        assert two.wait(30), "the heartbeat thread logged nothing"
    count = len(lines)
    assert not beat._thread.is_alive()
    assert lines[0] == "building: 2m 10s elapsed"
    assert set(lines) == {"building: 2m 10s elapsed"}
    two.clear()
    assert not two.wait(0.05)
    assert len(lines) == count


# --- INT8 calibration images ---------------------------------------------------------------------

def _frames(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        image = np.full((48, 64, 3), 40 * i, np.uint8)
        image[10:20, 10:30] = (255, 0, 0)
        assert cv2.imwrite(str(folder / name), image)


def test_list_calibration_images(tmp_path):
    folder = tmp_path / "calib"
    _frames(folder, ["b.png", "a.jpg", "c.PNG"])
    (folder / "notes.txt").write_text("not an image")
    assert eb.list_calibration_images(str(folder)) == [str(folder / n) for n in ("a.jpg", "b.png", "c.PNG")]
    assert eb.list_calibration_images(str(folder), limit=2) == [str(folder / "a.jpg"), str(folder / "c.PNG")]


@pytest.mark.parametrize("make, expected", [
    (lambda t: str(t / "absent"), "INT8 calibration folder not found"),
    (lambda t: (t / "empty").mkdir() or str(t / "empty"), "no images (.jpg, .jpeg, .png"),
])
def test_list_calibration_images_errors(tmp_path, make, expected):
    with pytest.raises(ConfigError, match=re.escape(expected)):
        eb.list_calibration_images(make(tmp_path))


def test_calibration_batches_fill_one_buffer(tmp_path):
    folder = tmp_path / "calib"
    _frames(folder, ["0.png", "1.png"])
    (folder / "2.png").write_bytes(b"broken")
    buffer = np.zeros((1, 3, 32, 32), np.float32)
    seen = []

    def fill(image):
        buffer[0] = cv2.resize(image, (32, 32)).transpose(2, 0, 1) / 255.0
        seen.append(image.shape)

    batches = eb.CalibrationBatches(eb.list_calibration_images(str(folder)), buffer, fill=fill)
    means = [float(batch.mean()) for batch in batches if batch is buffer]
    assert len(means) == 2 and means[0] < means[1]
    assert seen == [(48, 64, 3), (48, 64, 3)]
    assert batches.used == 2
    assert batches.unreadable == [str(folder / "2.png")]


def test_calibration_batches_none_readable(tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"nope")
    batches = eb.CalibrationBatches([str(bad)], np.zeros((1, 3, 32, 32), np.float32), fill=lambda image: None)
    with pytest.raises(ConfigError, match="none of the 1 calibration files could be read"):
        list(batches)


def test_calibration_batches_use_the_live_letterbox(tmp_path):
    letterbox = pytest.importorskip("hanja_live.letterbox", reason="hanja_live.letterbox not written yet")
    folder = tmp_path / "calib"
    _frames(folder, ["0.png"])
    buffer = np.zeros((1, 3, 32, 32), np.float32)
    batches = eb.CalibrationBatches(eb.list_calibration_images(str(folder)), buffer, stride=32)
    expected = np.zeros_like(buffer)
    letterbox.Letterbox(expected, stride=32)(cv2.imread(str(folder / "0.png")))
    batch = next(iter(batches))
    assert batch is buffer
    np.testing.assert_array_equal(batch, expected)
    assert 0.0 <= batch.min() and batch.max() <= 1.0 and batch.max() > 0.9


def test_cli_build_engine_names_the_model_to_use(run_cli):
    """The check runs before TensorRT is looked for, so it answers on any machine."""
    result = run_cli("build-engine", "--onnx", os.path.join(MODELS, "hanja_yolov5n.int8.onnx"),
                     "--int8")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "uint8 activations" in lines[0] and "int8sym.onnx" in lines[0]
