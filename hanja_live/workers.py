"""How many inference workers (model sessions side by side) the pipelined loop runs.

On a GPU one session keeps the device busy, so one worker. On a CPU, ONNX Runtime's threads
inside one inference wait for each other between layers; single-threaded sessions side by side
use the cores better (README, Speed: 2 workers on 2 cores 1.26x the sequential loop, 4 on a
16-core CPU 1.43x, where 2 were too few).
"""
import os
from typing import Optional

MAX_AUTO_WORKERS = 4  # more were not measured better; each one holds a model session


def usable_cpus():
    # type: () -> Optional[int]
    """CPUs this process may run on (its affinity mask, e.g. under taskset or a container's
    cpuset), else all of them; None where unknown."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def plan_workers(workers, threads, cpu_only, cpus):
    # type: (int, int, bool, Optional[int]) -> tuple
    """(workers, threads per worker) from the config's model.workers and model.threads.

    workers:  0 = auto: on a CPU-only backend one worker per CPU up to MAX_AUTO_WORKERS, else 1
    threads:  0 = ONNX Runtime's default (one per core), or as given
    cpu_only: the backend runs the network on the CPU (ONNX Runtime's CPU provider alone)
    With more than one worker and threads 0, each worker gets one thread: they share the cores.
    """
    if workers == 0:
        workers = min(MAX_AUTO_WORKERS, cpus or 1) if cpu_only else 1
    if workers > 1 and threads == 0:
        threads = 1
    return workers, threads
