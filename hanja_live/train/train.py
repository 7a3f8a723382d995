"""Train a detector for the ten hanja numerals from scratch with ultralytics.

    python -m hanja_live.train.train --data DIR/data.yaml --model yolov5n --imgsz 416 \\
        --epochs 60 --batch 64 --workers 16 --project runs --name hanja [--device 0] [--cache ram]

``--model yolov5n`` builds ultralytics' yolov5n.yaml with random weights (nothing can be
downloaded, and nc comes from data.yaml). Ultralytics builds YOLOv5 with its own anchor-free,
decoupled head ("YOLOv5u"): the exported output is (1, 4+nc, N), layout "anchor_free".

Augmentation is chosen for handwriting seen by a camera: no flips (a mirrored character is
another shape: 匕 is a mirrored 七), a little rotation, shear and perspective for a tilted sheet,
default HSV jitter for lighting, mosaic with scale 0.5 for size variety, switched off for the
last ~10 % of epochs so training ends on whole, unmosaicked images (with --hours too:
TimedMosaicClose).
"""

import argparse
import csv
import sys
import time
from pathlib import Path
from typing import Optional

from hanja_live.errors import ConfigError

AUGMENT = {
    "fliplr": 0.0,
    "flipud": 0.0,
    "degrees": 10.0,
    "shear": 2.0,
    "perspective": 0.0005,
    "translate": 0.1,
    "scale": 0.5,
    "mixup": 0.0,
    "hsv_h": 0.015,
    "hsv_s": 0.7,
    "hsv_v": 0.4,
}


# Starting from trained weights: one warm-up epoch instead of three; a long warm-up spends most
# of a short fine-tune re-warming weights that are already good.
FINETUNE = {"warmup_epochs": 1.0}


def close_mosaic_epochs(epochs):
    """Epochs at the end trained without mosaic: about 10 %, at least one."""
    return max(1, round(0.1 * epochs))


class TimedMosaicClose(object):
    """on_train_epoch_start callback that ends mosaic for the last ~10 % of a --hours run.

    With a time budget ultralytics refits its epoch count after every epoch and stops mid-epoch
    when the time is up, so a close_mosaic count taken from --epochs misfires: with --epochs 60
    and a budget that fits 5 epochs, "epoch == 5 - 6" never holds and mosaic stayed on to the end.
    Timed runs pass close_mosaic=0 and use this instead, one instance per run. It decides on time:
    at an epoch's start it closes mosaic when the time left is nearer close_mosaic_epochs(epochs
    that fit the budget) mean epochs than the time left after one more epoch would be. A budget
    that fits one epoch keeps mosaic (the mean is only known after the first epoch).
    """

    def __init__(self, clock=time.time):
        self.closed = False
        self.clock = clock

    def __call__(self, trainer):
        done = trainer.epoch - trainer.start_epoch
        if self.closed or done < 1:
            return
        budget = trainer.args.time * 3600.0
        elapsed = self.clock() - trainer.train_time_start
        mean = elapsed / done  # seconds per epoch, validation included
        wanted = close_mosaic_epochs(max(1, round(budget / mean))) * mean
        if budget - elapsed <= wanted + mean / 2:
            # what ultralytics' own loop calls when its close_mosaic epoch comes
            trainer._close_dataloader_mosaic()
            trainer.train_loader.reset()
            self.closed = True


def schedule_args(epochs, hours, mosaic=True):
    """ultralytics settings for a run's length and mosaic: (overrides, callbacks by event).

    mosaic=False trains on whole images from the first epoch (e.g. a short last fine-tune)."""
    timed = {"time": hours} if hours else {}
    if not mosaic:
        return dict(timed, mosaic=0.0, close_mosaic=0), {}
    if hours:
        return dict(timed, mosaic=1.0, close_mosaic=0), {"on_train_epoch_start": TimedMosaicClose()}
    return {"mosaic": 1.0, "close_mosaic": close_mosaic_epochs(epochs)}, {}


def model_config(model):
    """'yolov5n' -> 'yolov5n.yaml' (ultralytics' built-in config); a .yaml path stays as given."""
    if model.endswith((".yaml", ".yml")):
        return model
    if model.endswith(".pt"):
        raise ConfigError(f"--model {model}: training starts from scratch, give an architecture "
                          f"such as yolov5n or yolov5s (to continue a run use --resume)")
    return model + ".yaml"


# the constant ultralytics' build_dataloader seeds every loader's generator with (plus RANK)
ULTRALYTICS_LOADER_SEED = 6148914691236517205


def seed_train_loader(loader, seed):
    """Make ultralytics' training loader draw its order and augmentation from ``seed``.

    build_dataloader seeds the loader's generator with a constant (plus RANK), and that generator
    alone decides the shuffle and the worker seeds (hence mosaic partners and every augmentation
    draw in the workers): without this, runs with different --seed saw the same batches. Seed 0
    gives ultralytics' own constant, so runs from before this change repeat exactly.
    """
    from torch.utils.data.distributed import DistributedSampler
    from ultralytics.utils import RANK

    loader.generator.manual_seed(ULTRALYTICS_LOADER_SEED + RANK + int(seed))
    if isinstance(loader.sampler, DistributedSampler):
        # under DDP the order comes from the sampler's own seed (0 by default), not the generator
        loader.sampler.seed = int(seed)
    # the loader built its iterator already, taking the worker seeds (and with workers, the
    # first order) from the constant; a new one draws them from the generator seeded here
    loader.reset()


def _trainer_class(amp_check):
    """DetectionTrainer that needs neither polars nor the internet.

    ultralytics reads results.csv back with polars (a 45 MB wheel) only to store the history
    in each checkpoint; the stdlib csv module does the same. Its AMP self-test downloads
    yolo11n.pt; unless ``amp_check`` it is replaced by "AMP on CUDA", which holds on the H100.
    """
    from ultralytics.engine import trainer as trainer_module
    from ultralytics.models.yolo.detect import DetectionTrainer

    if not amp_check:
        def cuda_amp(model):
            on_cuda = next(model.parameters()).device.type == "cuda"
            print(f"train: AMP {'on' if on_cuda else 'off'} (ultralytics' online AMP self-test "
                  f"skipped; --amp-check runs it)")
            return on_cuda
        trainer_module.check_amp = cuda_amp

    class OfflineDetectionTrainer(DetectionTrainer):
        def get_dataloader(self, dataset_path, batch_size=16, rank=0, mode="train"):
            loader = super().get_dataloader(dataset_path, batch_size, rank, mode)
            if mode == "train":
                seed_train_loader(loader, self.args.seed)
            return loader

        def read_results_csv(self):
            if not Path(self.csv).is_file():
                return {}
            with open(self.csv, newline="", encoding="utf-8") as f:
                rows = list(csv.DictReader(f))
            columns = {}
            for row in rows:
                for key, value in row.items():
                    columns.setdefault(key.strip(), []).append(float(value))
            return columns

    return OfflineDetectionTrainer


def train(data: str, model: str = "yolov5n", imgsz: int = 416, epochs: int = 60,
          batch: int = 64, workers: int = 8, project: str = "runs", name: str = "hanja",
          device: Optional[str] = None, cache: Optional[str] = None, seed: int = 0, patience: int = 100,
          resume: bool = False, exist_ok: bool = False, amp_check: bool = False,
          hours: Optional[float] = None, init_weights: Optional[str] = None,
          mosaic: bool = True, save_period: int = -1) -> Path:
    """Train and return the path of best.pt (last.pt when no validation ran).

    ``init_weights``: start from our own earlier checkpoint (fine-tuning) instead of random
    weights; nothing is downloaded. A pruned checkpoint (hanja_live.train.prune) is trained as
    the network it holds: its channel widths are not ``model``'s, whose weights would not fit.
    An unpruned one must hold ``model`` for the classes of ``data`` (ConfigError otherwise), and
    training starts from every one of its tensors.
    ``hours``: a wall-clock budget; ultralytics then fits the epoch count (and its learning-rate
    schedule) to the time, which suits a lent GPU held for a fixed time.
    """
    from hanja_live.train.offline import prepare_ultralytics

    prepare_ultralytics()
    from ultralytics import YOLO

    if init_weights and not resume:
        ratio = pruned_ratio(init_weights)
        if ratio is not None:
            from hanja_live.train.prune import finetune

            print(f"train: {init_weights} is a pruned network (ratio {ratio}); training it as it is")
            best = finetune(init_weights, data, imgsz=imgsz, epochs=epochs, hours=hours,
                            batch=batch, workers=workers, project=project, name=name,
                            device=device, cache=cache, seed=seed, patience=patience,
                            amp_check=amp_check, exist_ok=exist_ok, mosaic=mosaic,
                            save_period=save_period)
            print(f"best weights: {best.resolve()}")
            return best
    trainer = _trainer_class(amp_check)
    # absolute: ultralytics moves a relative multi-part project (runs/x) under its own runs dir
    project = Path(project).resolve()
    run_dir = project / name
    if resume:
        last = run_dir / "weights" / "last.pt"
        if not last.is_file():
            raise ConfigError(f"--resume: {last} does not exist; start the run without --resume")
        yolo = YOLO(str(last))
        # a resumed timed run gets its settings back from the checkpoint, but not our callback
        saved = (getattr(yolo, "ckpt", None) or {}).get("train_args", {})
        if saved.get("time") and saved.get("mosaic", 0) > 0:
            yolo.add_callback("on_train_epoch_start", TimedMosaicClose())
        yolo.train(resume=True, trainer=trainer)
    else:
        if not Path(data).is_file():
            raise ConfigError(f"--data {data} does not exist; generate the data set with "
                              f"python -m hanja_live.train.dataset")
        if init_weights:
            # the checkpoint's own network, every tensor: ultralytics' ``pretrained`` would build
            # model_config(model) for 80 classes and copy only the tensors that fit, leaving the
            # class branch random (all of cv3 for yolov5n, whose 80-class branch is wider)
            yolo = YOLO(str(init_weights), task="detect")
            check_start_network(yolo.model, model, data, init_weights)
        else:
            yolo = YOLO(model_config(model), task="detect")
        schedule, callbacks = schedule_args(epochs, hours, mosaic)
        for event, callback in callbacks.items():
            yolo.add_callback(event, callback)
        yolo.train(
            trainer=trainer,
            data=str(data), imgsz=imgsz, epochs=epochs, batch=batch, workers=workers,
            project=str(project), name=name, exist_ok=exist_ok,
            device=device, cache=cache or False, seed=seed, patience=patience,
            # seeds stay fixed; deterministic kernels were measured at 2.3 vs 2.5 batches/s on an
            # H100, a small cost, but the time budget (--hours) makes runs unrepeatable anyway
            pretrained=False,
            plots=False, amp=True, deterministic=False, save_period=save_period,
            **schedule, **AUGMENT,
            **(FINETUNE if init_weights else {}),
        )
    best = Path(yolo.trainer.best)
    if not best.is_file():
        best = Path(yolo.trainer.last)
    print(f"best weights: {best.resolve()}")
    return best


def check_start_network(network, model: str, data: str, init_weights: str) -> None:
    """ConfigError unless ``network`` (from ``init_weights``) has ``model``'s layers for the
    classes of ``data``: a mismatch would train a network other than the one asked for."""
    from ultralytics.nn.tasks import DetectionModel

    from hanja_live.train.evaluate import load_names

    nc = len(load_names(data))
    held_nc = int(network.model[-1].nc)
    if held_nc != nc:
        raise ConfigError(f"--init-weights {init_weights} predicts {held_nc} classes but {data} has "
                          f"{nc}; start from weights trained on these classes")
    held = network.state_dict()
    fresh = DetectionModel(model_config(model), nc=nc, verbose=False).state_dict()
    if held.keys() != fresh.keys() or any(held[k].shape != fresh[k].shape for k in held):
        trained_as = Path(str(network.yaml.get("yaml_file", "?"))).stem
        raise ConfigError(f"--init-weights {init_weights} is a {trained_as} network, not --model "
                          f"{model}; give --model {trained_as}")


def pruned_ratio(checkpoint: str) -> Optional[float]:
    """The pruning ratio recorded in a checkpoint written by hanja_live.train.prune (or by a
    fine-tune of one), None for an unpruned network; ConfigError for a missing or bad file."""
    from hanja_live.train.average import load

    net, _ = load(checkpoint)
    record = getattr(net, "pruning", None)
    return float(record["ratio"]) if isinstance(record, dict) and "ratio" in record else None


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m hanja_live.train.train",
                                description="train a hanja numeral detector from scratch")
    p.add_argument("--data", required=True, help="data.yaml written by hanja_live.train.dataset")
    p.add_argument("--model", default="yolov5n", help="yolov5n, yolov5s, ... or a model .yaml")
    p.add_argument("--imgsz", type=int, default=416)
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--workers", type=int, default=8, help="data loader processes")
    p.add_argument("--project", default="runs", help="parent folder of the run")
    p.add_argument("--name", default="hanja", help="run folder name (PROJECT/NAME)")
    p.add_argument("--device", help="0, 0,1 or cpu (default: ultralytics picks)")
    p.add_argument("--cache", choices=("ram", "disk"), help="cache decoded images")
    p.add_argument("--seed", type=int, default=0,
                   help="seeds the weight initialisation and the data order and augmentation "
                        "(default 0: ultralytics' own data order)")
    p.add_argument("--patience", type=int, default=100, help="stop after N epochs without gain")
    p.add_argument("--resume", action="store_true", help="continue PROJECT/NAME/weights/last.pt")
    p.add_argument("--exist-ok", action="store_true", help="reuse PROJECT/NAME instead of NAME2")
    p.add_argument("--amp-check", action="store_true",
                   help="run ultralytics' AMP self-test (downloads yolo11n.pt)")
    p.add_argument("--hours", type=float, help="train for this wall-clock time instead of --epochs")
    p.add_argument("--init-weights", help="start from this checkpoint of ours (fine-tuning)")
    p.add_argument("--no-mosaic", action="store_true",
                   help="train on whole images from the first epoch (default: mosaic, off for the "
                        "last ~10 %% of epochs)")
    p.add_argument("--save-period", type=int, default=-1, metavar="N",
                   help="also keep weights/epochK.pt every N epochs (K counts from 0), e.g. to average the last few "
                        "with hanja_live.train.average (default: only best.pt and last.pt)")
    args = p.parse_args(argv)
    try:
        train(args.data, args.model, args.imgsz, args.epochs, args.batch, args.workers,
              args.project, args.name, args.device, args.cache, args.seed, args.patience,
              args.resume, args.exist_ok, args.amp_check, args.hours, args.init_weights,
              mosaic=not args.no_mosaic, save_period=args.save_period)
    except ConfigError as exc:
        sys.exit(f"train: {exc}")


if __name__ == "__main__":
    main()
