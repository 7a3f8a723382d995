"""Structured channel pruning of a trained YOLOv5u detector, then fine-tuning of the smaller network.

    python -m hanja_live.train.prune --weights best.pt --data D/data.yaml --ratio 0.3 --ratio 0.5 \\
        --imgsz 416 (--hours H | --epochs E) --batch 128 --workers 16 --device 0 --project P

Magnitude pruning of single weights (what the seed project did) leaves every tensor its full
size, so nothing runs faster. Here whole channels go: torch-pruning traces the network into
groups of coupled layers (a conv, its BatchNorm, every consumer of its output, both sides of
each C3 concat) and removes the least important channels of a group together, so the network
that comes out is an ordinary, smaller YOLOv5u.

``--ratio R`` removes the fraction R of the multiply-accumulates (MACs, counted by
torch_pruning.utils.count_ops_and_params at --imgsz): the network is pruned in small steps until
at most (1 - R) of the original MACs remain. Each ratio starts from the unpruned weights and is
written to P/p<R%>_pruned.pt (before fine-tuning), fine-tuned by ultralytics in P/p<R%>/, and
exported to P/p<R%>.onnx; P/prune_summary.json lists them all.

Choices, defaults in brackets:
* importance [l2]: L2 norm of each channel's weights over its whole group; ``bn`` ranks by
  BatchNorm scale, ``l1`` by L1 norm, ``lamp`` by LAMP scores.
* uniform pruning [on]: every layer loses the same share of its channels, as torch-pruning's
  YOLO examples do; ``--global`` ranks channels across layers instead (finer MAC steps, but on
  our yolov5n it cut the stem and the stride-8 box and class branches from 64 to 8 channels
  at 40 %, where the small characters are found; torch-pruning enforces --max-layer-ratio only
  before each step, so a layer can end below it).
* --round-to [8]: every pruned layer keeps a multiple of 8 channels, rounded to the nearest
  multiple (torch-pruning itself rounds down, which halves a 16-channel layer at the first
  step). Measured on the 2-core dev machine, ONNX Runtime CPU, 416 input, interleaved runs: a
  yolov5n with 40 % of its MACs pruned and free channel counts took 1.06-1.13x the time of
  the unpruned network (ONNX Runtime's blocked NCHWc convolutions need channel multiples of
  the vector width), with multiples of 8 0.72-0.83x; in a third run free counts took 1.57x
  the time of multiples of 8 at the same MACs. TensorRT's FP16/INT8 kernels want multiples
  of 8 too. Uniform pruning then moves in coarse steps (yolov5n keeps 84, 76, 63, 55, 43 %
  of its MACs), and the first step at or below the target is kept: 0.3 gives 63 %, 0.4 55 %.
* never pruned: the output convolutions of the Detect head (box and class maps) and its DFL,
  so the output stays (1, 4 + nc, N) and the app's decoder reads it unchanged.

Fine-tuning uses ultralytics' DetectionTrainer with the augmentation of hanja_live.train.train.
Ultralytics would rebuild the network from the YAML it was first made from (the unpruned
widths); the trainer here takes the pruned module itself from P/p<R%>_pruned.pt instead, and
its checkpoints (last.pt, best.pt) pickle that module, so hanja_live.train.export exports the
pruned architecture. ``--hours`` is the budget of the whole command, shared evenly by the
ratios. One device only: the pruned module cannot be handed to ultralytics' multi-GPU workers.
``hanja_live.train.train --init-weights`` with a pruned checkpoint goes through finetune() too,
so a pruned network can be trained on later without rebuilding it from YAML.
"""

import argparse
import datetime
import json
import sys
import time
from copy import deepcopy
from pathlib import Path
from typing import Optional, Sequence, Tuple

from hanja_live.errors import ConfigError, HanjaLiveError

IMPORTANCES = ("l2", "l1", "bn", "lamp")
STEPS = 150  # pruning steps up to --max-layer-ratio: 0.5 % of the channels each (at 0.75)


def run_name(ratio: float) -> str:
    """0.3 -> 'p30', 0.125 -> 'p12.5': the share of MACs removed, in percent."""
    return "p%s" % format(round(ratio * 100, 3), "g")


def _import_torch_pruning():
    try:
        import torch_pruning
    except ImportError as exc:
        raise ConfigError("torch-pruning is not installed (%s); pip install torch-pruning "
                          "(or pip install -e .[train])" % exc) from None
    return torch_pruning


def load_detector(weights):
    """Ultralytics checkpoint -> (float32 DetectionModel in eval mode, not fused, checkpoint dict).

    Every parameter gets requires_grad: ultralytics stores its EMA weights in float16 with
    gradients off, and torch-pruning builds its dependency graph from the autograd graph.
    """
    from ultralytics.nn.modules.head import Detect
    from ultralytics.nn.tasks import load_checkpoint

    if not Path(weights).is_file():
        raise ConfigError(f"--weights {weights} does not exist; give the best.pt of a training "
                          f"run (hanja_live.train.train)")
    model, ckpt = load_checkpoint(str(weights))
    head = model.model[-1] if hasattr(model, "model") else None
    if not isinstance(head, Detect) or type(head) is not Detect:
        raise ConfigError(f"--weights {weights} is not a detection model with a plain Detect head "
                          f"(last layer: {type(head).__name__}); prune a hanja_live detector")
    for p in model.parameters():
        p.requires_grad_(True)
    return model, ckpt


def detect_head(model):
    return model.model[-1]


def output_layers(model):
    """Layers whose channels must stay: the last conv of every box / class branch, and the DFL."""
    head = detect_head(model)
    keep = []
    for branch in ("cv2", "cv3", "one2one_cv2", "one2one_cv3"):  # one2one_*: end-to-end heads
        for seq in getattr(head, branch, None) or []:
            keep.append(list(seq.modules())[-1])
    if getattr(head, "dfl", None) is not None:
        keep.append(head.dfl)
    return keep


def count_macs(model, imgsz: Tuple[int, int]) -> Tuple[float, float]:
    """(MACs, parameters) of one forward pass at 1x3xHxW, by torch-pruning's counter."""
    import torch

    tp = _import_torch_pruning()
    param = next(model.parameters())
    example = torch.zeros((1, 3) + tuple(imgsz), dtype=param.dtype, device=param.device)
    macs, params = tp.utils.count_ops_and_params(model, example)
    return float(macs), float(params)


def _importance(tp, name):
    if name == "l2":
        return tp.importance.GroupMagnitudeImportance(p=2)
    if name == "l1":
        return tp.importance.GroupMagnitudeImportance(p=1)
    if name == "bn":
        return tp.importance.BNScaleImportance()
    if name == "lamp":
        return tp.importance.LAMPImportance(p=2)
    raise ConfigError(f"--importance {name}: choose one of {', '.join(IMPORTANCES)}")


def _check_ratio(ratio):
    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"--ratio {ratio}: give the share of MACs to remove, between 0 and 1 "
                          f"(0.4 keeps 60 %)")


def _pruner_class(tp):
    """torch-pruning's BasePruner, rounding kept channels to the nearest multiple of round_to."""

    class NearestRoundingPruner(tp.pruner.BasePruner):
        def _round_to(self, n_pruned, current_channels, round_to):
            if current_channels <= round_to:
                return 0
            keep = current_channels - n_pruned
            keep = max(round_to, int((keep + round_to / 2) // round_to) * round_to)
            return max(current_channels - keep, 0)

    if not hasattr(tp.pruner.BasePruner, "_round_to"):
        print("prune: this torch-pruning has no BasePruner._round_to; channels are rounded its "
              "own way (down)")
        return tp.pruner.BasePruner
    return NearestRoundingPruner


def prune_to_macs(model, imgsz, ratio, importance="l2", global_pruning=False, round_to=8,
                  max_layer_ratio=0.75, log=print):
    """Remove channels from ``model`` (in place) until at most (1 - ratio) of its MACs remain.

    Returns a JSON-ready dict: MACs and parameters before and after, the setting used.
    """
    import torch

    tp = _import_torch_pruning()
    _check_ratio(ratio)
    if not 0.0 < max_layer_ratio < 1.0:
        raise ConfigError(f"--max-layer-ratio {max_layer_ratio}: give a share between 0 and 1")
    model.eval()
    param = next(model.parameters())
    example = torch.zeros((1, 3) + tuple(imgsz), dtype=param.dtype, device=param.device)
    with torch.no_grad():
        ref_shape = tuple(_first_output(model(example)).shape)
    macs0, params0 = count_macs(model, imgsz)
    target = (1.0 - ratio) * macs0
    frozen = {p for p in model.parameters() if not p.requires_grad}
    for p in frozen:
        p.requires_grad_(True)
    pruner = _pruner_class(tp)(
        model, example, importance=_importance(tp, importance), global_pruning=global_pruning,
        pruning_ratio=max_layer_ratio, max_pruning_ratio=max_layer_ratio, iterative_steps=STEPS,
        ignored_layers=output_layers(model), round_to=round_to or None)
    t0 = time.monotonic()
    macs, params = macs0, params0
    last_shown = 1.0
    widths = _widths(model)
    for step in range(1, STEPS + 1):
        pruner.step()
        now = _widths(model)
        if now == widths:  # rounding kept every layer as it was: nothing to count
            continue
        widths = now
        macs, params = count_macs(model, imgsz)
        if macs <= target:
            break
        if last_shown - macs / macs0 >= 0.05:
            last_shown = macs / macs0
            log(f"prune: step {step}: {macs / macs0:.1%} of the MACs left (target "
                f"{1 - ratio:.1%})")
    else:
        raise ConfigError(f"--ratio {ratio}: only {1 - macs / macs0:.1%} of the MACs could be "
                          f"removed with at most {max_layer_ratio:.0%} of each layer's channels; "
                          f"give a smaller --ratio or a larger --max-layer-ratio")
    for p in frozen:
        p.requires_grad_(False)
    with torch.no_grad():
        shape = tuple(_first_output(model(example)).shape)
    if shape != ref_shape:
        raise HanjaLiveError(f"pruning changed the output from {ref_shape} to {shape}; the Detect "
                             f"head was pruned, which must not happen: report this")
    info = {
        "ratio": ratio,
        "imgsz": list(imgsz),
        "macs_before": macs0, "macs_after": macs, "macs_kept": macs / macs0,
        "params_before": params0, "params_after": params, "params_kept": params / params0,
        "importance": importance, "global": bool(global_pruning), "round_to": round_to or 1,
        "max_layer_ratio": max_layer_ratio, "steps": step,
    }
    log(f"prune: {run_name(ratio)}: MACs {macs0 / 1e9:.3f} G -> {macs / 1e9:.3f} G "
        f"({macs / macs0:.1%}; {2 * macs / 1e9:.2f} GFLOPs at {imgsz[0]}x{imgsz[1]}), parameters "
        f"{params0 / 1e6:.3f} M -> {params / 1e6:.3f} M ({params / params0:.1%}), "
        f"{step} steps in {time.monotonic() - t0:.1f} s")
    return info


def _widths(model):
    import torch

    return [m.weight.shape for m in model.modules() if isinstance(m, torch.nn.Conv2d)]


def _first_output(y):
    return y[0] if isinstance(y, (list, tuple)) else y


def save_pruned(model, ckpt, path, info):
    """Write ``model`` as an ultralytics checkpoint that ultralytics and export.py can load."""
    import torch
    import ultralytics

    model = deepcopy(model).float().eval()
    model.pruning = dict(info)  # travels with the module into the fine-tuned checkpoints
    for p in model.parameters():
        p.requires_grad_(False)
    torch.save({
        "epoch": -1, "best_fitness": None, "model": model, "ema": None, "updates": None,
        "optimizer": None, "train_args": dict(ckpt.get("train_args") or {}),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "version": ultralytics.__version__, "pruning": dict(info),
    }, str(path))
    return path


def _pruned_trainer_class(amp_check):
    """DetectionTrainer (offline, as in train.py) that trains the pruned module it is given."""
    import torch

    from hanja_live.train.train import _trainer_class

    base = _trainer_class(amp_check)

    class PrunedDetectionTrainer(base):
        def get_model(self, cfg=None, weights=None, verbose=True):
            # ``weights`` is the module pickled in the .pt given as model;
            # the stock trainer would build cfg's unpruned widths and copy weights into them
            if not isinstance(weights, torch.nn.Module):
                raise ConfigError(f"model={self.args.model}: fine-tuning a pruned network needs "
                                  f"its .pt checkpoint (written by hanja_live.train.prune)")
            nc = int(detect_head(weights).nc)
            if nc != int(self.data["nc"]):
                raise ConfigError(f"the model predicts {nc} classes but {self.args.data} has "
                                  f"{self.data['nc']}; use the data set it was trained on")
            weights.criterion = None  # the loss is rebuilt from this run's hyperparameters
            if verbose:
                n = sum(p.numel() for p in weights.parameters())
                print(f"prune: fine-tuning the pruned network ({n / 1e6:.3f} M parameters)")
            return weights

    return PrunedDetectionTrainer


def finetune(pruned_pt, data, imgsz=416, epochs=20, hours=None, batch=64, workers=8,
             project="runs/prune", name="p30", device=None, cache=None, seed=0, patience=100,
             amp_check=False, exist_ok=False, mosaic=True, save_period=-1):
    """Fine-tune the network in ``pruned_pt`` with ultralytics; returns the path of best.pt."""
    from hanja_live.train.train import AUGMENT, FINETUNE, schedule_args

    trainer_cls = _pruned_trainer_class(amp_check)
    schedule, callbacks = schedule_args(epochs, hours, mosaic)
    overrides = dict(
        model=str(pruned_pt), data=str(data), imgsz=imgsz, epochs=epochs, batch=batch,
        workers=workers, project=str(Path(project).resolve()), name=name, exist_ok=exist_ok,
        device=device, cache=cache or False, seed=seed, patience=patience, pretrained=False,
        plots=False, amp=True, deterministic=False, save_period=save_period,
        **schedule, **AUGMENT, **FINETUNE)
    trainer = trainer_cls(overrides=overrides)
    for event, callback in callbacks.items():
        trainer.add_callback(event, callback)
    trainer.train()
    best = Path(trainer.best)
    return best if best.is_file() else Path(trainer.last)


def _single_device(device):
    if device is not None and len(str(device).split(",")) > 1:
        raise ConfigError(f"--device {device}: fine-tuning a pruned network runs on one device "
                          f"(ultralytics' multi-GPU workers rebuild the unpruned network); "
                          f"give one, e.g. --device 0")


def prune_and_finetune(weights, data, ratios, imgsz=416, epochs=20, hours=None, batch=64,
                       workers=8, project="runs/prune", device=None, cache=None, seed=0,
                       patience=100, importance="l2", global_pruning=False, round_to=8,
                       max_layer_ratio=0.75, prune_only=False, export=True, amp_check=False,
                       exist_ok=False, log=print):
    """Prune ``weights`` once per ratio, fine-tune and export each; returns the summary rows."""
    from hanja_live.train.offline import prepare_ultralytics

    prepare_ultralytics()
    import torch

    ratios = list(ratios)
    if not ratios:
        raise ConfigError("give at least one --ratio, e.g. --ratio 0.4")
    for r in ratios:
        _check_ratio(r)
    if len({run_name(r) for r in ratios}) != len(ratios):
        raise ConfigError(f"--ratio values {ratios} repeat; give each once")
    if not prune_only and not Path(data).is_file():
        raise ConfigError(f"--data {data} does not exist; generate the data set with "
                          f"python -m hanja_live.train.dataset")
    _single_device(device)
    hw = (imgsz, imgsz)
    project = Path(project).resolve()
    project.mkdir(parents=True, exist_ok=True)
    share = hours / len(ratios) if hours else None
    if share:
        log(f"prune: {hours:g} h in all, {share:g} h of fine-tuning per ratio")
    rows = []
    summary_path = project / "prune_summary.json"
    for ratio in ratios:
        name = run_name(ratio)
        t0 = time.monotonic()
        model, ckpt = load_detector(weights)
        with torch.enable_grad():
            info = prune_to_macs(model, hw, ratio, importance, global_pruning, round_to,
                                 max_layer_ratio, log=log)
        info["source_weights"] = str(weights)
        pruned_pt = save_pruned(model, ckpt, project / f"{name}_pruned.pt", info)
        row = dict(info, name=name, pruned=str(pruned_pt))
        log(f"prune: {name}: pruned network {pruned_pt}")
        if not prune_only:
            best = finetune(pruned_pt, data, imgsz, epochs, share, batch, workers, project, name,
                            device, cache, seed, patience, amp_check, exist_ok)
            row["best"] = str(best)
            row["finetune_metrics"] = _metrics(best)
            log(f"prune: {name}: fine-tuned weights {best} {row['finetune_metrics']}")
            if export:
                row["onnx"] = str(_export(best, hw, project / f"{name}.onnx"))
        row["seconds"] = round(time.monotonic() - t0, 1)
        rows.append(row)
        summary_path.write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    log(f"prune: summary {summary_path}")
    for r in rows:
        log(f"prune: {r['name']}: {r['macs_kept']:.1%} of the MACs, {r['params_kept']:.1%} of the "
            f"parameters, {r.get('onnx') or r.get('best') or r['pruned']}")
    return rows


def _metrics(best):
    """Validation metrics ultralytics stored in the checkpoint (mAP50, mAP50-95, ...)."""
    import torch

    ckpt = torch.load(str(best), map_location="cpu", weights_only=False)
    found = ckpt.get("train_metrics") or {}
    return {k: round(float(v), 5) for k, v in found.items() if "mAP" in k}


def _export(best, hw, out):
    from hanja_live.train.export import export

    export(best, hw, out)
    return out


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.prune",
                                description="structured channel pruning + fine-tuning of a "
                                            "trained hanja detector")
    p.add_argument("--weights", required=True, help="trained ultralytics .pt (best.pt)")
    p.add_argument("--data", help="data.yaml written by hanja_live.train.dataset (for fine-tuning)")
    p.add_argument("--ratio", type=float, action="append", required=True,
                   help="share of the MACs to remove, e.g. 0.4 keeps 60 %%; repeat for several")
    p.add_argument("--imgsz", type=int, default=416, help="square input size (default 416)")
    p.add_argument("--hours", type=float,
                        help="wall-clock fine-tuning budget of the whole command, split evenly "
                             "over the ratios")
    p.add_argument("--epochs", type=int, default=20,
                   help="fine-tuning epochs per ratio (default 20); with --hours the time sets the "
                        "count (--epochs still steers ultralytics' automatic optimizer choice) and "
                        "the last ~10 %% of it goes without mosaic")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=8, help="data loader processes")
    p.add_argument("--device", help="one device: 0 or cpu (default: ultralytics picks)")
    p.add_argument("--project", default="runs/prune",
                   help="output folder: NAME_pruned.pt, NAME/ (ultralytics run), NAME.onnx")
    p.add_argument("--cache", choices=("ram", "disk"), help="cache decoded images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--patience", type=int, default=100)
    p.add_argument("--importance", choices=IMPORTANCES, default="l2",
                   help="channel ranking: l2/l1 weight norm of the group, bn scale, lamp")
    p.add_argument("--global", dest="global_pruning", action="store_true",
                   help="rank channels across layers (default: every layer loses the same share)")
    p.add_argument("--round-to", type=int, default=8,
                   help="keep channel counts multiples of this (default 8; 1 = any count)")
    p.add_argument("--max-layer-ratio", type=float, default=0.75,
                   help="most channels a layer may lose (default 0.75; with --global checked "
                        "only before each step)")
    p.add_argument("--prune-only", action="store_true",
                   help="write NAME_pruned.pt and print MACs, no fine-tuning")
    p.add_argument("--no-export", action="store_true", help="skip the ONNX export")
    p.add_argument("--amp-check", action="store_true",
                   help="run ultralytics' AMP self-test (downloads yolo11n.pt)")
    p.add_argument("--exist-ok", action="store_true", help="reuse PROJECT/NAME run folders")
    args = p.parse_args(argv)
    if not args.prune_only and not args.data:
        p.error("--data is needed for fine-tuning (or give --prune-only)")
    try:
        prune_and_finetune(args.weights, args.data, args.ratio, args.imgsz, args.epochs,
                           args.hours, args.batch, args.workers, args.project, args.device,
                           args.cache, args.seed, args.patience, args.importance,
                           args.global_pruning, args.round_to, args.max_layer_ratio,
                           args.prune_only, not args.no_export, args.amp_check, args.exist_ok)
    except HanjaLiveError as exc:
        sys.exit(f"prune: {exc}")


if __name__ == "__main__":
    main()
