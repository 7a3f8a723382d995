"""Make ultralytics safe on a machine without internet; call before the first ultralytics import.

Ultralytics reaches out by itself: it resolves DNS names to decide whether it is online, sends
usage events, pip-installs missing requirements, and its AMP self-test downloads yolo11n.pt.
On the training machine nothing outside can be reached, and a download that waits on a
silently dropped connection can stall a run for minutes, so all of that is switched off here.
"""

import os

# Integrations that would log to a remote service, or need packages the machine lacks.
_REMOTE_SETTINGS = ("sync", "hub", "wandb", "mlflow", "comet", "clearml", "dvc", "neptune",
                    "raytune", "tensorboard")


def prepare_ultralytics():
    """Set ultralytics' offline switches; returns the imported ``ultralytics`` module."""
    os.environ["YOLO_OFFLINE"] = "true"  # is_online() -> False without DNS look-ups
    os.environ["YOLO_AUTOINSTALL"] = "false"  # never pip-install a missing requirement
    import ultralytics
    from ultralytics import settings

    off = {key: False for key in _REMOTE_SETTINGS if settings.get(key)}
    if off:
        settings.update(off)
    return ultralytics
