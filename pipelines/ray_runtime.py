"""Starting or joining Ray: a local cluster on demand, or an existing one from ``ray.address`` /
``RAY_ADDRESS``."""

from __future__ import annotations

import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# Passed to every Ray worker of a stage (runtime_env): offline model hubs, quiet tokenizers, and the progress
# folder of the console (pipelines.progress), which the training workers write to.
FORWARDED_ENV = (
    "HF_HUB_OFFLINE",
    "HF_HUB_DISABLE_PROGRESS_BARS",
    "TOKENIZERS_PARALLELISM",
    "LGVQ_PROGRESS_DIR",
)

# Ray 2.60 turns token authentication on by default for a new local cluster and warns about it on every start
# ("Token authentication is enabled for this Ray cluster. Set RAY_AUTH_MODE=disabled to opt out"): the
# warning is for RAY_AUTH_MODE being unset. Naming the mode keeps that default (the token is kept in
# ~/.ray/auth_token, made on first use) without the warning. An explicit RAY_AUTH_MODE in the environment
# wins (make pipeline's shared head sets "disabled" for its 127.0.0.1 head).
AUTH_MODE_ENV = "RAY_AUTH_MODE"

# Ray Train's own switch for its PreemptionWatcher actor (one per worker group, polling node drains every
# 5 s). Created with max_restarts=-1 and its constructor arguments in the object store, it makes Ray core log
# an error line ("core_worker.cc ... E ... Actor with class name: 'PreemptionWatcher' ... has constructor
# arguments in the object store and max_restarts > 0", ray-project/ray#53727). It watches for nodes being
# drained (preempted), which on a single-node cluster would end the run anyway: there it is switched off (an
# explicit value in the environment wins; Ray Train passes the variable from the driver to its controller).
PREEMPTION_WATCHER_ENV = "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER"


def ensure_ray(params: RayParams) -> None:
    """Connect to the configured cluster, or start a local one, unless Ray is already initialised."""
    import ray

    if ray.is_initialized():
        return
    address = cluster_address(params)
    runtime_env = {"env_vars": {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}}
    if address:
        logger.info("joining Ray cluster at %s", address)
        ray.init(address=address, runtime_env=runtime_env, logging_level="WARNING")
    else:
        logger.info("starting a local Ray cluster with %d CPUs", params.num_cpus)
        if AUTH_MODE_ENV not in os.environ:
            name_token_auth()
        ray.init(
            address="local",  # never attach silently to a `ray start` cluster found on this machine
            num_cpus=params.num_cpus,
            include_dashboard=False,
            object_store_memory=params.object_store_memory_mb * 2**20,
            runtime_env=runtime_env,
            logging_level="WARNING",
        )
    if len(ray.nodes()) == 1:
        os.environ.setdefault(PREEMPTION_WATCHER_ENV, "0")


def name_token_auth() -> None:
    """Set RAY_AUTH_MODE=token for this process and the cluster it starts, the way ``ray.init`` does itself.

    Setting the variable alone is not enough once Ray is imported: Ray caches its config at import, so the
    driver would still talk without a token to a GCS that wants one ("Failed to start GCS ...
    InvalidAuthToken"). Ray's own helper sets the variable and refreshes that cache; should a Ray upgrade
    move it, nothing is set and Ray's default applies (token auth, with its warning).
    """
    try:
        from ray._private.authentication.authentication_token_setup import _enable_token_auth
    except ImportError:
        logger.debug("Ray's token-auth helper moved; leaving RAY_AUTH_MODE to Ray's default")
        return
    _enable_token_auth()


def state_api_available() -> bool:
    """Whether this cluster answers Ray's State API (it needs the dashboard, i.e. ``ray[default]`` and a
    cluster started with it; ``ensure_ray`` and ``make pipeline``'s shared head start without)."""
    from ray.util.state import list_nodes

    try:
        list_nodes(limit=1, timeout=5, raise_on_missing_output=False)
    except Exception as err:  # RayStateApiException (no API server), ConnectionError, …
        logger.debug("no Ray State API: %s", err)
        return False
    return True


def torch_trainer(*args: Any, **kwargs: Any) -> Any:
    """A ``ray.train.torch.TorchTrainer``; on a cluster without the State API, one without Ray Train's
    PlacementGroupCleaner.

    Ray Train v2 (2.60) starts that cleaner as a detached actor per run: it asks the State API once a second
    whether the run's controller is still alive, to free the run's placement group should the controller die.
    Without the State API every question fails, it logs "Failed to query Ray Train Controller actor state.
    State API may be temporarily unavailable. Continuing to monitor." once a second for the whole run (1,756
    lines in a default ``make pipeline``) and could never clean anything up. Ray has no setting for it, so the
    trainer leaves it out of its default callbacks there; with the State API (a cluster with the dashboard) it
    stays. The alternative, the dashboard, was measured at +1.0 GB of memory, +11 processes and +1.2 s per
    local start on this project's 2-CPU machines, plus ~100 MB of extra packages (``ray[default]``).
    """
    from ray.train.torch import TorchTrainer

    if state_api_available():
        return TorchTrainer(*args, **kwargs)
    return trainer_without_cleaner()(*args, **kwargs)


@functools.cache
def trainer_without_cleaner() -> type:
    """The TorchTrainer subclass ``torch_trainer`` uses without the State API (made once, on first use: it
    imports Ray Train)."""
    from ray.train.torch import TorchTrainer
    from ray.train.v2._internal.callbacks.placement_group_callback import PlacementGroupCleanerCallback

    class TrainerWithoutCleaner(TorchTrainer):
        """A TorchTrainer whose default callbacks leave out the PlacementGroupCleaner (``torch_trainer``)."""

        def _create_default_callbacks(self):  # Ray Train v2 internal; tests/pipelines check it still exists
            callbacks = super()._create_default_callbacks()
            return [cb for cb in callbacks if not isinstance(cb, PlacementGroupCleanerCallback)]

    return TrainerWithoutCleaner


@contextmanager
def worker_scratch(prefix: str, parent: Path | None = None) -> Iterator[Path]:
    """A Ray worker's local checkpoint folder (``prefix`` + random, in ``parent``, created if missing, or the
    system temp folder), removed when the block ends: every checkpoint reported from it has been copied to
    storage by then (synchronous upload)."""
    if parent is not None:
        parent.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
