"""Configuration: one YAML file shipped in the package, overridden by a user file and flags.

The result is a ``Config`` of small named tuples; library code receives plain keyword
arguments taken from it, never the argparse namespace.
"""

import collections
import copy
import os
from typing import Any, Dict, List, Optional, Tuple

import yaml

from .errors import ConfigError

DEFAULT_CONFIG_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "default.yaml")

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))

# section -> key -> (allowed types, allowed values or None)
SCHEMA = collections.OrderedDict(  # type: Dict[str, Dict[str, Tuple[Tuple[type, ...], Optional[Tuple[Any, ...]]]]]
    [
        ("model", collections.OrderedDict([
            ("path", ((str,), None)),
            ("verifier", (_OPT_STR, None)),
            ("backend", ((str,), ("auto", "tensorrt", "onnxruntime"))),
            ("precision", ((str,), ("auto", "fp16", "fp32"))),
            ("engine_dir", (_OPT_STR, None)),
            ("workspace_mb", ((int,), None)),
            ("conf", (_NUM, None)),
            ("iou", (_NUM, None)),
            ("max_det", ((int,), None)),
            ("threads", ((int,), None)),
            ("workers", ((int,), None)),
        ])),
        ("source", collections.OrderedDict([
            ("uri", ((str, int), None)),
            ("width", ((int,), None)),
            ("height", ((int,), None)),
            ("fps", ((int,), None)),
            ("csi_flip", ((int,), tuple(range(8)))),
            ("read_timeout_s", (_NUM, None)),
            ("loop", ((bool,), None)),
            ("reconnect", ((bool,), None)),
            ("reconnect_max_s", (_NUM, None)),
        ])),
        ("display", collections.OrderedDict([
            ("window", ((bool,), None)),
            ("kiosk", ((bool,), None)),
            ("title", ((str,), None)),
            ("show_fps", ((bool,), None)),
            ("kiosk_quit_keys", ((str,), None)),
        ])),
        ("output", collections.OrderedDict([
            ("record", (_OPT_STR, None)),
            ("json", (_OPT_STR, None)),
            ("overwrite", ((bool,), None)),
            ("record_segment_s", (_OPT_NUM, None)),
            ("min_free_mb", (_NUM, None)),
        ])),
    ]
)

def _record_type(name, fields):
    # type: (str, List[str]) -> Any
    """A named tuple type with these fields; Any to a type checker, which cannot read fields
    that come from SCHEMA."""
    return collections.namedtuple(name, fields)


ModelConfig = _record_type("ModelConfig", list(SCHEMA["model"]))
SourceConfig = _record_type("SourceConfig", list(SCHEMA["source"]))
DisplayConfig = _record_type("DisplayConfig", list(SCHEMA["display"]))
OutputConfig = _record_type("OutputConfig", list(SCHEMA["output"]))
Config = _record_type("Config", list(SCHEMA))
_SECTION_TYPES = {"model": ModelConfig, "source": SourceConfig, "display": DisplayConfig,
                  "output": OutputConfig}

_RANGES = {("model", "conf"): (0.0, 1.0), ("model", "iou"): (0.0, 1.0),
           ("model", "max_det"): (1, 100000), ("model", "workspace_mb"): (16, 1 << 20),
           ("model", "threads"): (0, 256), ("model", "workers"): (0, 16),
           ("source", "width"): (16, 16384), ("source", "height"): (16, 16384),
           ("source", "fps"): (1, 1000), ("source", "read_timeout_s"): (0.01, 3600.0),
           ("source", "reconnect_max_s"): (0.1, 3600.0),
           ("output", "record_segment_s"): (0.0, 86400.0), ("output", "min_free_mb"): (0.0, 1e6)}


def valid_quit_keys(keys):
    # type: (object) -> bool
    """display.kiosk_quit_keys: 2 or more printable ASCII keys, no spaces (typed in a row)."""
    return isinstance(keys, str) and len(keys) >= 2 and all(" " < c < "\x7f" for c in keys)


def _load_yaml(path):
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read config file %s (%s); check the path given to --config"
                          % (path, exc.strerror or exc))
    except yaml.YAMLError as exc:
        raise ConfigError("config file %s is not valid YAML: %s"
                          % (path, str(exc).replace("\n", " ")))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("config file %s must hold a mapping of sections (%s)"
                          % (path, ", ".join(SCHEMA)))
    return data


def _check_value(where, section, key, value):
    types, choices = SCHEMA[section][key]
    # bool is an int subclass; a flag written as 1 where true/false is meant is a mistake
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        names = " or ".join("null" if t is type(None) else t.__name__ for t in types)
        raise ConfigError("%s: %s.%s must be %s, got %r" % (where, section, key, names, value))
    if choices is not None and value not in choices:
        raise ConfigError("%s: %s.%s must be one of %s, got %r"
                          % (where, section, key, ", ".join(str(c) for c in choices), value))
    if (section, key) == ("display", "kiosk_quit_keys") and not valid_quit_keys(value):
        raise ConfigError("%s: display.kiosk_quit_keys must be 2 or more printable ASCII keys "
                          "without spaces, typed in a row, e.g. hanja; got %r" % (where, value))
    bounds = _RANGES.get((section, key))
    if bounds is not None and value is not None and not (bounds[0] <= value <= bounds[1]):
        raise ConfigError("%s: %s.%s must lie in [%s, %s], got %r"
                          % (where, section, key, bounds[0], bounds[1], value))


def merge(base, override, where):
    """Return ``base`` updated by ``override`` (both section -> key -> value), checked."""
    merged = copy.deepcopy(base)
    for section, values in override.items():
        if section not in SCHEMA:
            raise ConfigError("%s: unknown section '%s' (known: %s)"
                              % (where, section, ", ".join(SCHEMA)))
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError("%s: section '%s' must be a mapping of keys" % (where, section))
        for key, value in values.items():
            if key not in SCHEMA[section]:
                raise ConfigError("%s: unknown key '%s.%s' (known: %s)"
                                  % (where, section, key, ", ".join(SCHEMA[section])))
            _check_value(where, section, key, value)
            merged.setdefault(section, {})[key] = value
    return merged


def load_config(path=None, overrides=None):
    # type: (...) -> Any
    """Defaults, then the file at ``path``, then ``overrides`` (from the command line)."""
    values = merge({}, _load_yaml(DEFAULT_CONFIG_PATH), DEFAULT_CONFIG_PATH)
    if path is not None:
        values = merge(values, _load_yaml(path), path)
    if overrides:
        values = merge(values, overrides, "command line")
    sections = []
    for section, keys in SCHEMA.items():
        missing = [k for k in keys if k not in values.get(section, {})]
        if missing:
            raise ConfigError("%s lacks %s.%s" % (DEFAULT_CONFIG_PATH, section, missing[0]))
        sections.append(_SECTION_TYPES[section](**values[section]))
    return Config(*sections)
