"""How a study's runs execute: the backend, the workers and their share of the machine, attempts, and what the
runs share (tokenised data, batched seeds). Read by :mod:`.backends`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .runner import ISOLATIONS
from .spec import TOKENIZED_DIR

__all__ = ["BACKENDS", "ExecutionOptions"]

BACKENDS = ("sequential", "local", "ray")


@dataclass(frozen=True)
class ExecutionOptions:
    """How to execute a study's runs.

    Attributes:
        backend: ``sequential``, ``local`` or ``ray``.
        workers: local: worker processes (default: one per GPU, else 1); ray: runs in flight at once
            (default: as many as the cluster's resources fit).
        runs_per_gpu: local: runs at once on each GPU (small encoders leave a GPU mostly idle). One worker per
            GPU starts first; once a run has completed, the others start if its peak memory (``results.json``'s
            ``device.peak_memory_gib``, plus a CUDA context each) times K fits in 90 % of the GPU's memory,
            else as many as fit, and the study says so. Ray: ``gpus_per_run=1/K`` instead.
        isolation: ``subprocess`` (a fresh process per run), ``forkserver`` (a fresh child of a server that has the
            job imported, :mod:`.forkserver`) or ``in-process``; see :mod:`.runner`.
        script: a fine-tune script of your own (default: the package's job, :mod:`...fine_tune`).
        address: ray: the cluster to join (``auto``, ``ray://host:port``); ``None`` starts a local instance.
        cpus_per_run, gpus_per_run: ray: resources each run asks for (GPUs default to 1 if the cluster has
            any, else 0).
        ray_num_cpus: ray: CPUs of a *local* instance this backend starts (default: all).
        max_attempts: attempts per run in all, across invocations, before an erroring run is left alone.
        max_retries: ray: re-executions of a run whose worker process or node died (Ray's own retries,
            within one attempt).
        heartbeat_interval_s, poll_interval_s: how often claims are refreshed and progress is checked.
        malloc_thresholds: subprocess runs on CPU start with glibc's malloc thresholds fixed
            (:data:`.environment.MALLOC_THRESHOLDS`) unless the user exported their own.
        share_tokenized: the runs of the package's job keep their tokenised data in ``<study>/tokenized`` and
            load it from there (:func:`~transformers_fine_tuning.tasks.preprocessing.tokenize_dataset`), so only the first run per task × data ×
            tokenizer × length tokenises; false: every run tokenises.
        batch_seeds: sequential and local: train up to this many seeds of one recipe together, as one batched
            computation in one process (:mod:`...batched`); runs it cannot batch go singly, and their log says why.
    """

    backend: str = "sequential"
    workers: int | None = None
    runs_per_gpu: int = 1
    isolation: str = "subprocess"
    script: str | None = None
    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float | None = None
    ray_num_cpus: int | None = None
    max_attempts: int = 3
    max_retries: int = 2
    heartbeat_interval_s: float = 30.0
    poll_interval_s: float = 1.0
    malloc_thresholds: bool = True
    share_tokenized: bool = True
    batch_seeds: int = 1

    def tokenized_cache_dir(self, store_path: str | Path) -> Path | None:
        """Where the study's runs share their tokenised data, beside its store; ``None`` when not shared."""
        return Path(store_path).parent / TOKENIZED_DIR if self.share_tokenized else None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, not {self.backend!r}")
        if self.isolation not in ISOLATIONS:
            raise ValueError(f"isolation must be one of {ISOLATIONS}, not {self.isolation!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"workers must be at least 1, not {self.workers}")
        if self.runs_per_gpu < 1:
            raise ValueError(f"runs_per_gpu must be at least 1, not {self.runs_per_gpu}")
        if self.runs_per_gpu > 1 and self.workers is not None:
            raise ValueError(
                "give either workers or runs_per_gpu (--workers, --runs-per-gpu): with K runs per GPU the workers "
                "are K per GPU"
            )
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.batch_seeds < 1:
            raise ValueError(f"batch_seeds must be at least 1, not {self.batch_seeds}")
        if self.batch_seeds > 1 and (self.backend == "ray" or self.isolation == "in-process" or self.script):
            raise ValueError(
                "batch_seeds (--batch-seeds) trains seeds together in a process of the package's own job: it needs "
                "the sequential or local backend, a process per run (not --in-process) and no --script"
            )
        if self.isolation == "forkserver" and (self.backend == "ray" or self.script):
            raise ValueError(
                "the fork server (--fork-server) starts the package's own job in the sequential or local backend's "
                "workers; with --script or on Ray, leave it out"
            )
