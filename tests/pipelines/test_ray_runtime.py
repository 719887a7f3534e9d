"""How the stages start Ray so that it stays quiet for a cause (pipelines.ray_runtime): token auth named for a
local cluster, the preemption watcher off on one node, the PlacementGroupCleaner left out without the State
API. Ray's own start is replaced by a stub here; the Ray Train internals the trainer relies on are real."""

from __future__ import annotations

import os

import pytest

from pipelines import ray_runtime
from pipelines.ray_runtime import RayParams

PARAMS = RayParams(
    address=None,
    num_cpus=2,
    object_store_memory_mb=256,
    num_workers=1,
    use_gpu=False,
    cpus_per_worker=1,
    storage_path="ray_results",
    max_failures=0,
)


class FakeRay:
    def __init__(self, nodes: int):
        self.calls: list[dict] = []
        self.nodes_count = nodes

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs) -> None:
        self.calls.append(kwargs)

    def nodes(self) -> list[dict]:
        return [{}] * self.nodes_count


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch):
    import ray

    def install(nodes: int) -> FakeRay:
        fake = FakeRay(nodes)
        for name in ("is_initialized", "init", "nodes"):
            monkeypatch.setattr(ray, name, getattr(fake, name))
        return fake

    for var in ("RAY_ADDRESS", ray_runtime.AUTH_MODE_ENV, ray_runtime.PREEMPTION_WATCHER_ENV):
        monkeypatch.setenv(var, "")  # recorded, so what ensure_ray sets is undone after the test
        monkeypatch.delenv(var)
    # Ray's own helper also refreshes this process's cached Ray config: stand in for it (env only)
    monkeypatch.setattr(
        ray_runtime, "name_token_auth", lambda: os.environ.__setitem__(ray_runtime.AUTH_MODE_ENV, "token")
    )
    return install


def test_local_cluster_names_token_auth_and_drops_the_watcher_on_one_node(
    fake_ray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LGVQ_PROGRESS_DIR", "/tmp/progress")
    fake = fake_ray(nodes=1)
    ray_runtime.ensure_ray(PARAMS)
    assert fake.calls[0]["address"] == "local" and fake.calls[0]["include_dashboard"] is False
    assert os.environ[ray_runtime.AUTH_MODE_ENV] == "token"  # explicit: Ray's default kept, no warning
    assert os.environ[ray_runtime.PREEMPTION_WATCHER_ENV] == "0"
    assert fake.calls[0]["runtime_env"]["env_vars"]["LGVQ_PROGRESS_DIR"] == "/tmp/progress"  # to the workers


def test_explicit_settings_and_multi_node_clusters_are_left_alone(
    fake_ray, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ray_runtime.AUTH_MODE_ENV, "disabled")
    fake = fake_ray(nodes=3)
    ray_runtime.ensure_ray(PARAMS)
    assert os.environ[ray_runtime.AUTH_MODE_ENV] == "disabled"
    assert ray_runtime.PREEMPTION_WATCHER_ENV not in os.environ  # other nodes can be preempted: keep it

    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    monkeypatch.delenv(ray_runtime.AUTH_MODE_ENV)
    fake = fake_ray(nodes=1)
    ray_runtime.ensure_ray(PARAMS)
    assert fake.calls[0]["address"] == "127.0.0.1:6379"
    assert ray_runtime.AUTH_MODE_ENV not in os.environ  # a joined cluster's auth is its own business


def test_trainer_without_state_api_has_no_placement_group_cleaner() -> None:
    """Guards the Ray Train v2 internals torch_trainer relies on (Ray is pinned; an upgrade that renames them
    fails here, not by flooding the logs again)."""
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    def loop() -> None:
        pass

    scaling = ScalingConfig(num_workers=1)
    stock = TorchTrainer(loop, scaling_config=scaling)._create_default_callbacks()
    assert any(isinstance(cb, PlacementGroupCleanerCallback) for cb in stock)
    ours = ray_runtime.trainer_without_cleaner()(loop, scaling_config=scaling)
    kept = ours._create_default_callbacks()
    assert not any(isinstance(cb, PlacementGroupCleanerCallback) for cb in kept)
    assert len(kept) == len(stock) - 1 and isinstance(ours, TorchTrainer)
