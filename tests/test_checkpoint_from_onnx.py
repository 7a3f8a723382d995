"""checkpoint_from_onnx: the shipped ONNX back into a checkpoint that exports and trains again.

The round trip runs on the real shipped model and real rendered scenes; it needs torch and
ultralytics (training extras) and skips with the reason where they are missing. The refusals
of unusable files need only onnx.
"""

import copy
import json
import os

import numpy as np
import pytest

from hanja_live import CLASS_NAMES
from hanja_live.errors import ConfigError
from hanja_live.paths import PROJECT_DIR

onnx = pytest.importorskip("onnx", reason="checkpoint_from_onnx reads ONNX files (pip install onnx)")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from hanja_live.train import checkpoint_from_onnx as cfo  # noqa: E402

MODEL = os.path.join(PROJECT_DIR, "models", "hanja_yolov5n.onnx")
CALIB = os.path.join(PROJECT_DIR, "calib", "images")


def one_conv_onnx(path, metadata):
    """A one-convolution ONNX model with the given metadata_props."""
    weight = numpy_helper.from_array(np.ones((4, 3, 3, 3), np.float32), "model.0.conv.weight")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "model.0.conv.weight"], ["output0"], name="/model.0/conv/Conv")],
        "one_conv", [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4, 30, 30])], initializer=[weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


NAMES = {"names": json.dumps(list(CLASS_NAMES), ensure_ascii=False)}  # as export writes it
PRUNED = dict(NAMES, pruned_ratio="0.4", pruned_macs_kept="0.5480", pruned_params_kept="0.5636",
              pruned_from="s3_u.pt", pruned_setting="l2, uniform, round to 8")


@pytest.mark.parametrize("content, metadata, expected", [
    (None, None, "does not exist"),
    (b"not an onnx file", None, "is not a readable ONNX model"),
    ("onnx", {}, "carries no class names"),
    ("onnx", dict(NAMES, names="not json"), "carries no class names"),
    ("onnx", dict(NAMES, precision="fp16"), "is the fp16 variant; give the FP32 model"),
    ("onnx", dict(NAMES, precision="int8"), "is the int8 variant; give the FP32 model"),
    ("onnx", dict(PRUNED, pruned_setting="l2"), "pruning metadata is incomplete"),
    ("onnx", {k: v for k, v in PRUNED.items() if k != "pruned_macs_kept"}, "pruning metadata is incomplete"),
    ("onnx", NAMES, {"names": list(CLASS_NAMES), "pruning": None}),
    ("onnx", PRUNED, {"names": list(CLASS_NAMES), "pruning": {
        "ratio": 0.4, "macs_kept": 0.548, "params_kept": 0.5636, "source_weights": "s3_u.pt",
        "importance": "l2", "global": False, "round_to": 8}}),
])
def test_reads_names_and_pruning_record_or_refuses(tmp_path, content, metadata, expected):
    path = tmp_path / "m.onnx"
    if content == "onnx":
        one_conv_onnx(path, metadata)
    elif content is not None:
        path.write_bytes(content)

    def read():
        _, meta, _ = cfo.read_onnx(path)
        return {"names": cfo.class_names(meta, path), "pruning": cfo.pruning_record(meta, path)}

    if isinstance(expected, str):
        with pytest.raises(ConfigError, match=expected):
            read()
    else:
        assert read() == expected


def test_pruning_record_survives_export_and_reading_back():
    from hanja_live.train.export import pruning_provenance

    record = cfo.pruning_record(PRUNED, "m.onnx")
    assert pruning_provenance(record) == {k: v for k, v in PRUNED.items() if k.startswith("pruned_")}


@pytest.mark.parametrize("args, expected", [
    (["--onnx", "absent.onnx"], "--onnx absent.onnx does not exist"),
    (["--onnx", "MODEL", "--images", "0"], "--images 0: give at least 1"),
    (["--onnx", "MODEL", "--imgsz", "100"], "--imgsz 100: give the square training size"),
    (["--onnx", "MODEL", "--calib", "nowhere"], "--calib nowhere is not a folder"),
    (["--onnx", "MODEL", "--calib", "EMPTY"], "holds no images"),
    (["--onnx", "MODEL", "--out", "no/such/dir/x.pt"], "cannot write into"),
    (["--onnx", "FP16"], "is the fp16 variant"),
])
def test_cli_refuses_with_one_line(tmp_path, monkeypatch, args, expected):
    """Checked before torch is imported, so these run without the training extras too."""
    from hanja_live.train.checkpoint_from_onnx import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "EMPTY").mkdir()
    swap = {"MODEL": MODEL, "FP16": os.path.join(PROJECT_DIR, "models", "hanja_yolov5n.fp16.onnx")}
    args = [swap.get(a, a) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "x.pt")]
    with pytest.raises(SystemExit) as exc:
        main(args)
    message = str(exc.value)
    assert message.startswith("checkpoint_from_onnx: ") and expected in message and "\n" not in message
    assert not (tmp_path / "x.pt").exists()


# ------------------------------------------------------------------ the shipped model, round trip

@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory):
    """models/hanja_yolov5n.onnx rebuilt into a checkpoint (BatchNorm statistics on 20 images)."""
    pytest.importorskip("torch", reason="rebuilding a checkpoint needs torch (pip install -e .[train])")
    pytest.importorskip("ultralytics", reason="rebuilding a checkpoint needs ultralytics (pip install -e .[train])")
    if not os.path.isfile(MODEL):
        pytest.skip("models/hanja_yolov5n.onnx missing")
    root = tmp_path_factory.mktemp("rebuilt")
    out = root / "default.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_CONFIG_DIR", str(root / "ultralytics_cfg"))
        cfo.checkpoint_from_onnx(MODEL, CALIB, str(out), images=20)
    return out


def _detector(path):
    from hanja_live.app import load_detector
    from hanja_live.config import load_config

    return load_detector(load_config(overrides={"model": {"path": str(path)}}).model)


def test_rebuilt_checkpoint_exports_to_the_shipped_model(rebuilt, tmp_path):
    from hanja_live.train import compose
    from hanja_live.train.evaluate import box_iou
    from hanja_live.train.export import export

    export(rebuilt, (480, 832), tmp_path / "again.onnx")
    shipped = {p.key: p.value for p in onnx.load(MODEL).metadata_props}
    again = {p.key: p.value for p in onnx.load(str(tmp_path / "again.onnx")).metadata_props}
    for key in ("names", "imgsz", "stride", "layout", "pruned_ratio", "pruned_macs_kept",
                "pruned_params_kept", "pruned_setting"):
        assert again[key] == shipped[key], key

    assert again["rebuilt_from"].startswith("hanja_yolov5n.onnx, sha256 ")

    a, b = _detector(MODEL), _detector(tmp_path / "again.onnx")
    found = 0
    for seed in range(10):
        image, _, _ = compose.make_sample(np.random.default_rng(3000 + seed), "test", size=(720, 1280),
                                       layout="worksheet")
        da, _ = a(image)
        db, _ = b(image)
        found += len(da)
        # float32 weights both ways: the same boxes, up to rounding
        assert len(da) == len(db)
        np.testing.assert_array_equal(da.cls, db.cls)
        assert np.all(np.diag(box_iou(da.xyxy, db.xyxy)) > 0.999), (da.xyxy, db.xyxy)
        np.testing.assert_allclose(da.conf, db.conf, atol=1e-3)
    assert found >= 30  # worksheet pages: rows of numerals, so the comparison covers many boxes


def test_training_starts_from_the_rebuilt_network(rebuilt, tmp_path, monkeypatch):
    import torch

    from hanja_live.train import train as train_module
    from test_train_tools import write_tiny_dataset

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    monkeypatch.chdir(tmp_path)
    held = torch.load(str(rebuilt), map_location="cpu", weights_only=False)["model"].float().state_dict()
    started = {}
    real = train_module.schedule_args

    def recording(*args, **kwargs):
        schedule, callbacks = real(*args, **kwargs)
        callbacks = dict(callbacks, on_train_start=lambda trainer: started.update(
            {k: v.detach().float().cpu().clone() for k, v in trainer.model.state_dict().items()}))
        return schedule, callbacks

    monkeypatch.setattr(train_module, "schedule_args", recording)
    data_yaml = write_tiny_dataset(tmp_path / "data")
    best = train_module.train(str(data_yaml), imgsz=64, epochs=1, batch=2, workers=0, project="runs",
                              name="on", device="cpu", init_weights=str(rebuilt))
    assert best.is_file()
    assert started.keys() == held.keys()
    differ = [k for k in held if not torch.equal(started[k], held[k])]
    assert differ == [], differ
    trained = torch.load(str(best), map_location="cpu", weights_only=False)
    assert (trained.get("ema") or trained["model"]).pruning["ratio"] == 0.4


def test_batchnorm_statistics_are_those_of_the_calibration_images():
    """Training normalises by batch statistics: on the calibration images themselves they are
    the rebuilt running statistics, so training mode computes what evaluation (and the ONNX) does."""
    torch = pytest.importorskip("torch", reason="rebuilding a checkpoint needs torch (pip install -e .[train])")
    pytest.importorskip("ultralytics", reason="rebuilding a checkpoint needs ultralytics (pip install -e .[train])")
    if not os.path.isfile(MODEL):
        pytest.skip("models/hanja_yolov5n.onnx missing")
    from pathlib import Path

    graph_model, meta, tensors = cfo.read_onnx(MODEL)
    net = cfo.rebuild_network(graph_model.graph, tensors, "yolov5n.yaml", cfo.class_names(meta, MODEL), MODEL,
                              pruned=True)
    images = cfo.letterboxed(sorted(Path(CALIB).glob("*.jpg"))[:4], (160, 160))
    batch = torch.from_numpy(np.concatenate(images))  # (4, 3, 160, 160)

    def outputs(network, batch_statistics):
        network = copy.deepcopy(network).eval()  # training mode would move the running statistics
        for m in network.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.train(batch_statistics)
        with torch.no_grad():
            return network(batch)[0]

    evaluated = outputs(net, False)
    # m = 0, v = 1: training would start from another function
    assert (outputs(net, True) - evaluated).abs().max() > 1.0
    cfo.calibrate_batchnorm(net, images, log=lambda *a, **k: None)
    assert (outputs(net, False) - evaluated).abs().max() < 1e-3  # the same function ...
    assert (outputs(net, True) - evaluated).abs().max() < 1e-2  # ... in training mode too


@pytest.fixture(scope="module")
def unpruned_onnx(tmp_path_factory):
    """A freshly built (untrained) ten-class yolov5n exported at 64x96: an unpruned network."""
    torch = pytest.importorskip("torch", reason="rebuilding a checkpoint needs torch (pip install -e .[train])")
    pytest.importorskip("ultralytics", reason="rebuilding a checkpoint needs ultralytics (pip install -e .[train])")
    from ultralytics.nn.tasks import DetectionModel

    from hanja_live.train.export import export

    root = tmp_path_factory.mktemp("unpruned")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_CONFIG_DIR", str(root / "ultralytics_cfg"))
        net = DetectionModel("yolov5n.yaml", nc=len(CLASS_NAMES), verbose=False)
        net.names = dict(enumerate(CLASS_NAMES))
        torch.save({"model": net, "ema": None, "epoch": -1}, str(root / "random.pt"))
        export(root / "random.pt", (64, 96), root / "random.onnx")
    return root / "random.onnx"


@pytest.mark.parametrize("model, expected", [
    ("yolov5n", None),
    ("yolov5s", r"model.0.conv.weight is \(16, 3, 6, 6\), \(32, 3, 6, 6\) in yolov5s.yaml; give the --model it"),
    ("yolov8n", r"model.0.conv.weight is \(16, 3, 6, 6\), \(16, 3, 3, 3\) in yolov8n.yaml; give the --model it"),
    ("nosuch", "--model nosuch: no such architecture"),
])
def test_an_unpruned_network_must_have_the_widths_of_its_model(unpruned_onnx, tmp_path, monkeypatch, model,
                                                              expected):
    import torch

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    out = tmp_path / "x.pt"
    if expected is not None:
        with pytest.raises(ConfigError, match=expected):
            cfo.checkpoint_from_onnx(str(unpruned_onnx), CALIB, str(out), model=model, images=4, imgsz=64)
        assert not out.exists()
        return
    ckpt = cfo.checkpoint_from_onnx(str(unpruned_onnx), CALIB, str(out), model=model, images=4, imgsz=64)
    saved = torch.load(str(out), map_location="cpu", weights_only=False)
    assert "pruning" not in saved and not hasattr(saved["model"], "pruning")
    assert saved["model"].state_dict().keys() == ckpt["model"].state_dict().keys()
    assert saved["from_onnx"]["path"] == str(unpruned_onnx)
