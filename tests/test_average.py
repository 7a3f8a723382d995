"""Weight averaging (hanja_live.train.average) of real, randomly initialised YOLOv5n checkpoints.

Needs torch and ultralytics (pip install -e .[train]); skipped without them.
"""

import numpy as np
import pytest

from hanja_live import CLASS_NAMES
from hanja_live.errors import ConfigError

torch = pytest.importorskip("torch", reason="averaging needs torch (pip install -e .[train])")
pytest.importorskip("ultralytics", reason="averaging needs ultralytics (pip install -e .[train])")

from hanja_live.train import average  # noqa: E402  (after the skips: it needs torch)


def save_detector(path, seed, nc=len(CLASS_NAMES), ema=False):
    """A yolov5n checkpoint with random weights (and BatchNorm statistics), as ultralytics saves one."""
    from hanja_live.train.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(seed)
    model = DetectionModel("yolov5n.yaml", nc=nc, verbose=False)
    model.names = dict(enumerate(CLASS_NAMES[:nc]))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data.uniform_(0.2, 1.5)
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.num_batches_tracked.fill_(seed + 1)
    key = "ema" if ema else "model"
    torch.save({key: model.half(), "train_args": {"imgsz": 64}, "marker": seed, "epoch": 9,
                "best_fitness": 0.5, "train_metrics": {"fitness": 0.5}}, str(path))
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    # the third is an unstripped checkpoint (network under "ema"), as a run cut short leaves it
    return [save_detector(d / "a.pt", 0), save_detector(d / "b.pt", 1),
            save_detector(d / "c.pt", 2, ema=True)]


def state(path):
    model, _ = average.load(path)
    return model.state_dict()


def test_average_is_the_mean_of_each_tensor(checkpoints, tmp_path):
    out = tmp_path / "avg.pt"
    average.average([str(p) for p in checkpoints], str(out))
    inputs = [state(p) for p in checkpoints]
    got = state(out)
    assert set(got) == set(inputs[0])
    floats = [n for n, t in got.items() if t.is_floating_point()]
    assert any(n.endswith("running_mean") for n in floats) and any(n.endswith(".conv.weight") for n in floats)
    for name in floats:
        want = sum(sd[name].double() for sd in inputs) / len(inputs)
        # stored in float16, as ultralytics stores its EMA weights
        np.testing.assert_allclose(got[name].double().numpy(), want.numpy(), rtol=2e-3, atol=2e-3,
                                   err_msg=name)
    counters = [n for n, t in got.items() if n.endswith("num_batches_tracked")]
    assert counters and all(int(got[n]) == 1 for n in counters)  # the first input's
    # a real average, not a copy of one input
    w = floats[0]
    assert not any(torch.equal(got[w], sd[w].half().float()) for sd in inputs)


def test_averaged_checkpoint_keeps_the_first_ones_record(checkpoints, tmp_path):
    out = tmp_path / "avg.pt"
    average.average([str(p) for p in checkpoints[:2]], str(out))
    ckpt = torch.load(str(out), map_location="cpu", weights_only=False)
    assert ckpt["marker"] == 0 and ckpt["ema"] is None and ckpt["optimizer"] is None
    assert ckpt["epoch"] == -1 and ckpt["best_fitness"] is None and "train_metrics" not in ckpt
    assert not (tmp_path / "avg.pt.part").exists()
    assert ckpt["model"].names == dict(enumerate(CLASS_NAMES))
    assert next(ckpt["model"].parameters()).dtype == torch.float16
    assert [a["path"] for a in ckpt["averaged_from"]] == [str(p) for p in checkpoints[:2]]
    assert all(len(a["sha256"]) == 64 for a in ckpt["averaged_from"])


@pytest.fixture(scope="module")
def other_network(tmp_path_factory):
    return save_detector(tmp_path_factory.mktemp("other") / "three_classes.pt", 5, nc=3)


@pytest.mark.parametrize("which, message", [
    ("one", "at least two checkpoints"),
    ("missing", "does not exist"),
    ("not_torch", "not a readable torch checkpoint"),
    ("no_network", "holds no network"),
    ("other_network", "is not the network of"),
    ("other_names", "names its classes differently"),
])
def test_refuses(checkpoints, other_network, tmp_path, which, message):
    bad = tmp_path / "bad.pt"
    if which == "not_torch":
        bad.write_text("not a checkpoint")
    elif which == "no_network":
        torch.save({"epoch": 3}, str(bad))
    elif which == "other_names":
        ckpt = torch.load(str(checkpoints[1]), weights_only=False)
        ckpt["model"].names = dict(enumerate(reversed(CLASS_NAMES)))
        torch.save(ckpt, str(bad))
    paths = {
        "one": [checkpoints[0]],
        "missing": [checkpoints[0], tmp_path / "absent.pt"],
        "not_torch": [checkpoints[0], bad],
        "no_network": [checkpoints[0], bad],
        "other_network": [checkpoints[0], other_network],
        "other_names": [checkpoints[0], bad],
    }[which]
    out = tmp_path / "avg.pt"
    with pytest.raises(ConfigError, match=message):
        average.average([str(p) for p in paths], str(out))
    assert not out.exists()


def test_cli_prints_one_line_on_error(checkpoints, tmp_path):
    with pytest.raises(SystemExit) as exc:
        average.main([str(checkpoints[0]), str(tmp_path / "absent.pt"), "--out", str(tmp_path / "o.pt")])
    assert str(exc.value).startswith("average: ") and "absent.pt does not exist" in str(exc.value)
    assert "\n" not in str(exc.value)


def test_export_records_the_average(checkpoints, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    import yaml

    from hanja_live.train.export import export, sha256_of

    out = tmp_path / "avg.pt"
    average.average([str(p) for p in checkpoints[:2]], str(out))
    export(str(out), imgsz=(64, 64), out=str(tmp_path / "avg.onnx"), simplify=False)
    meta = yaml.safe_load((tmp_path / "avg.yaml").read_text(encoding="utf-8"))
    hashes = [sha256_of(p)[:12] for p in checkpoints[:2]]
    assert meta["averaged_from"] == "2 checkpoints, sha256 " + " ".join(hashes)
