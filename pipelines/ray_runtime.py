"""Starting or joining Ray: a local cluster on demand, or an existing one from ``ray.address`` /
``RAY_ADDRESS``."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayParams:
    """Section ``ray``: where to run and with what.

    ``address``: null starts a local cluster with ``num_cpus``; ``"auto"`` or ``host:port`` joins one (so
    does the
    ``RAY_ADDRESS`` environment variable). ``storage_path`` holds checkpoints and results; on a multi-node
    cluster it
    must be shared storage (NFS mounted at the same path on every node, or an ``s3://`` / ``gs://`` URI).
    """

    address: str | None
    num_cpus: int
    object_store_memory_mb: int
    num_workers: int
    use_gpu: bool
    cpus_per_worker: float
    storage_path: str
    max_failures: int


def cluster_address(params: RayParams) -> str | None:
    """The cluster to join, if any: ``ray.address`` wins over ``RAY_ADDRESS``."""
    return params.address or os.environ.get("RAY_ADDRESS") or None


def storage_uri(params: RayParams) -> str:
    """``storage_path`` as Ray wants it: URIs unchanged, local paths made absolute (Ray refuses relative
    ones)."""
    if "://" in params.storage_path:
        return params.storage_path
    path = Path(params.storage_path).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def ensure_ray(params: RayParams) -> None:
    """Connect to the configured cluster, or start a local one, unless Ray is already initialised."""
    import ray

    if ray.is_initialized():
        return
    address = cluster_address(params)
    runtime_env = {
        "env_vars": {
            k: os.environ[k]
            for k in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_PROGRESS_BARS", "TOKENIZERS_PARALLELISM")
            if k in os.environ
        }
    }
    if address:
        logger.info("joining Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
    else:
        logger.info("starting a local Ray cluster with %d CPUs", params.num_cpus)
        ray.init(
            address="local",  # never attach silently to a `ray start` cluster found on this machine
            num_cpus=params.num_cpus,
            include_dashboard=False,
            object_store_memory=params.object_store_memory_mb * 2**20,
            runtime_env=runtime_env,
            logging_level="WARNING",
        )
