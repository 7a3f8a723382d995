"""What the app needs to know about a model: class names, input size, stride, layout.

Read from the ONNX file's metadata (``metadata_props``) or from a YAML file beside the
model (``<model>.yaml``, same stem); never hard-coded in the decoder.

Metadata keys (all strings, as ONNX stores them):
  names       JSON list ["一", ...] or a Python-literal dict {0: "一", ...} (ultralytics)
  imgsz       "[H, W]" or "H"
  stride      "32"
  layout      "anchor_based" (1, N, 5+nc) or "anchor_free" (1, 4+nc, N); optional — the
              decoder can tell them apart by shape
"""

import ast
import json
import os
from typing import Dict, NamedTuple, Optional, Tuple

import yaml

from .errors import ModelError

LAYOUTS = ("anchor_based", "anchor_free")


class ModelInfo(NamedTuple):
    names: Tuple[str, ...]
    input_hw: Tuple[int, int]  # (H, W) of the network input
    stride: int
    layout: Optional[str]  # one of LAYOUTS, or None: decide by output shape


def _parse_names(value):
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    if isinstance(value, dict):
        return tuple(str(value[k]) for k in sorted(value, key=int))
    text = str(value).strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = ast.literal_eval(text)
    return _parse_names(parsed)


def _parse_hw(value):
    if isinstance(value, str):
        value = yaml.safe_load(value)
    if isinstance(value, int):
        return (value, value)
    h, w = (int(v) for v in value)
    return (h, w)


def model_info_from_mapping(meta, source):
    # type: (Dict[str, object], str) -> ModelInfo
    """Build a ModelInfo from metadata; ``source`` names where it came from, for errors."""
    try:
        names = _parse_names(meta["names"])
        input_hw = _parse_hw(meta["imgsz"])
        stride = int(str(meta.get("stride", 32)))
    except KeyError as exc:
        raise ModelError("%s has no '%s' metadata; re-export the model with hanja_live.train.export "
                         "or put a %s beside it" % (source, exc.args[0], "YAML file"))
    except (ValueError, SyntaxError, TypeError) as exc:
        raise ModelError("%s has unreadable metadata (%s); re-export the model" % (source, exc))
    layout = meta.get("layout")
    if layout is not None and layout not in LAYOUTS:
        raise ModelError("%s: metadata layout '%s' is not one of %s" % (source, layout, ", ".join(LAYOUTS)))
    if not names:
        raise ModelError("%s: metadata lists no class names" % source)
    if input_hw[0] % stride or input_hw[1] % stride:
        raise ModelError("%s: input size %dx%d is not a multiple of stride %d"
                         % (source, input_hw[1], input_hw[0], stride))
    return ModelInfo(names=names, input_hw=input_hw, stride=stride, layout=layout)


def sidecar_path(model_path):
    return os.path.splitext(model_path)[0] + ".yaml"


def load_sidecar(model_path):
    # type: (str) -> Optional[ModelInfo]
    """ModelInfo from ``<model>.yaml`` beside the model, or None when there is none."""
    path = sidecar_path(model_path)
    if not os.path.isfile(path):
        return None
    with open(path, "r", encoding="utf-8") as f:
        try:
            meta = yaml.safe_load(f) or {}
        except yaml.YAMLError as exc:
            raise ModelError("%s is not valid YAML (%s); fix or delete it" % (path, exc))
    if not isinstance(meta, dict):
        raise ModelError("%s must be a mapping with names, imgsz and stride" % path)
    return model_info_from_mapping(meta, path)
