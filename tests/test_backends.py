"""Inference backends: one contract for every backend, run on tiny real ONNX models whose output
is a known function of the input; then the loader's errors and the pieces around it.

TensorRT cannot be installed here: its parameter skips with the reason, and the parts of the
TensorRT backend that need no GPU (I/O API selection) run against small stand-in engines.
"""

import json
import sys
import types

import numpy as np
import pytest

from hanja_live.backends import loader
from hanja_live.backends.loader import check_network_shapes, load_backend, read_onnx
from hanja_live.backends.onnxruntime_backend import pick_providers, precision_of
from hanja_live.backends.tensorrt_backend import BindingIO, TensorNameIO, TensorSpec, select_io
from hanja_live.errors import ConfigError, HanjaLiveError, ModelError
from hanja_live.model_info import ModelInfo

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

TRT_OK, TRT_WHY = loader.tensorrt_status()
BACKENDS = [
    "onnxruntime",
    pytest.param("tensorrt", marks=pytest.mark.skipif(not TRT_OK, reason=TRT_WHY)),
]
NAMES = ["一", "二", "三"]


# --- tiny models ---------------------------------------------------------------------------------

def _save(graph, path, metadata, opset=13):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7  # readable by the ONNX Runtime of JetPack 4.6 too
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _meta(hw, layout, names=NAMES, stride=32):
    return {"names": json.dumps(names, ensure_ascii=False), "imgsz": json.dumps(list(hw)),
            "stride": str(stride), "layout": layout}


def conv_model(path, layout="anchor_based", hw=(32, 32), dtype=np.float32, metadata=True, seed=0):
    """1x1 Conv (known weights) reshaped into a YOLO-style output; returns (path, f(x) -> output).

    anchor_based: (1, H*W, 5+nc); anchor_free: (1, 4+nc, H*W).
    """
    nc = len(NAMES)
    channels = 5 + nc if layout == "anchor_based" else 4 + nc
    rng = np.random.RandomState(seed)
    weight = rng.uniform(-1, 1, (channels, 3, 1, 1)).astype(dtype)
    bias = rng.uniform(-1, 1, (channels,)).astype(dtype)
    h, w = hw
    elem = TensorProto.FLOAT16 if dtype == np.float16 else TensorProto.FLOAT
    nodes = [helper.make_node("Conv", ["images", "w", "b"], ["conv"]),
             helper.make_node("Reshape", ["conv", "shape"], ["flat"])]
    if layout == "anchor_based":
        nodes.append(helper.make_node("Transpose", ["flat"], ["output0"], perm=[0, 2, 1]))
        out_shape = [1, h * w, channels]
    else:
        nodes.append(helper.make_node("Identity", ["flat"], ["output0"]))
        out_shape = [1, channels, h * w]
    graph = helper.make_graph(
        nodes, "conv_yolo",
        [helper.make_tensor_value_info("images", elem, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", elem, out_shape)],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b"),
                     numpy_helper.from_array(np.array([1, channels, h * w], np.int64), "shape")])
    _save(graph, path, _meta(hw, layout) if metadata else None)

    def expected(x):
        y = np.einsum("oc,bchw->bohw", weight[:, :, 0, 0].astype(np.float64), x.astype(np.float64))
        y = (y + bias.astype(np.float64)[None, :, None, None]).reshape(1, channels, h * w)
        return y.transpose(0, 2, 1) if layout == "anchor_based" else y

    return str(path), expected


def shaped_model(path, in_shape, op, out_shape, **attrs):
    """A one-node model with the given declared input and output shapes (for shape errors)."""
    graph = helper.make_graph(
        [helper.make_node(op, ["images"], ["output0"], **attrs)], "shaped",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, out_shape)])
    return _save(graph, path, _meta((32, 32), "anchor_free"))


# --- the contract --------------------------------------------------------------------------------

@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("layout, dtype, ort_precision", [
    ("anchor_based", np.float32, "fp32"),
    ("anchor_free", np.float32, "fp32"),
    ("anchor_based", np.float16, "fp16"),
    ("anchor_free", np.float16, "fp16"),
])
def test_backend_contract(tmp_path, backend_name, layout, dtype, ort_precision):
    path, expected = conv_model(tmp_path / "m.onnx", layout=layout, dtype=dtype)
    lines = []
    backend = load_backend(path, backend=backend_name, engine_dir=str(tmp_path / "engines"), log=lines.append)
    with backend:
        assert backend.name == backend_name
        assert backend.info == ModelInfo(names=tuple(NAMES), input_hw=(32, 32), stride=32, layout=layout)
        assert backend.input.shape == (1, 3, 32, 32)
        assert backend.input.flags.c_contiguous
        if backend_name == "onnxruntime":
            assert backend.input.dtype == dtype
            assert backend.precision == ort_precision
        assert backend.precision in ("fp32", "fp16", "int8")
        tol = 2e-2 if "fp16" in (backend.precision, ort_precision) else 1e-5
        buffer = backend.input
        previous = None
        rng = np.random.RandomState(7)
        for _ in range(3):
            x = rng.uniform(0, 1, buffer.shape).astype(buffer.dtype)
            backend.input[...] = x  # written in place, as the preprocessor does
            outputs = backend.infer()
            assert backend.input is buffer
            assert len(outputs) == 1
            np.testing.assert_allclose(outputs[0].astype(np.float64), expected(x), rtol=tol, atol=tol)
            if previous is not None:
                assert outputs[0] is previous  # output buffers are reused, not reallocated
            previous = outputs[0]

    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith("backend: %s " % backend_name)
    assert ", %s, model %s, input 32x32 (WxH)" % (backend.precision, path) in line
    assert "\n" not in line
    if backend_name == "onnxruntime":
        assert "CPUExecutionProvider" in line


@pytest.mark.skipif(TRT_OK, reason="TensorRT is installed here")
def test_auto_falls_back_to_onnxruntime_and_says_why(tmp_path):
    path, _ = conv_model(tmp_path / "m.onnx")
    lines = []
    with load_backend(path, log=lines.append) as backend:
        assert backend.name == "onnxruntime"
    assert len(lines) == 1
    assert "(CPUExecutionProvider; %s), fp32" % TRT_WHY in lines[0]
    assert TRT_WHY.startswith("TensorRT not installed")


def test_log_line_names_version_and_reason(tmp_path):
    import onnxruntime

    path, _ = conv_model(tmp_path / "m.onnx")
    lines = []
    load_backend(path, backend="onnxruntime", log=lines.append).close()
    assert lines == ["backend: onnxruntime %s (CPUExecutionProvider; backend set to onnxruntime), fp32, "
                     "model %s, input 32x32 (WxH)" % (onnxruntime.__version__, path)]


def test_requested_precision_that_onnxruntime_cannot_apply_is_said(tmp_path):
    path, _ = conv_model(tmp_path / "m.onnx")
    lines = []
    load_backend(path, backend="onnxruntime", precision="fp16", log=lines.append).close()
    assert "precision fp16 applies to TensorRT engines only" in lines[0]
    assert ", fp32, model" in lines[0]


# --- model info: metadata, sidecar, neither -------------------------------------------------------

SIDECAR = "names: [x, y]\nimgsz: [32, 32]\nstride: 16\n"


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("metadata, sidecar, expected", [
    (True, None, ModelInfo(tuple(NAMES), (32, 32), 32, "anchor_based")),
    (True, SIDECAR, ModelInfo(("x", "y"), (32, 32), 16, None)),  # the sidecar wins
    (False, SIDECAR, ModelInfo(("x", "y"), (32, 32), 16, None)),
    (False, None, "has no class-name metadata and there is no {sidecar} beside it"),
    (True, "names: [x, y]\nimgsz: [64, 64]\nstride: 32\n", "gives imgsz [64, 64] but the network input is 1x3x32x32"),
    (True, "names: [x, y]\n", "has no 'imgsz' metadata"),
    (True, "- not a mapping\n", "must be a mapping"),
])
def test_model_info_sources(tmp_path, backend_name, metadata, sidecar, expected):
    path, _ = conv_model(tmp_path / "m.onnx", metadata=metadata)
    sidecar_path = tmp_path / "m.yaml"
    if sidecar is not None:
        sidecar_path.write_text(sidecar, encoding="utf-8")
    if isinstance(expected, ModelInfo):
        with load_backend(path, backend=backend_name, engine_dir=str(tmp_path), log=lambda _: None) as backend:
            assert backend.info == expected
    else:
        with pytest.raises(ModelError) as err:
            load_backend(path, backend=backend_name, engine_dir=str(tmp_path), log=lambda _: None)
        message = str(err.value)
        assert expected.format(sidecar=sidecar_path) in message
        assert "\n" not in message


# --- broken and unsuitable model files -----------------------------------------------------------

def _truncated(tmp_path):
    good, _ = conv_model(tmp_path / "good.onnx")
    with open(good, "rb") as f:
        data = f.read(100)
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data)
    return str(path)


def _random_bytes(tmp_path):
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.RandomState(3).bytes(4096))
    return str(path)


def _text(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n", encoding="utf-8")
    return str(path)


def _empty(tmp_path):
    path = tmp_path / "empty.onnx"
    path.write_bytes(b"")
    return str(path)


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("make, expected", [
    (lambda t: str(t / "absent.onnx"),
     "model file not found: {path} \u2014 train/export one (see README) or pass --model"),
    (lambda t: (t / "models").mkdir() or str(t / "models"),
     "{path} is a folder, not a model; pass the .onnx file in it with --model"),
    (lambda t: (t / "best.pt").write_bytes(b"PK\x03\x04 torch zip") and str(t / "best.pt"),
     "{path} is a PyTorch checkpoint, which this app does not run; export it with "
     "python -m hanja_live.train.export --weights {path}"),
    (_truncated, "{path} is not a valid ONNX model (file ends inside"),
    (_random_bytes, "{path} is not a valid ONNX model"),
    (_text, "{path} is not a valid ONNX model"),
    (_empty, "{path} is not a valid ONNX model (no ONNX graph in it"),
    (lambda t: shaped_model(t / "gray.onnx", [1, 1, 32, 32], "Flatten", [1, 1, 1024], axis=2),
     "{path}: the network input has shape (1, 1, 32, 32), expected (1, 3, H, W)"),
    (lambda t: shaped_model(t / "batch.onnx", [2, 3, 32, 32], "Flatten", [2, 3, 1024], axis=2),
     "{path}: the network input has shape (2, 3, 32, 32)"),
    (lambda t: shaped_model(t / "dynamic.onnx", ["batch", 3, "height", "width"], "Flatten",
                            ["batch", 3, "hw"], axis=2),
     "{path}: the network input has shape (batch, 3, height, width), expected (1, 3, H, W) with fixed numbers"),
    (lambda t: shaped_model(t / "rank3.onnx", [1, 3, 32], "Identity", [1, 3, 32]),
     "{path}: the network input has shape (1, 3, 32)"),
    (lambda t: shaped_model(t / "flat.onnx", [1, 3, 32, 32], "Flatten", [1, 3072], axis=1),
     "{path}: the network output has shape (1, 3072), expected 3-D"),
    (lambda t: shaped_model(t / "image.onnx", [1, 3, 32, 32], "Identity", [1, 3, 32, 32]),
     "{path}: the network output has shape (1, 3, 32, 32), expected 3-D"),
])
def test_unusable_model_files(tmp_path, backend_name, make, expected):
    path = make(tmp_path)
    with pytest.raises(ModelError) as err:
        load_backend(path, backend=backend_name, engine_dir=str(tmp_path), log=lambda _: None)
    message = str(err.value)
    assert expected.format(path=path) in message
    assert "\n" not in message


@pytest.mark.parametrize("kwargs, error, expected", [
    ({"backend": "openvino"}, ConfigError, "backend must be one of auto, tensorrt, onnxruntime, got 'openvino'"),
    ({"precision": "bf16"}, ConfigError, "precision must be one of auto, fp16, fp32, int8, got 'bf16'"),
    ({"backend": "onnxruntime", "model": "m.engine"}, ModelError, "is a TensorRT engine, which ONNX Runtime cannot run"),
])
def test_load_backend_argument_errors(tmp_path, kwargs, error, expected):
    model = tmp_path / kwargs.pop("model", "m.onnx")
    model.write_bytes(b"\0" * 16)
    with pytest.raises(error) as err:
        load_backend(str(model), log=lambda _: None, **kwargs)
    assert expected in str(err.value)


@pytest.mark.parametrize("threads, expected", [
    (0, None),  # ONNX Runtime's choice
    (1, None),
    (3, None),
    (-1, "model.threads must be 0 (one per core) or more, got -1"),
])
def test_onnxruntime_thread_count(tmp_path, threads, expected):
    path = str(tmp_path / "m.onnx")
    conv_model(path)
    if expected is not None:
        with pytest.raises(ConfigError) as err:
            load_backend(path, backend="onnxruntime", threads=threads, log=lambda _: None)
        assert expected in str(err.value)
        return
    with load_backend(path, backend="onnxruntime", threads=threads, log=lambda _: None) as b:
        options = b._session.get_session_options()
        assert options.intra_op_num_threads == threads
        b.input[...] = 0.5
        single = [o.copy() for o in b.infer()]
    with load_backend(path, backend="onnxruntime", log=lambda _: None) as ref:
        ref.input[...] = 0.5
        np.testing.assert_allclose(single[0], ref.infer()[0], rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(TRT_OK, reason="TensorRT is installed here")
@pytest.mark.parametrize("backend_name, expected", [
    ("tensorrt", "cannot use TensorRT: TensorRT not installed"),
    ("auto", "is a TensorRT engine but TensorRT not installed"),
])
def test_tensorrt_asked_for_but_absent(tmp_path, backend_name, expected):
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(HanjaLiveError) as err:
        load_backend(str(engine), backend=backend_name, log=lambda _: None)
    assert expected in str(err.value)
    assert "JetPack" in str(err.value)
    assert "\n" not in str(err.value)


def test_onnxruntime_missing_says_how_to_install(tmp_path, monkeypatch):
    path, _ = conv_model(tmp_path / "m.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(HanjaLiveError) as err:
        load_backend(path, backend="onnxruntime", log=lambda _: None)
    assert str(err.value).startswith("ONNX Runtime is not installed: pip install onnxruntime")


@pytest.mark.skipif(TRT_OK, reason="TensorRT is installed here")
def test_tensorrt_status_without_tensorrt(monkeypatch):
    ok, why = loader.tensorrt_status()
    assert not ok and why.startswith("TensorRT not installed")
    monkeypatch.setitem(sys.modules, "tensorrt", None)
    assert loader.tensorrt_status() == (False, "TensorRT not installed")


# --- pieces of the backends ----------------------------------------------------------------------

def test_read_onnx_summary(tmp_path):
    path, _ = conv_model(tmp_path / "m.onnx", layout="anchor_free")
    summary = read_onnx(path)
    assert summary.metadata == _meta((32, 32), "anchor_free")
    assert summary.input_shape == [1, 3, 32, 32]
    assert summary.input_type == TensorProto.FLOAT
    assert summary.output_shapes == [[1, 4 + len(NAMES), 1024]]
    assert summary.op_types == frozenset(["Conv", "Reshape", "Identity"])
    assert summary.initializer_types == {TensorProto.FLOAT: 2, TensorProto.INT64: 1}


def qdq_model(path, hw=(32, 32)):
    """x -> Quantize/Dequantize -> Conv with int8 weights (dequantized): an explicitly quantized model."""
    nc = len(NAMES)
    channels = 4 + nc
    h, w = hw
    weight = (np.arange(channels * 3, dtype=np.int8) - 10).reshape(channels, 3, 1, 1)
    inits = [numpy_helper.from_array(np.array(1 / 127.0, np.float32), "xs"),
             numpy_helper.from_array(np.array(0, np.int8), "xz"),
             numpy_helper.from_array(weight, "wq"),
             numpy_helper.from_array(np.array(0.05, np.float32), "ws"),
             numpy_helper.from_array(np.array(0, np.int8), "wz"),
             numpy_helper.from_array(np.array([1, channels, h * w], np.int64), "shape")]
    nodes = [helper.make_node("QuantizeLinear", ["images", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["conv"]),
             helper.make_node("Reshape", ["conv", "shape"], ["output0"])]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels, h * w])], initializer=inits)
    _save(graph, path, _meta(hw, "anchor_free"))
    return str(path), weight.astype(np.float64)[:, :, 0, 0] * 0.05


def test_qdq_model_reports_int8(tmp_path):
    path, weight = qdq_model(tmp_path / "q.onnx")
    with load_backend(path, backend="onnxruntime", log=lambda _: None) as backend:
        assert backend.precision == "int8"
        x = np.random.RandomState(1).uniform(0, 1, backend.input.shape).astype(np.float32)
        backend.input[...] = x
        out = backend.infer()[0]
    xq = np.round(x.astype(np.float64) * 127) / 127
    expected = np.einsum("oc,bchw->bohw", weight, xq).reshape(out.shape)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("input_dtype, initializers, ops, expected", [
    (np.float32, {1: 10}, frozenset(["Conv"]), "fp32"),
    (np.float16, {10: 10}, frozenset(["Conv"]), "fp16"),
    (np.float32, {10: 60, 1: 2}, frozenset(["Conv", "Cast"]), "fp16"),  # fp16 weights, fp32 I/O
    (np.float32, {3: 60, 1: 60}, frozenset(["QuantizeLinear", "DequantizeLinear"]), "int8"),
    (np.float32, {3: 4, 1: 60}, frozenset(["Conv"]), "fp32"),  # int8 constants alone are not quantization
])
def test_precision_of(input_dtype, initializers, ops, expected):
    assert precision_of(np.dtype(input_dtype), initializers, ops) == expected


@pytest.mark.parametrize("available, expected", [
    (["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    (["AzureExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
    (["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"],
     ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["CUDAExecutionProvider", "CPUExecutionProvider"], ["CUDAExecutionProvider", "CPUExecutionProvider"]),
    (["AzureExecutionProvider"], HanjaLiveError),
    ([], HanjaLiveError),
])
def test_pick_providers(available, expected):
    if expected is HanjaLiveError:
        with pytest.raises(HanjaLiveError, match="offers none of"):
            pick_providers(available)
    else:
        assert pick_providers(available) == expected


@pytest.mark.parametrize("input_shape, output_shapes, expected", [
    ([1, 3, 416, 416], [[1, 10647, 15]], (416, 416)),
    ([1, 3, 320, 640], [[1, 14, 4200]], (320, 640)),
    ([1, 3, 416, 416], [["batch", "anchors", 15]], (416, 416)),  # symbolic output sizes are fine
    ([1, 3, 416, 416], [[1, 10647, 15], [1, 3, 52, 52, 15]], (416, 416)),  # only the first output counts
    ([1, 3, 416], [[1, 10647, 15]], "expected (1, 3, H, W)"),
    ([1, 3, -1, 416], [[1, 10647, 15]], "expected (1, 3, H, W) with fixed numbers"),
    ([1, 3, None, 416], [[1, 10647, 15]], "(1, 3, ?, 416)"),
    ([1, 3, 416, 416], [], "the network has no output"),
    ([1, 3, 416, 416], [[10647, 15]], "expected 3-D"),
])
def test_check_network_shapes(input_shape, output_shapes, expected):
    if isinstance(expected, tuple):
        assert check_network_shapes("m.onnx", input_shape, output_shapes) == expected
    else:
        with pytest.raises(ModelError) as err:
            check_network_shapes("m.onnx", input_shape, output_shapes)
        assert str(err.value).startswith("m.onnx: ")
        assert expected in str(err.value)


# --- TensorRT I/O: the binding API (8.2-8.4) and the tensor-name API (>= 8.5) ---------------------

FAKE_TRT = types.SimpleNamespace(nptype=lambda name: {"FLOAT": np.float32, "HALF": np.float16}[name],
                                 TensorIOMode=types.SimpleNamespace(INPUT="IN", OUTPUT="OUT"))
TENSORS = [("images", (1, 3, 32, 32), "HALF", True), ("output0", (1, 1024, 8), "FLOAT", False),
           ("aux", (1, 8, 1024), "FLOAT", False)]


class LegacyEngine(object):
    """What a TensorRT 8.2 ICudaEngine offers for I/O."""

    num_bindings = len(TENSORS)

    def get_binding_name(self, i):
        return TENSORS[i][0]

    def get_binding_shape(self, i):
        return list(TENSORS[i][1])

    def get_binding_dtype(self, i):
        return TENSORS[i][2]

    def binding_is_input(self, i):
        return TENSORS[i][3]


class NamedEngine(object):
    """What a TensorRT 10 ICudaEngine offers for I/O."""

    num_io_tensors = len(TENSORS)

    def get_tensor_name(self, i):
        return TENSORS[i][0]

    def _find(self, name):
        return [t for t in TENSORS if t[0] == name][0]

    def get_tensor_shape(self, name):
        return list(self._find(name)[1])

    def get_tensor_dtype(self, name):
        return self._find(name)[2]

    def get_tensor_mode(self, name):
        return "IN" if self._find(name)[3] else "OUT"


class BothEngine(LegacyEngine, NamedEngine):
    """TensorRT 8.5-8.6 offer both APIs; the tensor-name one is used."""


class Context(object):
    def __init__(self):
        self.calls = []

    def execute_async_v2(self, bindings, stream_handle):
        self.calls.append(("v2", list(bindings), stream_handle))
        return True

    def set_tensor_address(self, name, address):
        self.calls.append(("address", name, address))
        return name != "refused"

    def execute_async_v3(self, stream_handle):
        self.calls.append(("v3", stream_handle))
        return True


EXPECTED_SPECS = [TensorSpec("images", (1, 3, 32, 32), np.dtype(np.float16), True),
                  TensorSpec("output0", (1, 1024, 8), np.dtype(np.float32), False),
                  TensorSpec("aux", (1, 8, 1024), np.dtype(np.float32), False)]
ADDRESSES = {"aux": 3000, "images": 1000, "output0": 2000}


@pytest.mark.parametrize("engine, io_class, calls", [
    (LegacyEngine(), BindingIO, [("v2", [1000, 2000, 3000], 77)]),
    (NamedEngine(), TensorNameIO, [("address", "aux", 3000), ("address", "images", 1000),
                                   ("address", "output0", 2000), ("v3", 77)]),
    (BothEngine(), TensorNameIO, [("address", "aux", 3000), ("address", "images", 1000),
                                  ("address", "output0", 2000), ("v3", 77)]),
])
def test_tensorrt_io_api_selection(engine, io_class, calls):
    chosen = select_io(engine)
    assert chosen is io_class
    io = chosen(engine, FAKE_TRT)
    assert io.tensors() == EXPECTED_SPECS
    context = Context()
    io.bind(context, dict(sorted(ADDRESSES.items())))
    assert io.execute(context, 77) is True
    assert context.calls == calls


def test_tensor_name_io_refused_address_is_an_error():
    io = TensorNameIO(NamedEngine(), FAKE_TRT)
    with pytest.raises(HanjaLiveError, match="refused the buffer of tensor 'refused'"):
        io.bind(Context(), {"refused": 1})


def test_load_line_gives_a_wide_input_as_width_x_height(wide_model):
    # a 64-high, 96-wide input must read "96x64": frames are logged W x H too (1280x720)
    lines = []
    with load_backend(str(wide_model), backend="onnxruntime", log=lines.append) as backend:
        assert backend.info.input_hw == (64, 96)
    assert ", model %s, input 96x64 (WxH)" % wide_model in lines[0]
