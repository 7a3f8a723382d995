"""The variants report (hanja_live.train.variants): graph cost counted on hand-built ONNX graphs
with MACs worked out by hand, and a whole report on real files: small detectors in FP32, FP16
and INT8 form, scored through the app on images of the real data set generator."""

import json
import os

import numpy as np
import pytest

from hanja_live.errors import ConfigError, ModelError

onnx = pytest.importorskip("onnx", reason="the report needs onnx (pip install -e .[test])")
pytest.importorskip("onnxruntime", reason="the report needs onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hanja_live.train import variants as va  # noqa: E402


def single_op(op, x_shape, w_shape, y_shape=None, attrs=None, bias=True, qdq=False, fp16=False,
              dynamic=False):
    """A one-operator graph: x (input) op W (initializer, optionally int8 behind a DQ)."""
    rng = np.random.default_rng(0)
    elem = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    dtype = np.float16 if fp16 else np.float32
    inits, nodes = [], []
    w = rng.normal(0, 1, w_shape)
    if qdq:
        inits += [numpy_helper.from_array(w.astype(np.int8), "w_q"),
                  numpy_helper.from_array(np.array(0.1, np.float32), "w_s"),
                  numpy_helper.from_array(np.array(0, np.int8), "w_z")]
        nodes.append(helper.make_node("DequantizeLinear", ["w_q", "w_s", "w_z"], ["w"]))
    else:
        inits.append(numpy_helper.from_array(w.astype(dtype), "w"))
    inputs = ["x", "w"]
    if bias:
        n_out = w_shape[1] if op == "ConvTranspose" else w_shape[0] if op != "Gemm" else w_shape[1]
        inits.append(numpy_helper.from_array(np.zeros(n_out, dtype), "b"))
        inputs.append("b")
    nodes.append(helper.make_node(op, inputs, ["y"], **(attrs or {})))
    x_dims = ["n"] + list(x_shape[1:]) if dynamic else list(x_shape)
    graph = helper.make_graph(nodes, "one", [helper.make_tensor_value_info("x", elem, x_dims)],
                              [helper.make_tensor_value_info("y", elem, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


COST_CASES = [
    # id, op, x shape, w shape, attributes, bias, expected MACs, expected parameters
    # 3x3 conv, padding 1: 8x8 output, 8 channels, each 3*3*3 products
    ("conv3x3", "Conv", (1, 3, 8, 8), (8, 3, 3, 3), {"pads": [1, 1, 1, 1]}, True,
     8 * 8 * 8 * 27, 8 * 27 + 8),
    ("conv_stride2_no_bias", "Conv", (1, 4, 8, 8), (6, 4, 1, 1), {"strides": [2, 2]}, False,
     6 * 4 * 4 * 4, 24),
    # depthwise: each output channel sees one input channel
    ("depthwise", "Conv", (1, 8, 6, 6), (8, 1, 3, 3), {"group": 8}, True,
     8 * 4 * 4 * 9, 8 * 9 + 8),
    ("matmul", "MatMul", (1, 5, 7), (7, 3), {}, False, 5 * 3 * 7, 21),
    ("gemm", "Gemm", (2, 7), (7, 3), {}, True, 2 * 3 * 7, 21 + 3),
    ("gemm_transB", "Gemm", (2, 7), (3, 7), {"transB": 1}, False, 2 * 3 * 7, 21),
    # transposed conv: every input element spreads over out-channels x kernel
    ("conv_transpose", "ConvTranspose", (1, 4, 3, 3), (4, 2, 2, 2), {"strides": [2, 2]}, True,
     4 * 3 * 3 * 2 * 2 * 2, 32 + 2),
]


# every case as float32 and float16; the convolutions and MatMul also with int8 weights behind
# a DequantizeLinear, as a QDQ model stores them
COST_FORMS = [(form,) + c for c in COST_CASES for form in ("fp32", "fp16", "qdq")
              if form != "qdq" or c[1] in ("Conv", "MatMul")]


@pytest.mark.parametrize("form,op,x,w,attrs,bias,macs,params", [f[:1] + f[2:] for f in COST_FORMS],
                         ids=["%s-%s" % (f[1], f[0]) for f in COST_FORMS])
def test_graph_cost(form, op, x, w, attrs, bias, macs, params):
    model = single_op(op, x, w, attrs=attrs, bias=bias, qdq=form == "qdq", fp16=form == "fp16")
    assert va.graph_cost(model) == (macs, params)


def test_graph_cost_needs_fixed_shapes():
    model = single_op("Conv", (1, 3, 8, 8), (8, 3, 3, 3), dynamic=True)
    with pytest.raises(ModelError):
        va.graph_cost(model)


def test_graph_cost_two_layers_share_nothing():
    """Two convs in a row: MACs add up, and a weight used twice counts once."""
    w = numpy_helper.from_array(np.ones((4, 4, 1, 1), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["h"]), helper.make_node("Conv", ["h", "w"], ["y"])],
        "two", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert va.graph_cost(model) == (2 * 4 * 25 * 4, 16)


PARSE_CASES = [
    # id, text, expected (label, path suffix) or exception
    ("labelled", "fp32={model}", ("fp32", "m.onnx")),
    ("bare_path", "{model}", ("m", "m.onnx")),
    ("missing_file", "x=nowhere.onnx", ConfigError),
    ("empty_label", "={model}", ConfigError),
]


@pytest.mark.parametrize("text,expected", [c[1:] for c in PARSE_CASES],
                         ids=[c[0] for c in PARSE_CASES])
def test_parse_variant(tmp_path, text, expected):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    text = text.format(model=model)
    if isinstance(expected, type):
        with pytest.raises(expected):
            va.parse_variant(text)
        return
    label, path = va.parse_variant(text)
    assert label == expected[0] and path.endswith(expected[1])


@pytest.fixture(scope="module")
def detectors(tmp_path_factory):
    """A small named detector (see test_quantize) as FP32, FP16 and INT8, and a data set."""
    from test_quantize import yolo_like

    from hanja_live.train import dataset
    from hanja_live.train import quantize as qz
    from hanja_live.train.export import convert_fp16

    root = tmp_path_factory.mktemp("variants")
    fp32 = yolo_like(root / "m.onnx", seed=4)
    convert_fp16(fp32, root / "m.fp16.onnx")
    data = root / "data"
    dataset.generate(str(data), {"train": 4, "test": 3}, seed=0, workers=1, long_side=96,
                     progress=False)
    qz.quantize(fp32, data / "images" / "train", root / "m.int8.onnx", cache=root / "c.json",
                log=lambda *_: None)
    return {"fp32": fp32, "fp16": str(root / "m.fp16.onnx"), "int8": str(root / "m.int8.onnx"),
            "data": data}


def test_report_on_real_files(detectors, tmp_path, capsys):
    out = tmp_path / "report.json"
    va.main([f"{k}={detectors[k]}" for k in ("fp32", "fp16", "int8")]
            + ["--data", str(detectors["data"]), "--runs", "5", "--out", str(out),
               "--eval-dir", str(tmp_path / "eval")])
    text = capsys.readouterr().out
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + 3 and table[2].startswith("| fp32 | fp32 |")
    report = json.loads(out.read_text(encoding="utf-8"))
    rows = {r["variant"]: r for r in report["rows"]}
    assert [rows[k]["precision"] for k in ("fp32", "fp16", "int8")] == ["fp32", "fp16", "int8"]
    # the same network in three number formats: same work, same weights, smaller files
    assert rows["fp32"]["macs"] == rows["fp16"]["macs"] == rows["int8"]["macs"] > 0
    assert rows["fp32"]["params"] == rows["fp16"]["params"] == rows["int8"]["params"]
    for k in ("fp32", "fp16", "int8"):
        assert rows[k]["size_bytes"] == os.path.getsize(detectors[k])
    assert rows["fp32"]["speedup"] == 1.0
    for r in rows.values():
        assert r["eval_images"] == 3 and 0.0 <= r["mAP50_95"] <= r["mAP50"] <= 1.0
        assert 0 < r["median_ms"] <= r["p95_ms"]
        assert (tmp_path / "eval" / f"{r['variant']}.detections.jsonl").is_file()
    assert report["environment"]["runs"] == 5 and report["split"] == "test"

    # --reuse scores the kept detections again: same mAP without running detect
    again = va.measure_variants([("fp32", detectors["fp32"])], detectors["data"], runs=3,
                                eval_dir=tmp_path / "eval", reuse=True, log=lambda *_: None)
    assert again[0]["mAP50_95"] == rows["fp32"]["mAP50_95"]


def test_report_refuses_repeated_labels(detectors):
    with pytest.raises(ConfigError):
        va.measure_variants([("a", detectors["fp32"]), ("a", detectors["int8"])], None,
                            evaluate_models=False, log=lambda *_: None)
