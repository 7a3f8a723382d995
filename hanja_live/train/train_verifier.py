"""Train the verifier: a small CNN that takes a second look at each detection's patch.

    python -m hanja_live.train.train_verifier --train crops.npz [more.npz ...] --val crops_val.npz \\
        --out verifier.pt --onnx models/hanja_verifier.onnx [--epochs 12] [--batch 512] \\
        [--width 16] [--device 0]

The patches (hanja_live.train.verifier_crops) sit on the GPU as uint8; every batch is augmented
there (small rotation, zoom and shift, sensor noise). The network normalises each patch itself
(mean and spread of its grey levels), so lighting and ink colour need no handling outside it.
Outputs 11 probabilities: the ten numerals and OTHER. After each epoch it prints the validation
accuracy, the numerals kept (argmax = the true class) and the negatives rejected (argmax = OTHER).

The ONNX file has a dynamic batch axis, input ``patches`` (B, 1, S, S) float32 grey levels 0-255,
output ``probs`` (B, 11), opset 12, and metadata (names, patch size and pad) that
hanja_live.verifier reads.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hanja_live import CLASS_NAMES
from hanja_live.errors import ConfigError
from hanja_live.patches import PATCH_PAD
from hanja_live.train.verifier_crops import KINDS, OTHER, join, load

NAMES = list(CLASS_NAMES) + ["other"]
OPSET = 12


def conv_bn(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class VerifierNet(nn.Module):
    """(B, 1, S, S) grey levels 0-255 -> (B, 11) logits. Four stages, each halving the side."""

    def __init__(self, width=16, classes=len(NAMES)):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            conv_bn(1, w, 2), conv_bn(w, 2 * w, 1),
            conv_bn(2 * w, 4 * w, 2), conv_bn(4 * w, 4 * w, 1),
            conv_bn(4 * w, 8 * w, 2), conv_bn(8 * w, 8 * w, 1),
            conv_bn(8 * w, 16 * w, 2),
        )
        self.head = nn.Linear(16 * w, classes)

    def forward(self, x):
        mean = x.mean(dim=(2, 3), keepdim=True)
        spread = (x - mean).pow(2).mean(dim=(2, 3), keepdim=True).add(16.0).sqrt()
        x = self.features((x - mean) / spread)
        return self.head(x.mean(dim=(2, 3)))


class WithSoftmax(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


def augment(x, gen):
    # type: (torch.Tensor, torch.Generator) -> torch.Tensor
    """(B, 1, S, S) float 0-255 -> the same, each turned up to 8 degrees, zoomed 0.9-1.1x and
    shifted up to 4 % (edges repeat), with Gaussian noise of sd 0-6 grey levels."""
    b, dev = x.shape[0], x.device
    u = torch.rand(b, 5, generator=gen, device=dev)
    angle = (u[:, 0] - 0.5) * (2 * math.radians(8.0))
    scale = 0.9 + 0.2 * u[:, 1]
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    tx, ty = (u[:, 2] - 0.5) * 0.08, (u[:, 3] - 0.5) * 0.08
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    noise = torch.randn(x.shape, generator=gen, device=dev) * (6.0 * u[:, 4]).view(b, 1, 1, 1)
    return (out + noise).clamp_(0.0, 255.0)


def evaluate(net, patches, label, kind, batch=2048):
    """Accuracy, numerals kept, negatives rejected, paper / off-target rejected; and probs."""
    net.eval()
    probs = []
    with torch.no_grad():
        for i in range(0, len(patches), batch):
            x = patches[i:i + batch].unsqueeze(1).float()
            probs.append(torch.softmax(net(x).float(), dim=1))
    p = torch.cat(probs) if probs else torch.zeros((0, len(NAMES)), device=patches.device)
    pred = p.argmax(1)
    out = {"accuracy": (pred == label).float().mean().item()}
    for i, k in enumerate(KINDS):
        sel = kind == i
        if sel.any():
            out[k] = (pred[sel] == label[sel]).float().mean().item()
    return out, p


def to_device(crops, device):
    return (torch.from_numpy(crops.patches).to(device), torch.from_numpy(crops.label.astype(np.int64)).to(device),
            torch.from_numpy(crops.kind.astype(np.int64)).to(device))


def export_onnx(net, path, size, width):
    import onnx  # training extra; only the export needs it
    net = net.eval().cpu()
    dummy = torch.zeros(2, 1, size, size)
    torch.onnx.export(WithSoftmax(net), dummy, str(path), input_names=["patches"], output_names=["probs"],
                      dynamic_axes={"patches": {0: "batch"}, "probs": {0: "batch"}}, opset_version=OPSET,
                      dynamo=False)
    model = onnx.load(str(path))
    meta = {"kind": "verifier", "names": json.dumps(NAMES, ensure_ascii=False), "patch_size": str(size),
            "patch_pad": str(PATCH_PAD), "other": str(OTHER), "width": str(width)}
    onnx.helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return meta


def train(train_paths, val_path, out, onnx_path=None, epochs=12, batch=512, width=16, lr=3e-3,
          device="cpu", seed=0, log=print):
    """train_paths: one .npz of verifier_crops or a list of them (their patches joined)."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    train_paths = [train_paths] if isinstance(train_paths, (str, Path)) else list(train_paths)
    tr, va = join([load(str(p)) for p in train_paths]), load(val_path)
    if not len(tr.label) or not len(va.label):
        raise ConfigError("no patches in %s or %s" % (" + ".join(map(str, train_paths)), val_path))
    size = tr.patches.shape[-1]
    xtr, ytr, _ = to_device(tr, dev)
    xva, yva, kva = to_device(va, dev)
    net = VerifierNet(width).to(dev)
    # OTHER holds every kind of non-numeral; weigh the classes so each numeral counts as much
    counts = torch.bincount(ytr, minlength=len(NAMES)).float().clamp(min=1)
    weight = (counts.sum() / counts / len(NAMES)).clamp(max=10.0)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=5e-4)
    steps = epochs * math.ceil(len(ytr) / batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    gen = torch.Generator(device=dev)
    gen.manual_seed(seed)
    amp = dev.type == "cuda"
    log("verifier: %d training patches, %d validation, %d parameters, %d epochs"
        % (len(ytr), len(yva), sum(p.numel() for p in net.parameters()), epochs))
    start = time.time()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(ytr), generator=gen, device=dev)
        total, n = 0.0, 0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            x = augment(xtr[idx].unsqueeze(1).float(), gen)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=amp):
                loss = F.cross_entropy(net(x).float(), ytr[idx], weight=weight, label_smoothing=0.02)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
            n += len(idx)
        stats, _ = evaluate(net, xva, yva, kva)
        log("epoch %d/%d  loss %.4f  val acc %.4f  numerals kept %.4f  negatives rejected %.4f  "
            "paper %.4f  off-target %.4f  %.0f s" % (epoch + 1, epochs, total / max(n, 1), stats["accuracy"],
                                                     stats.get("target", float("nan")),
                                                     stats.get("negative", float("nan")),
                                                     stats.get("paper", float("nan")),
                                                     stats.get("off_target", float("nan")), time.time() - start))
    torch.save({"state_dict": net.state_dict(), "width": width, "patch_size": size, "names": NAMES}, out)
    meta = export_onnx(net, onnx_path, size, width) if onnx_path else None
    return stats, meta


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.train_verifier",
                                description="train the verifier (a second look at each detection)")
    p.add_argument("--train", required=True, nargs="+",
                   help=".npz of hanja_live.train.verifier_crops (several: their patches joined)")
    p.add_argument("--val", required=True, help=".npz of other scenes (another --seed)")
    p.add_argument("--out", required=True, help="checkpoint .pt to write")
    p.add_argument("--onnx", help="also export ONNX here")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--width", type=int, default=16, help="channels of the first stage (default 16)")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--device", default="cpu", help="cpu, or a CUDA index such as 0")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    for flag, path in [("train", part) for part in args.train] + [("val", args.val)]:
        if not Path(path).is_file():
            raise ConfigError("--%s %s not found; make it with python -m hanja_live.train.verifier_crops"
                              % (flag, path))
    if args.epochs < 1 or args.batch < 1 or args.width < 1:
        raise ConfigError("--epochs, --batch and --width must be at least 1")
    if args.device.isdigit():
        args.device = "cuda:" + args.device
    return args


def main(argv=None):
    args = parse_args(argv)
    stats, _ = train(args.train, args.val, args.out, args.onnx, args.epochs, args.batch, args.width,
                     args.lr, args.device, args.seed)
    print(json.dumps(stats))
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except ConfigError as exc:
        sys.exit("train_verifier: %s" % exc)
