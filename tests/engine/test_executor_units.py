"""What a worker asks Ray for, how many fit, and the executor choice (no cluster needed)."""

from __future__ import annotations

import pytest

from forgetscope.engine.evaluate import EvalSettings
from forgetscope.engine.executor import ExecutorError, LocalExecutor, make_executor
from forgetscope.engine.ray_executor import capacity, cluster_device, unit_resources


def test_a_worker_asks_for_the_gpus_of_one_model_or_for_cpu_threads():
    assert unit_resources(EvalSettings(backend="vllm", tensor_parallel_size=4), 1) == {"num_cpus": 1, "num_gpus": 4}
    assert unit_resources(EvalSettings(device="cuda"), 2) == {"num_cpus": 2, "num_gpus": 1}
    assert unit_resources(EvalSettings(device="cpu"), 3, cluster_gpus=8) == {"num_cpus": 3, "num_gpus": 0}
    assert unit_resources(EvalSettings(device="auto"), 1, cluster_gpus=8)["num_gpus"] == 1
    assert unit_resources(EvalSettings(device="auto"), 1, cluster_gpus=0)["num_gpus"] == 0


def test_device_auto_becomes_the_device_the_cluster_gives_its_workers():
    assert cluster_device(EvalSettings(device="auto"), cluster_gpus=0).device == "cpu"
    assert cluster_device(EvalSettings(device="auto"), cluster_gpus=2).device == "cuda"
    assert cluster_device(EvalSettings(device="cpu"), cluster_gpus=2).device == "cpu"  # asked for: kept
    assert cluster_device(EvalSettings(device="cuda:1"), cluster_gpus=0).device == "cuda:1"


def test_capacity_counts_workers_per_alive_node():
    nodes = [{"Alive": True, "Resources": {"CPU": 2.0}},
             {"Alive": True, "Resources": {"CPU": 16.0, "GPU": 4.0}},
             {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]
    assert capacity(nodes, {"num_cpus": 1, "num_gpus": 0}) == 18
    assert capacity(nodes, {"num_cpus": 3, "num_gpus": 0}) == 0 + 5
    assert capacity(nodes, {"num_cpus": 1, "num_gpus": 2}) == 2  # two 2-GPU engines on the GPU node
    assert capacity(nodes, {"num_cpus": 1, "num_gpus": 8}) == 0  # the dead node does not count


def test_make_executor_refuses_what_does_not_fit_together():
    assert isinstance(make_executor("local"), LocalExecutor)
    with pytest.raises(ExecutorError, match="options of --executor ray"):
        make_executor("local", address="auto")
    with pytest.raises(ExecutorError, match="unknown executor 'spark'"):
        make_executor("spark")
