"""How many inference workers the pipelined loop runs, and with how many threads each."""
import pytest

from hanja_live.app import load_detectors
from hanja_live.config import load_config
from hanja_live.errors import ConfigError
from hanja_live.workers import MAX_AUTO_WORKERS, plan_workers, usable_cpus


@pytest.mark.parametrize("workers, threads, cpu_only, cpus, expected", [
    (0, 0, True, 2, (2, 1)),  # auto on a 2-core CPU: two single-thread sessions
    (0, 0, True, 16, (MAX_AUTO_WORKERS, 1)),
    (0, 0, True, 1, (1, 0)),  # one core: one session, ONNX Runtime's own threading
    (0, 0, True, None, (1, 0)),  # CPU count unknown
    (0, 0, False, 16, (1, 0)),  # GPU (TensorRT, CUDA): one session keeps it busy
    (0, 3, True, 2, (2, 3)),  # threads given: kept
    (1, 0, True, 16, (1, 0)),  # workers given: kept
    (3, 0, False, 2, (3, 1)),  # several workers share the cores
])
def test_plan_workers(workers, threads, cpu_only, cpus, expected):
    assert plan_workers(workers, threads, cpu_only, cpus) == expected


@pytest.mark.parametrize("workers, expected", [
    (0, min(MAX_AUTO_WORKERS, usable_cpus() or 1)),  # ONNX Runtime on this CPU
    (1, 1),
    (3, 3),
])
def test_load_detectors_on_this_cpu(tiny_model, workers, expected):
    model = load_config(None, {"model": {"path": tiny_model, "workers": workers,
                                         "backend": "onnxruntime"}}).model
    detectors = load_detectors(model)
    try:
        assert len(detectors) == expected
        assert len({id(d.backend) for d in detectors}) == expected  # a session each
        assert all(d.backend.on_cpu for d in detectors)
        assert all(d.backend.input is not None for d in detectors)
    finally:
        for d in detectors:
            d.backend.close()


def test_negative_workers_is_a_config_error(tiny_model):
    with pytest.raises(ConfigError, match="workers"):
        load_config(None, {"model": {"path": tiny_model, "workers": -1}})
