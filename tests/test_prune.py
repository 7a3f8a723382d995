"""Channel pruning (hanja_live.train.prune) on a real, randomly initialised YOLOv5n.

Needs torch, ultralytics and torch-pruning (pip install -e .[train]); skipped without them.
The network is ultralytics' yolov5n.yaml with ten classes, pruned at a small input size; the
end-to-end case fine-tunes it for one CPU epoch on images of the real data set generator and
exports it through hanja_live.train.export.
"""

import json

import numpy as np
import pytest

from hanja_live import CLASS_NAMES
from hanja_live.errors import ConfigError

torch = pytest.importorskip("torch", reason="pruning needs torch (pip install -e .[train])")
pytest.importorskip("ultralytics", reason="pruning needs ultralytics (pip install -e .[train])")
pytest.importorskip("torch_pruning", reason="pruning needs torch-pruning (pip install -e .[train])")

from hanja_live.train import prune  # noqa: E402  (after the skips: it needs torch)

IMGSZ = 64


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A yolov5n checkpoint with random weights, saved the way ultralytics saves one."""
    from hanja_live.train.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel("yolov5n.yaml", nc=len(CLASS_NAMES), verbose=False)
    model.names = dict(enumerate(CLASS_NAMES))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # fresh ones are all 1; trained ones spread
            m.weight.data.uniform_(0.2, 1.5)
    for p in model.parameters():
        p.requires_grad_(False)  # as in ultralytics' EMA checkpoints
    # not "yolov5n.pt": with that in the name ultralytics looks for "yolov5nu.pt" online
    path = tmp_path_factory.mktemp("w") / "random_detector.pt"
    torch.save({"model": model.half(), "train_args": {"imgsz": IMGSZ}}, str(path))
    return path


def head_shapes(model):
    """Output channels of the head's output convolutions (their inputs may be pruned)."""
    return [c.out_channels for m in prune.output_layers(model) for c in m.modules()
            if isinstance(c, torch.nn.Conv2d)]


def conv_widths(model):
    return {n: m.out_channels for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d)}


PRUNE_CASES = [
    # id, ratio, importance, global ranking, round_to, max layer ratio, exception or None
    ("uniform_l2_30", 0.3, "l2", False, 8, 0.75, None),
    ("global_l2_30", 0.3, "l2", True, 8, 0.75, None),
    ("global_bn_50", 0.5, "bn", True, 8, 0.75, None),
    ("uniform_l1_40_any_width", 0.4, "l1", False, 1, 0.75, None),
    ("global_lamp_20", 0.2, "lamp", True, 8, 0.75, None),
    ("ratio_above_one", 1.2, "l2", True, 8, 0.75, ConfigError),
    ("ratio_zero", 0.0, "l2", True, 8, 0.75, ConfigError),
    ("unreachable_with_layer_cap", 0.9, "l2", False, 8, 0.2, ConfigError),
    ("unknown_importance", 0.3, "taylor", True, 8, 0.75, ConfigError),
]


@pytest.mark.parametrize("ratio,importance,global_pruning,round_to,cap,error",
                         [c[1:] for c in PRUNE_CASES], ids=[c[0] for c in PRUNE_CASES])
def test_prune_reaches_mac_target(weights, ratio, importance, global_pruning, round_to, cap, error):
    model, _ = prune.load_detector(weights)
    before = conv_widths(model)
    head_before = head_shapes(model)
    x = torch.rand(1, 3, IMGSZ, IMGSZ)
    if error is not None:
        with pytest.raises(error):
            prune.prune_to_macs(model, (IMGSZ, IMGSZ), ratio, importance, global_pruning,
                                round_to, cap, log=lambda *_: None)
        return
    info = prune.prune_to_macs(model, (IMGSZ, IMGSZ), ratio, importance, global_pruning,
                               round_to, cap, log=lambda *_: None)
    macs, params = prune.count_macs(model, (IMGSZ, IMGSZ))
    assert macs == info["macs_after"] <= (1 - ratio) * info["macs_before"]
    assert macs > (1 - ratio - 0.15) * info["macs_before"]  # small steps: no big overshoot
    assert params < info["params_before"]
    after = conv_widths(model)
    changed = {n: w for n, w in after.items() if w != before[n]}
    assert changed, "no convolution lost a channel"
    for name, width in changed.items():
        assert round_to <= width < before[name]
        assert width % round_to == 0, name
        if not global_pruning:  # every layer loses about the same share
            assert width >= round(before[name] * (1 - cap) / round_to) * round_to
    # the output convolutions of the head keep their channels: the output layout stays
    assert head_shapes(model) == head_before
    model.eval()
    with torch.no_grad():
        out = model(x)[0]
    n_anchors = sum((IMGSZ // s) ** 2 for s in (8, 16, 32))
    assert out.shape == (1, 4 + len(CLASS_NAMES), n_anchors)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("ratio,name", [(0.3, "p30"), (0.125, "p12.5"), (0.5, "p50")])
def test_run_name(ratio, name):
    assert prune.run_name(ratio) == name


ARG_CASES = [
    # id, extra arguments, what goes wrong
    ("two_devices", ["--device", "0,1"], "one device"),
    ("missing_weights", ["--weights", "nothing.pt"], "does not exist"),
    ("repeated_ratio", ["--ratio", "0.3"], "repeat"),
]


@pytest.mark.parametrize("extra,message", [c[1:] for c in ARG_CASES], ids=[c[0] for c in ARG_CASES])
def test_cli_refuses(weights, tmp_path, capsys, extra, message):
    argv = ["--weights", str(weights), "--ratio", "0.3", "--prune-only", "--imgsz", str(IMGSZ),
            "--project", str(tmp_path / "p")] + extra
    with pytest.raises(SystemExit) as exc:
        prune.main(argv)
    assert message in str(exc.value)


def test_prune_finetune_export_on_cpu(weights, tmp_path, monkeypatch):
    """Prune 30 % of the MACs, fine-tune one CPU epoch, export: the ONNX is the pruned network."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from hanja_live.backends.loader import load_backend
    from hanja_live.train import dataset

    monkeypatch.setenv("YOLO_CONFIG_DIR", str(tmp_path / "ultralytics_cfg"))
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    dataset.generate(str(data), {"train": 4, "val": 2}, seed=0, workers=1, long_side=128,
                     progress=False)
    rows = prune.prune_and_finetune(
        weights, data / "data.yaml", [0.3], imgsz=IMGSZ, epochs=1, batch=2, workers=0,
        project=tmp_path / "runs", device="cpu", log=lambda *_: None)
    row = rows[0]
    assert row["name"] == "p30" and row["macs_kept"] <= 0.7
    summary = json.loads((tmp_path / "runs" / "prune_summary.json").read_text(encoding="utf-8"))
    assert summary[0]["best"] == row["best"]

    # the fine-tuned checkpoint holds the pruned widths, not yolov5n.yaml's
    from ultralytics.nn.tasks import load_checkpoint

    pruned, _ = load_checkpoint(row["pruned"])
    tuned, _ = load_checkpoint(row["best"])
    original, _ = load_checkpoint(str(weights))
    assert conv_widths(tuned) == conv_widths(pruned) != conv_widths(original)
    assert tuned.pruning["ratio"] == 0.3
    assert not all(torch.equal(a, b) for a, b in zip(tuned.state_dict().values(),
                                                      pruned.state_dict().values()))

    # training on from the pruned checkpoint keeps its widths (the stock loader would build
    # yolov5n.yaml's and copy in only what fits)
    from hanja_live.train import train as train_mod

    assert train_mod.pruned_ratio(row["best"]) == 0.3 and train_mod.pruned_ratio(str(weights)) is None
    more = train_mod.train(str(data / "data.yaml"), imgsz=IMGSZ, epochs=2, batch=2, workers=0,
                           project=str(tmp_path / "more"), name="m", device="cpu",
                           init_weights=row["best"], save_period=1)
    again, _ = load_checkpoint(str(more))
    assert conv_widths(again) == conv_widths(pruned) and again.pruning["ratio"] == 0.3
    # --save-period 1 keeps one checkpoint per epoch (to average), each the pruned network
    per_epoch = sorted(more.parent.glob("epoch*.pt"))
    assert len(per_epoch) == 2, per_epoch
    assert conv_widths(load_checkpoint(str(per_epoch[-1]))[0]) == conv_widths(pruned)

    # ONNX: fewer weights than the unpruned network, same output layout, loads in the app
    sess = ort.InferenceSession(row["onnx"], providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: np.zeros((1, 3, IMGSZ, IMGSZ), np.float32)})
    assert out[0].shape == (1, 4 + len(CLASS_NAMES), 84)
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["pruned_macs_kept"] == "%.4f" % row["macs_kept"]
    import onnx

    n_weights = sum(int(np.prod(t.dims)) for t in onnx.load(row["onnx"]).graph.initializer)
    assert n_weights < sum(p.numel() for p in original.parameters())
    backend = load_backend(row["onnx"], backend="onnxruntime", log=lambda *_: None)
    assert backend.info.names == CLASS_NAMES and backend.info.input_hw == (IMGSZ, IMGSZ)
    backend.input[...] = 0.5
    assert backend.infer()[0].shape == (1, 14, 84)
