"""Config: defaults, user file and flags merged in that order; mistakes named precisely."""

import pytest

from hanja_live.config import load_config
from hanja_live.errors import ConfigError


def test_defaults_load_and_are_typed():
    cfg = load_config()
    assert cfg.model.conf == 0.4 and cfg.model.backend == "auto"
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
        ("model:\n  path: !!python/name:os.system\n", "not valid YAML"),
        ("display:\n  kiosk_quit_keys: q\n", "display.kiosk_quit_keys must be 2 or more"),
        ("display:\n  kiosk_quit_keys: 'a b'\n", "display.kiosk_quit_keys must be 2 or more"),
        ("display:\n  kiosk_quit_keys: 12\n", "display.kiosk_quit_keys must be str"),
        ("output:\n  record_segment_s: -1\n", "output.record_segment_s must lie in [0.0, 86400.0]"),
        ("output:\n  record_segment_s: ten\n", "output.record_segment_s must be int or float or null"),
        ("output:\n  min_free_mb: -5\n", "output.min_free_mb must lie in"),
        ("source:\n  reconnect: 1\n", "source.reconnect must be bool"),
        ("source:\n  reconnect_max_s: 0\n", "source.reconnect_max_s must lie in [0.1, 3600.0]"),
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


def test_reliability_keys_load(tmp_path):
    path = tmp_path / "kiosk.yaml"
    path.write_text("source:\n  reconnect: false\n  reconnect_max_s: 30\n"
                    "display:\n  kiosk_quit_keys: Zx9!\n"
                    "output:\n  record_segment_s: 60\n  min_free_mb: 0\n")
    cfg = load_config(str(path))
    assert (cfg.source.reconnect, cfg.source.reconnect_max_s) == (False, 30)
    assert cfg.display.kiosk_quit_keys == "Zx9!"
    assert (cfg.output.record_segment_s, cfg.output.min_free_mb) == (60, 0)
    defaults = load_config()
    assert defaults.source.reconnect is True and defaults.output.record_segment_s is None
