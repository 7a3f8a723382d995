"""Config: defaults, user file and flags merged in that order; mistakes named precisely."""

import pytest

from hanja_live.config import load_config
from hanja_live.errors import ConfigError


def test_defaults_load_and_are_typed():
    cfg = load_config()
    assert cfg.model.conf == 0.25 and cfg.model.backend == "auto"
    assert cfg.source.uri == "demo" and cfg.display.window is True


def test_file_then_flags_override(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  conf: 0.5\n  iou: 0.6\nsource:\n  uri: clip.mp4\n")
    cfg = load_config(str(path), {"model": {"conf": 0.1}})
    assert (cfg.model.conf, cfg.model.iou, cfg.source.uri) == (0.1, 0.6, "clip.mp4")
    assert cfg.model.max_det == 100


@pytest.mark.parametrize(
    "text, needle",
    [
        ("model:\n  conff: 0.3\n", "unknown key 'model.conff'"),
        ("modle:\n  conf: 0.3\n", "unknown section 'modle'"),
        ("model:\n  conf: high\n", "model.conf must be int or float"),
        ("model:\n  conf: 1.5\n", "model.conf must lie in [0.0, 1.0]"),
        ("model:\n  backend: cuda\n", "model.backend must be one of auto, tensorrt, onnxruntime"),
        ("display:\n  window: 1\n", "display.window must be bool"),
        ("source:\n  width: true\n", "source.width must be int"),
        ("source:\n  csi_flip: 9\n", "source.csi_flip must be one of"),
        ("- a\n- b\n", "must hold a mapping"),
        ("model: [1, 2]\n", "section 'model' must be a mapping"),
        ("model:\n  conf: [0.3\n", "not valid YAML"),
        ("!!python/object/apply:os.system ['true']\n", "not valid YAML"),
    ],
)
def test_bad_config_named_in_error(tmp_path, text, needle):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert needle in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file_named(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file .*nope.yaml"):
        load_config(str(tmp_path / "nope.yaml"))
