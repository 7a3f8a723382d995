"""INT8 QDQ quantization (hanja_live.train.quantize) on small real ONNX detectors.

The detector is built with onnx.helper in the shape ultralytics exports YOLOv5u (node names
/model.N/..., SiLU convolutions, a Detect head with box and class branches and a decoding
tail); it is calibrated on images of the real data set generator and run in the app's own
ONNX Runtime backend.
"""

import json

import numpy as np
import pytest
import yaml

from hanja_live import CLASS_NAMES
from hanja_live.errors import ConfigError, ModelError

onnx = pytest.importorskip("onnx", reason="quantization needs onnx (pip install -e .[test])")
ort = pytest.importorskip("onnxruntime", reason="quantization needs onnxruntime")
pytest.importorskip("onnxruntime.quantization", reason="this onnxruntime lacks quantization")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hanja_live.backends.loader import load_backend  # noqa: E402
from hanja_live.train import quantize as qz  # noqa: E402
from hanja_live.train.export import save_model  # noqa: E402

HW = 64
NC = len(CLASS_NAMES)


def yolo_like(path, seed=0, names=True, fp16=False):
    """1x3x64x64 -> stem conv (stride 8) + SiLU -> box branch (16 ch) and class branch (NC)
    -> decoding tail (Sigmoid on classes, Mul on boxes, Concat) -> (1, 4 + NC, 64)."""
    rng = np.random.default_rng(seed)
    inits = []

    def weight(name, shape):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name))
        return name

    def node(op, inputs, output, name, **attrs):
        return helper.make_node(op, inputs, [output], name=name if names else "", **attrs)

    p = "/model.1/"
    nodes = [
        node("Conv", ["images", weight("w0", (8, 3, 8, 8)), weight("b0", (8,))], "c0",
             "/model.0/conv/Conv", strides=[8, 8]),
        node("Sigmoid", ["c0"], "s0", "/model.0/act/Sigmoid"),
        node("Mul", ["c0", "s0"], "a0", "/model.0/act/Mul"),
        node("Conv", ["a0", weight("w1", (8, 8, 3, 3)), weight("b1", (8,))], "c1",
             p + "cv2.0/cv2.0.0/conv/Conv", pads=[1, 1, 1, 1]),
        node("Sigmoid", ["c1"], "s1", p + "cv2.0/cv2.0.0/act/Sigmoid"),
        node("Mul", ["c1", "s1"], "a1", p + "cv2.0/cv2.0.0/act/Mul"),
        node("Conv", ["a1", weight("w2", (4, 8, 1, 1)), weight("b2", (4,))], "box",
             p + "cv2.0/cv2.0.1/Conv"),
        node("Conv", ["a0", weight("w3", (NC, 8, 1, 1)), weight("b3", (NC,))], "cls",
             p + "cv3.0/cv3.0.0/Conv"),
        node("Reshape", ["box", "shape4"], "box_flat", p + "Reshape"),
        node("Reshape", ["cls", "shape_nc"], "cls_flat", p + "Reshape_1"),
        node("Mul", ["box_flat", "pixels"], "box_px", p + "Mul"),
        node("Sigmoid", ["cls_flat"], "cls_prob", p + "Sigmoid"),
        helper.make_node("Concat", ["box_px", "cls_prob"], ["output0"], axis=1,
                         name=p + "Concat" if names else ""),
    ]
    inits += [numpy_helper.from_array(np.array([1, 4, 64], np.int64), "shape4"),
              numpy_helper.from_array(np.array([1, NC, 64], np.int64), "shape_nc"),
              numpy_helper.from_array(np.array(8.0, np.float32), "pixels")]
    graph = helper.make_graph(
        nodes, "yolo_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, HW, HW])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + NC, 64])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    if fp16:
        from onnxruntime.transformers.float16 import convert_float_to_float16

        model = convert_float_to_float16(model, keep_io_types=False)
    save_model(model, path, CLASS_NAMES, 8, "fp16" if fp16 else "fp32", {"source_weights": "x.pt"})
    return str(path)


@pytest.fixture(scope="module")
def calib(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calib") / "images"
    qz.make_calibration_images(folder, count=6, seed=3, long_side=128, log=lambda *_: None)
    return folder


def run_model(path, calib_dir):
    """Outputs of the app's ONNX Runtime backend on the first calibration image."""
    from hanja_live.letterbox import Letterbox
    from hanja_live.sources.images import decode_image, list_images

    backend = load_backend(str(path), backend="onnxruntime", log=lambda *_: None)
    Letterbox(backend.input, stride=8)(decode_image(list_images(str(calib_dir))[0]))
    out = backend.infer()[0].copy()
    precision = backend.precision
    backend.close()
    return out, precision


def test_make_calibration_images_repeatable(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    qz.make_calibration_images(a, count=3, seed=5, long_side=96, log=lambda *_: None)
    qz.make_calibration_images(b, count=3, seed=5, long_side=96, log=lambda *_: None)
    names = sorted(p.name for p in a.iterdir())
    assert names == ["calib_000000.jpg", "calib_000001.jpg", "calib_000002.jpg"]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    assert max(p.stat().st_size for p in a.iterdir()) < 40_000
    qz.make_calibration_images(a, count=2, seed=5, long_side=96, log=lambda *_: None)
    assert sorted(p.name for p in a.iterdir()) == names[:2]  # the stale third one is gone


HEAD_OUTPUTS = ["cv2.0/cv2.0.1/Conv", "cv3.0/cv3.0.0/Conv"]
QUANT_CASES = [
    # id, keyword arguments, activation type, float convs (by name suffix)
    ("default_uint8_head_outputs_float", {}, TensorProto.UINT8, HEAD_OUTPUTS),
    ("int8_symmetric", {"symmetric": True}, TensorProto.INT8, HEAD_OUTPUTS),
    ("entropy_tail_only", {"method": "entropy", "keep_float": "tail"}, TensorProto.UINT8, []),
    ("minmax_per_tensor", {"method": "minmax", "per_channel": False}, TensorProto.UINT8,
     HEAD_OUTPUTS),
]


@pytest.mark.parametrize("kwargs,act_type,float_convs", [c[1:] for c in QUANT_CASES],
                         ids=[c[0] for c in QUANT_CASES])
def test_quantize_runs_in_app_close_to_float(tmp_path, calib, kwargs, act_type, float_convs):
    src = yolo_like(tmp_path / "m.onnx")
    out = tmp_path / "m.int8.onnx"
    result = qz.quantize(src, calib, out, cache=tmp_path / "cache.json", log=lambda *_: None,
                         **kwargs)
    model = onnx.load(str(out))
    assert [o.version for o in model.opset_import if o.domain == ""] == [13]
    assert {o.domain for o in model.opset_import} == {""} and model.ir_version == 7
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["precision"] == "int8" and meta["int8_from"] == "m.onnx"
    assert meta["source_weights"] == "x.pt" and json.loads(meta["names"]) == list(CLASS_NAMES)
    assert yaml.safe_load((tmp_path / "m.int8.yaml").read_text(encoding="utf-8"))["precision"] == "int8"

    quant_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    inits = {t.name: t for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in quant_nodes]
    assert zero_points and {z.data_type for z in zero_points} == {act_type}
    if kwargs.get("symmetric"):
        assert all(not numpy_helper.to_array(z).any() for z in zero_points)
    weight_scales = [inits[n.input[1]] for n in model.graph.node if n.op_type == "DequantizeLinear"
                     and inits.get(n.input[0]) is not None
                     and inits[n.input[0]].data_type == TensorProto.INT8]
    per_channel = any(len(s.dims) == 1 and s.dims[0] > 1 for s in weight_scales)
    assert per_channel == kwargs.get("per_channel", True)

    # the decoding tail (and by default the last convs) read float, and nothing re-quantizes
    # what they write: pixel boxes and 0..1 scores never share an 8-bit scale
    quantized_tensors = {n.input[0] for n in quant_nodes}
    producers = {o: n for n in model.graph.node for o in n.output}
    tail = [n for n in model.graph.node if n.name.startswith("/model.1/") and "/cv" not in n.name]
    assert {n.op_type for n in tail} >= {"Concat", "Sigmoid", "Mul", "Reshape"}
    assert not quantized_tensors & {o for n in tail for o in n.output}
    for suffix in float_convs:
        conv = next(n for n in model.graph.node if n.name.endswith(suffix))
        assert conv.input[1] not in producers  # weights read straight from a float initializer
        assert inits[conv.input[1]].data_type == TensorProto.FLOAT
        assert not quantized_tensors & set(conv.output)

    ref, ref_precision = run_model(src, calib)
    got, precision = run_model(out, calib)
    assert (ref_precision, precision) == ("fp32", "int8")
    assert got.shape == ref.shape == (1, 4 + NC, 64)
    box_err = np.abs(got[0, :4] - ref[0, :4]).max() / np.abs(ref[0, :4]).max()
    cls_err = np.abs(got[0, 4:] - ref[0, 4:]).max()
    assert box_err < 0.1 and cls_err < 0.1, (box_err, cls_err)
    assert not result["cache_reused"]


def test_calibration_cache_reused_for_same_model_only(tmp_path, calib):
    src = yolo_like(tmp_path / "m.onnx", seed=1)
    cache = tmp_path / "calib.json"
    first = qz.quantize(src, calib, tmp_path / "a.onnx", cache=cache, log=lambda *_: None)
    table = json.loads(cache.read_text(encoding="utf-8"))
    assert table["hanja_live"]["images"] == 6 and table["hanja_live"]["method"] == "percentile"
    assert "c0" in table["data"] and "hist" not in table["data"]["c0"]
    lo, hi = table["data"]["c0"]["lowest"], table["data"]["c0"]["highest"]
    assert lo < hi
    again = qz.quantize(src, calib, tmp_path / "b.onnx", cache=cache, log=lambda *_: None)
    assert oct(cache.stat().st_mode & 0o777) == "0o644"
    assert (first["cache_reused"], again["cache_reused"]) == (False, True)
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    # another model (other weights): the cache is stale and calibration runs again
    other = yolo_like(tmp_path / "o.onnx", seed=2)
    third = qz.quantize(other, calib, tmp_path / "c.onnx", cache=cache, log=lambda *_: None)
    assert not third["cache_reused"]
    assert json.loads(cache.read_text(encoding="utf-8"))["data"]["c0"]["lowest"] != lo
    # fewer images: stale too
    fourth = qz.quantize(other, calib, tmp_path / "d.onnx", cache=cache, count=3,
                         log=lambda *_: None)
    assert not fourth["cache_reused"]


ERROR_CASES = [
    # id, what to break, exception
    ("missing_model", "no_model", ConfigError),
    ("empty_calib_folder", "empty_calib", ConfigError),
    ("missing_calib_folder", "no_calib", ConfigError),
    ("fp16_model", "fp16", ConfigError),
    ("unknown_method", "method", ConfigError),
    ("unnamed_nodes", "unnamed", ModelError),
    ("unreadable_image", "bad_image", ConfigError),
]


@pytest.mark.parametrize("breakage,error", [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_quantize_refuses(tmp_path, calib, breakage, error):
    src = yolo_like(tmp_path / "m.onnx", names=breakage != "unnamed", fp16=breakage == "fp16")
    calib_dir = calib
    if breakage == "no_model":
        src = str(tmp_path / "absent.onnx")
    elif breakage in ("empty_calib", "bad_image"):
        calib_dir = tmp_path / "cal"
        calib_dir.mkdir()
        if breakage == "bad_image":
            (calib_dir / "broken.jpg").write_bytes(b"not a jpeg")
    elif breakage == "no_calib":
        calib_dir = tmp_path / "nowhere"
    with pytest.raises(error):
        qz.quantize(src, calib_dir, tmp_path / "q.onnx", cache=tmp_path / "c.json",
                    method="kl" if breakage == "method" else "entropy", log=lambda *_: None)
    assert not (tmp_path / "q.onnx").exists()


def test_unnamed_model_quantizes_whole_with_keep_float_none(tmp_path, calib):
    src = yolo_like(tmp_path / "m.onnx", names=False)
    qz.quantize(src, calib, tmp_path / "q.onnx", cache=tmp_path / "c.json", keep_float="none",
                log=lambda *_: None)
    got, precision = run_model(tmp_path / "q.onnx", calib)
    assert precision == "int8" and got.shape == (1, 4 + NC, 64)


def test_float_nodes_of_shipped_model():
    import os

    from hanja_live.paths import PROJECT_DIR

    path = os.path.join(PROJECT_DIR, "models", "hanja_yolov5n.onnx")
    if not os.path.isfile(path):
        pytest.skip("models/hanja_yolov5n.onnx is not in this checkout")
    model = onnx.load(path)
    tail = qz.float_nodes(model, "tail")
    outputs = qz.float_nodes(model, "outputs")
    assert qz.detect_prefix(model) == "/model.24/"
    ops = {n.name: n.op_type for n in model.graph.node}
    assert all(name.startswith("/model.24/") for name in outputs)
    # tail: the DFL (softmax + its fixed conv) and decoding, none of the head's own convs
    assert [n for n in tail if ops[n] == "Conv"] == ["/model.24/dfl/conv/Conv"]
    assert {"Softmax", "Split", "Concat", "Sigmoid", "Div"} <= {ops[n] for n in tail}
    assert sorted(set(outputs) - set(tail)) == sorted(
        f"/model.24/{b}.{i}/{b}.{i}.2/Conv" for b in ("cv2", "cv3") for i in range(3))
