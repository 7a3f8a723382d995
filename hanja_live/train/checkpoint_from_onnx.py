"""An exported model back into a checkpoint that training can start from.

    python -m hanja_live.train.checkpoint_from_onnx --onnx models/hanja_yolov5n.onnx --out default.pt
    python -m hanja_live.train.train --init-weights default.pt --data D/data.yaml ...

The committed ONNX is the one copy of the weights that outlives a session: the lent GPU and the
scratch disks start bare, so a checkpoint kept only there is lost. This rebuilds it.

* The export kept ultralytics' tensor names (``model.4.cv1.conv.weight``), so each Conv of the
  graph goes back into the module of that name. A pruned network (``pruned_*`` metadata) comes
  back with the ONNX's channel widths and its pruning record on the module, and
  ``train --init-weights`` trains it as the network it holds; an unpruned one must have
  ``--model``'s widths.
* The export folded every BatchNorm into its convolution (W' = W * g / s, b' = b - m * g / s).
  That cannot be undone, but a BatchNorm can be rebuilt that gives the same outputs: with the
  convolution's output y = W' * x, mean m and variance v per channel (measured on ``--calib``
  images), BN(y) = (y - m) / sqrt(v + eps) * sqrt(v + eps) + (b' + m) = y + b'. Evaluation
  uses the running m and v, so the rebuilt network computes the ONNX's outputs (checked against
  ONNX Runtime before writing); training normalises by each batch's own statistics, which are
  close to m and v on images like the calibration ones at the training scale (``--imgsz``), so
  training starts near the ONNX's function too (m = 0, v = 1 would make it start from a network
  that normalises every layer afresh).
* The checkpoint keeps the weights in float32, so the check above covers what is written
  (rounded to float16, as ultralytics stores its EMA weights, the raw outputs moved by up to 5 px
  of input on some candidate, though V1280's scores did not change), and records the ONNX it came
  from (path and SHA-256) under ``from_onnx``; an export of it carries that on as ``rebuilt_from``.
"""

import argparse
import datetime
import json
import os
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from hanja_live.errors import ConfigError, HanjaLiveError
from hanja_live.paths import resolve
from hanja_live.train.average import save_checkpoint
from hanja_live.train.export import run_onnxruntime, sha256_of, static_input_hw
from hanja_live.train.quantize import calibration_images

# outputs of the rebuilt network against ONNX Runtime's, on the same input: float32 rounding
# through ~60 layers, in the unit of the outputs (pixels of network input for boxes, 0..1 scores)
MAX_BOX_GAP = 0.05
MAX_SCORE_GAP = 1e-3


def read_onnx(path):
    """(onnx model, metadata dict, {initializer name: float32 array}); ConfigError for a file
    that is missing, unreadable, or not the FP32 model of hanja_live.train.export."""
    import onnx
    from onnx import numpy_helper

    if not Path(path).is_file():
        raise ConfigError(f"--onnx {path} does not exist; give a model exported by "
                          f"hanja_live.train.export (models/hanja_yolov5n.onnx)")
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, OSError, ... for a bad file
        raise ConfigError(f"--onnx {path} is not a readable ONNX model ({exc})") from None
    meta = {p.key: p.value for p in model.metadata_props}
    precision = meta.get("precision", "fp32")
    if precision != "fp32":
        # float16 weights are rounded, INT8 ones quantized: neither is the trained network
        raise ConfigError(f"--onnx {path} is the {precision} variant; give the FP32 model written "
                          f"by hanja_live.train.export (models/hanja_yolov5n.onnx)")
    tensors = {t.name: numpy_helper.to_array(t).astype(np.float32) for t in model.graph.initializer}
    return model, meta, tensors


def class_names(meta, path) -> List[str]:
    try:
        names = json.loads(meta["names"])
    except (KeyError, ValueError):
        raise ConfigError(f"--onnx {path} carries no class names in its metadata; give a model "
                          f"exported by hanja_live.train.export") from None
    return [str(n) for n in names]


def pruning_record(meta, path) -> Optional[Dict[str, object]]:
    """The record hanja_live.train.prune put on the module, back from the export's pruned_* keys
    (export.pruning_provenance writes them, and writes them again from this record)."""
    if "pruned_ratio" not in meta:
        return None
    try:
        # pruned_setting: "l2, uniform, round to 8"
        importance, scope, rounding = [part.strip() for part in meta["pruned_setting"].split(",")]
        return {
            "ratio": float(meta["pruned_ratio"]),
            "macs_kept": float(meta["pruned_macs_kept"]),
            "params_kept": float(meta["pruned_params_kept"]),
            "source_weights": meta.get("pruned_from", "?"),
            "importance": importance, "global": scope == "global",
            "round_to": int(rounding.split()[-1]),
        }
    except (KeyError, ValueError):
        raise ConfigError(f"--onnx {path}: its pruning metadata is incomplete or unreadable "
                          f"(pruned_ratio, pruned_macs_kept, pruned_params_kept, pruned_setting); "
                          f"give a model exported by hanja_live.train.export") from None


def _fresh_network(model_cfg, nc, path):
    from ultralytics.nn.tasks import DetectionModel

    try:
        return DetectionModel(model_cfg, nc=nc, verbose=False)
    except FileNotFoundError:
        raise ConfigError(f"--model {Path(model_cfg).stem}: no such architecture; give the one "
                          f"{path} was trained as (yolov5n, yolov5s, ... or a model .yaml)") from None


def _conv_tensors(node, tensors, path):
    """(weight (out, in / groups, kh, kw), bias (out,) or None) of an ONNX Conv node."""
    if node.input[1] not in tensors or (len(node.input) > 2 and node.input[2]
                                        and node.input[2] not in tensors):
        raise ConfigError(f"--onnx {path}: convolution {node.name} takes its weights from another "
                          f"node, not from stored tensors; give the FP32 model of "
                          f"hanja_live.train.export")
    bias = tensors[node.input[2]] if len(node.input) > 2 and node.input[2] else None
    return tensors[node.input[1]], bias


def _rebuilt_conv(node, weight, bias, old, with_bn):
    """A Conv2d like ``old`` with the ONNX node's weights (and widths); the bias goes to the
    BatchNorm instead when there is one."""
    import torch

    attrs = {a.name: a for a in node.attribute}
    groups = int(attrs["group"].i) if "group" in attrs else 1
    conv = torch.nn.Conv2d(weight.shape[1] * groups, weight.shape[0], old.kernel_size,
                           stride=old.stride, padding=old.padding, dilation=old.dilation,
                           groups=groups, bias=not with_bn and bias is not None)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(weight))
        if conv.bias is not None:
            conv.bias.copy_(torch.from_numpy(bias))
    return conv


def _identity_bn(old_bn, channels, bias):
    """BatchNorm that adds ``bias`` and nothing else (running mean 0, sqrt(var + eps) = 1)."""
    import torch

    bn = torch.nn.BatchNorm2d(channels, eps=old_bn.eps, momentum=old_bn.momentum)
    with torch.no_grad():
        bn.running_var.fill_(1.0 - bn.eps)
        if bias is not None:
            bn.bias.copy_(torch.from_numpy(bias))
    return bn


def rebuild_network(graph, tensors, model_cfg, names, path, pruned=False):
    """A DetectionModel of ``model_cfg`` whose convolutions carry the ONNX graph's weights, each
    BatchNorm the identity plus the folded bias. ``pruned``: the widths may be narrower than
    ``model_cfg``'s (they come from the ONNX); otherwise they must be its widths."""
    import torch

    net = _fresh_network(model_cfg, len(names), path)
    convs = {name for name, m in net.named_modules() if isinstance(m, torch.nn.Conv2d)}
    filled = set()
    for node in (n for n in graph.node if n.op_type == "Conv"):
        module_name = node.input[1][:-len(".weight")] if node.input[1].endswith(".weight") else None
        if module_name not in convs:
            raise ConfigError(f"--onnx {path}: its convolution {node.name} ({node.input[1]}) has "
                              f"no place in {model_cfg}; give the --model it was trained as")
        weight, bias = _conv_tensors(node, tensors, path)
        old = net.get_submodule(module_name)
        if tuple(old.weight.shape[2:]) != weight.shape[2:] or (
                not pruned and tuple(old.weight.shape) != weight.shape):
            raise ConfigError(f"--onnx {path}: {node.input[1]} is {weight.shape}, "
                              f"{tuple(old.weight.shape)} in {model_cfg}; give the --model it was "
                              f"trained as")
        parent_name, _, leaf = module_name.rpartition(".")
        parent = net.get_submodule(parent_name)
        with_bn = leaf == "conv" and isinstance(getattr(parent, "bn", None), torch.nn.BatchNorm2d)
        setattr(parent, leaf, _rebuilt_conv(node, weight, bias, old, with_bn))
        if with_bn:
            parent.bn = _identity_bn(parent.bn, weight.shape[0], bias)
        filled.add(module_name)
    missing = sorted(convs - filled)
    if missing:
        raise ConfigError(f"--onnx {path} holds no weights for {missing[0]} (and "
                          f"{len(missing) - 1} more) of {model_cfg}; give the --model it was "
                          f"trained as")
    net.names = dict(enumerate(names))
    return net.float().eval()


def calibrate_batchnorm(net, images: Sequence[np.ndarray], log=print):
    """Give each BatchNorm of a network fresh from rebuild_network the statistics of its input
    on ``images`` ((1, 3, H, W) float32), keeping the network's outputs (module docstring)."""
    import torch

    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for bn in bns:
        # the algebra below holds only for the identity-plus-bias BatchNorms of rebuild_network
        if bn.running_mean.abs().max() > 0 or not torch.all(bn.weight == 1):
            raise ValueError("calibrate_batchnorm takes a network fresh from rebuild_network")
    sums = {id(bn): [0.0, 0.0, 0] for bn in bns}  # per BN: sum, sum of squares (per channel), n

    def hook(bn, inputs, _output):
        y = inputs[0].detach().double()  # (B, C, H, W)
        acc = sums[id(bn)]
        acc[0] = acc[0] + y.sum(dim=(0, 2, 3))
        acc[1] = acc[1] + (y * y).sum(dim=(0, 2, 3))
        acc[2] += y.shape[0] * y.shape[2] * y.shape[3]

    handles = [bn.register_forward_hook(hook) for bn in bns]
    try:
        with torch.no_grad():
            for i, image in enumerate(images, 1):
                net(torch.from_numpy(image))
                if i % 25 == 0 or i == len(images):
                    log(f"checkpoint_from_onnx: BatchNorm statistics {i}/{len(images)} images",
                        flush=True)
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        for bn in bns:
            total, squares, n = sums[id(bn)]
            mean = total / n
            var = (squares / n - mean * mean).clamp(min=0.0)
            # BN(y) = (y - mean) / scale * scale + (bias + mean) = y + bias
            bn.bias.add_(mean.to(bn.bias.dtype))
            bn.weight.copy_(torch.sqrt(var + bn.eps))
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
    return net


def letterboxed(paths: Sequence[Path], hw) -> List[np.ndarray]:
    """Each image as the app feeds it: letterboxed to (1, 3, H, W) float32 RGB in [0, 1]."""
    import cv2

    from hanja_live.letterbox import Letterbox

    out = []
    for p in paths:
        frame = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if frame is None:
            raise ConfigError(f"--calib: {p} is not a readable image; remove it or give another "
                              f"folder")
        buf = np.zeros((1, 3) + tuple(hw), np.float32)
        Letterbox(buf)(frame)
        out.append(buf)
    return out


def output_gap(net, onnx_path, image):
    """(largest box gap, largest score gap) between the network and ONNX Runtime on ``image``."""
    import torch

    ref = run_onnxruntime(onnx_path, image)[0]
    with torch.no_grad():
        got = net(torch.from_numpy(image))
    got = (got[0] if isinstance(got, (list, tuple)) else got).float().numpy()
    if got.shape != ref.shape:
        raise HanjaLiveError(f"the network rebuilt from {onnx_path} outputs {got.shape}, the ONNX "
                             f"{ref.shape}; give the --model it was trained as")
    return float(np.abs(got[:, :4] - ref[:, :4]).max()), float(np.abs(got[:, 4:] - ref[:, 4:]).max())


def _check_out(out):
    """Fail before minutes of work when ``out`` cannot be written."""
    parent = Path(out).resolve().parent
    if not parent.is_dir() or not os.access(str(parent), os.W_OK):
        raise ConfigError(f"--out {out}: cannot write into {parent}; choose a writable --out")


def checkpoint_from_onnx(onnx_path: str, calib: str, out: str, model: str = "yolov5n",
                         images: int = 200, imgsz: int = 640, log=print) -> dict:
    """Rebuild ``onnx_path`` as an ultralytics checkpoint at ``out``; returns it."""
    if images < 1:
        raise ConfigError(f"--images {images}: give at least 1")
    if imgsz < 32 or imgsz % 32:
        raise ConfigError(f"--imgsz {imgsz}: give the square training size, a multiple of 32 (640)")
    _check_out(out)
    graph_model, meta, tensors = read_onnx(onnx_path)
    names = class_names(meta, onnx_path)
    try:
        hw = static_input_hw(graph_model)
    except HanjaLiveError as exc:
        raise ConfigError(f"--onnx {onnx_path}: {exc}") from None
    record = pruning_record(meta, onnx_path)
    calib_paths = [Path(p) for p in calibration_images(resolve(str(calib)), images)]

    from hanja_live.train.offline import prepare_ultralytics
    from hanja_live.train.train import model_config

    ultralytics = prepare_ultralytics()
    net = rebuild_network(graph_model.graph, tensors, model_config(model), names, onnx_path,
                          pruned=record is not None)
    if record is not None:
        net.pruning = record
    # checked at the ONNX's own input size; statistics at the training scale, where they are used
    check_feed = letterboxed(calib_paths[-1:], hw)[0]
    check_before = output_gap(net, onnx_path, check_feed)
    calibrate_batchnorm(net, letterboxed(calib_paths, (imgsz, imgsz)), log=log)
    box_gap, score_gap = output_gap(net, onnx_path, check_feed)
    log(f"checkpoint_from_onnx: outputs against ONNX Runtime: boxes within {box_gap:.4f} px, "
        f"scores within {score_gap:.2e} (before the BatchNorm statistics: {check_before[0]:.4f}, "
        f"{check_before[1]:.2e})")
    if box_gap > MAX_BOX_GAP or score_gap > MAX_SCORE_GAP:
        raise HanjaLiveError(f"the network rebuilt from {onnx_path} does not compute what it "
                             f"computes (boxes {box_gap:.3g} px, scores {score_gap:.3g} apart); "
                             f"report this")
    for p in net.parameters():
        p.requires_grad_(False)
    ckpt = {
        "epoch": -1, "best_fitness": None, "model": net, "ema": None, "updates": None,
        "optimizer": None, "train_args": {"task": "detect", "imgsz": imgsz},
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "version": ultralytics.__version__,
        "from_onnx": {"path": str(onnx_path), "sha256": sha256_of(onnx_path),
                      "calib_images": len(calib_paths), "calib_imgsz": imgsz},
    }
    if record is not None:
        ckpt["pruning"] = dict(record)
    save_checkpoint(ckpt, out)
    n = sum(p.numel() for p in net.parameters())
    log(f"checkpoint_from_onnx: {onnx_path} -> {out} ({n / 1e6:.3f} M parameters"
        + (f", pruned, ratio {record['ratio']}" if record else "") + ")")
    return ckpt


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.checkpoint_from_onnx",
                                description="Rebuild a trainable checkpoint from an exported ONNX.")
    p.add_argument("--onnx", required=True, help="FP32 model written by hanja_live.train.export")
    p.add_argument("--calib", default="calib/images", help="folder of scenes for the BatchNorm "
                                                           "statistics (default: calib/images)")
    p.add_argument("--images", type=int, default=200, help="how many of them (default 200)")
    p.add_argument("--imgsz", type=int, default=640,
                   help="square size they are letterboxed to: the training size (default 640)")
    p.add_argument("--model", default="yolov5n", help="the architecture it was trained as")
    p.add_argument("--out", required=True, help="checkpoint to write (.pt)")
    args = p.parse_args(argv)
    try:
        checkpoint_from_onnx(args.onnx, args.calib, args.out, model=args.model, images=args.images,
                             imgsz=args.imgsz)
    except HanjaLiveError as exc:
        sys.exit(f"checkpoint_from_onnx: {exc}")


if __name__ == "__main__":
    main()
