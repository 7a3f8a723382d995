"""Average the weights of several checkpoints of one network into one checkpoint ("model soup").

    python -m hanja_live.train.average --out avg.pt A/best.pt B/best.pt C/best.pt

Our fine-tunes run as short legs on the lent GPU, each a schedule of its own that ends at a low
learning rate. The held-out score of a leg's end point moves by up to two points of mAP50-95 from
one leg to the next (pruned network, legs 6c and 7a-7c: 0.719, 0.716, 0.720, 0.723), more than a
leg's training adds; the uniform average of those four end points scored above every one (0.737). Averaging only
makes sense for checkpoints of one training trajectory: the same architecture (same tensor names
and shapes, so a pruned network only with checkpoints pruned the same way) fine-tuned from a common
ancestor. Floating-point parameters and BatchNorm running statistics are averaged; integer buffers
(BatchNorm's batch counters) are taken from the first checkpoint.

The output is an ultralytics checkpoint like the first input (names, training arguments, the
pruning record on the module), holding the averaged network in float16 as ultralytics stores its
EMA weights, plus ``averaged_from``: each input's path and SHA-256. Export it with
hanja_live.train.export like any best.pt.
"""

import argparse
import copy
import os
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from hanja_live.errors import ConfigError, HanjaLiveError
from hanja_live.train.export import sha256_of


def load(path):
    """Ultralytics checkpoint -> (float32 network, checkpoint dict); EMA weights where present."""
    import torch

    if not Path(path).is_file():
        raise ConfigError(f"{path} does not exist; give the best.pt (or last.pt) of a training run")
    try:
        ckpt = torch.load(str(path), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises pickle, zip and runtime errors alike for a bad file
        raise ConfigError(f"{path} is not a readable torch checkpoint ({exc})") from None
    model = None
    if isinstance(ckpt, dict):
        model = ckpt.get("ema") if ckpt.get("ema") is not None else ckpt.get("model")
    if not hasattr(model, "state_dict"):
        raise ConfigError(f"{path} holds no network under 'ema' or 'model'; give an ultralytics "
                          f"checkpoint (best.pt of hanja_live.train.train or .prune)")
    return model.float(), ckpt


def check_same_network(reference, other, ref_path, other_path):
    """Raise ConfigError unless two state dicts have the same tensor names and shapes."""
    missing = sorted(set(reference) ^ set(other))
    if missing:
        raise ConfigError(f"{other_path} is not the network of {ref_path}: tensor {missing[0]} is "
                          f"in only one of them; average checkpoints of one training run")
    for name, tensor in reference.items():
        if tuple(other[name].shape) != tuple(tensor.shape):
            raise ConfigError(f"{other_path} is not the network of {ref_path}: {name} is "
                              f"{tuple(other[name].shape)} there, {tuple(tensor.shape)} here "
                              f"(pruned differently?); average checkpoints of one training run")


def average_state_dicts(state_dicts):
    """Uniform mean of floating-point tensors; other tensors (counters) from the first dict."""
    first = state_dicts[0]
    out = {}
    for name, tensor in first.items():
        if tensor.is_floating_point():
            total = tensor.detach().double().clone()
            for sd in state_dicts[1:]:
                total += sd[name].detach().double()
            out[name] = (total / len(state_dicts)).to(tensor.dtype)
        else:
            out[name] = tensor.clone()
    return out


def average(paths: Sequence[str], out: str) -> dict:
    """Average the checkpoints at ``paths`` into ``out``; returns the checkpoint written."""
    if len(paths) < 2:
        raise ConfigError(f"give at least two checkpoints to average (got {len(paths)})")
    models, ckpts = [], []
    for i, path in enumerate(paths, 1):
        model, ckpt = load(path)
        if models:
            check_same_network(models[0].state_dict(), model.state_dict(), paths[0], path)
            if getattr(model, "names", None) != getattr(models[0], "names", None):
                raise ConfigError(f"{path} names its classes differently from {paths[0]}; "
                                  f"average checkpoints of one training run")
        models.append(model)
        ckpts.append(ckpt)
        print(f"average: loaded {i}/{len(paths)} {path}", flush=True)
    averaged = copy.deepcopy(models[0])
    averaged.load_state_dict(average_state_dicts([m.state_dict() for m in models]))
    # the first checkpoint's record (names, training arguments), less what describes its own
    # training: the average was never trained or validated as such
    ckpt = {k: v for k, v in ckpts[0].items() if k not in ("train_metrics", "train_results")}
    ckpt.update(model=averaged.half(), ema=None, optimizer=None, updates=None, epoch=-1,
                best_fitness=None,
                averaged_from=[{"path": str(p), "sha256": sha256_of(p)} for p in paths])
    save_checkpoint(ckpt, out)
    print(f"average: {len(paths)} checkpoints -> {out}")
    return ckpt


def save_checkpoint(ckpt, out):
    """torch.save ``ckpt`` to ``out`` through ``out``.part, so a full disk leaves no half file."""
    import torch

    part = Path(str(out) + ".part")
    try:
        part.parent.mkdir(parents=True, exist_ok=True)
        torch.save(ckpt, str(part))
        os.replace(str(part), str(out))
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as a RuntimeError
        if part.exists():
            part.unlink()
        raise HanjaLiveError(f"cannot write {out} ({getattr(exc, 'strerror', None) or exc}); "
                             f"choose a writable --out with free space") from None


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.average",
                                description="Average the weights of checkpoints of one network.")
    p.add_argument("checkpoints", nargs="+", help="ultralytics .pt files of one training run")
    p.add_argument("--out", required=True, help="averaged checkpoint to write (.pt)")
    args = p.parse_args(argv)
    try:
        average(list(args.checkpoints), args.out)
    except HanjaLiveError as exc:
        sys.exit(f"average: {exc}")


if __name__ == "__main__":
    main()
