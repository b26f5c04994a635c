"""Settings of the execution engine (config section ``engine``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from pipeline.config import build_settings
from pipeline.errors import ConfigError

LOCAL, RAY = "local", "ray"
ENGINES = (LOCAL, RAY)


@dataclass(frozen=True)
class EngineSettings:
    """Where and how stages run over items.

    Attributes:
        engine: ``local`` (a process pool on this machine) or ``ray`` (tasks on a Ray cluster).
        workers: processes (local) or CPUs asked of a local Ray instance; 0 uses every core.
        chunksize: items per task; larger chunks cut scheduling overhead when items are quick.
        in_flight_per_worker: tasks queued per worker; bounds the memory held by pending results.
        ray_address: address of an existing Ray cluster (``ray://host:10001`` or ``auto``); ``None`` starts a
            local Ray instance.
        stream_sheets: sheets the batch-wide stages (recognise, audit) hold in memory at once; their memory
            grows with this, not with the batch (recognise on 1,000 sheets peaked at 988 MB with 100 and
            1,175 MB with 500, in about the same time).
        worker_memory_mb: largest address space of a local pool worker, in MB; an input that needs more fails
            with ``MemoryError`` in its worker (a status row) instead of drawing the system's out-of-memory killer.
            0 sets no limit. A reader worker maps some 850 MB before it reads anything (numpy, OpenCV and pandas
            loaded), so keep it well above that.
    """

    engine: str = LOCAL
    workers: int = 0
    chunksize: int = 1
    in_flight_per_worker: int = 4
    ray_address: str | None = None
    stream_sheets: int = 100
    worker_memory_mb: int = 0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"engine must be one of {', '.join(ENGINES)}, got '{self.engine}'")
        if self.workers < 0 or self.chunksize < 1 or self.in_flight_per_worker < 1 or self.stream_sheets < 1:
            raise ConfigError("engine workers must be >= 0, chunksize, in_flight_per_worker and stream_sheets >= 1")
        if self.worker_memory_mb < 0:
            raise ConfigError(f"engine.worker_memory_mb must be >= 0 (0: no limit), not {self.worker_memory_mb}")


def add_engine_arguments(p: argparse.ArgumentParser) -> None:
    """The CLI flags that choose where a command's per-sheet work runs."""
    p.add_argument("--engine", choices=ENGINES, help="where reading runs: local process pool (default) or ray")
    p.add_argument("--ray-address", help="Ray cluster address (default: start a local Ray instance)")
    p.add_argument("--workers", type=int, help="worker processes / Ray CPUs (default: every core)")


def engine_from_args(args: argparse.Namespace, config: dict) -> EngineSettings:
    """Engine settings: defaults, then the config file's ``engine`` section, then the CLI flags."""
    return build_settings(EngineSettings, "engine", config, engine=args.engine, ray_address=args.ray_address,
                          workers=args.workers)


@dataclass(frozen=True)
class ScaleBenchSettings:
    """What the scale benchmark (``bench --only scale``, config section ``scale_bench``) measures.

    Attributes:
        sizes: batch sizes (sheets); each stage runs on each in its own process, for its time and peak memory.
        timed_sizes: sizes also read with one worker, for the 1 -> 2 worker speed-up (a slow read at 10k).
        batch_cache: folder keeping the generated batches (``syn<N>``) for the next run; ``None`` generates them
            in a temporary folder. Generation is deterministic (fixed seed) and not timed.
        poll_s: how often the memory of a stage's process tree is sampled.
    """

    sizes: tuple[int, ...] = (1000, 10_000)
    timed_sizes: tuple[int, ...] = (1000,)
    batch_cache: str | None = None
    poll_s: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "sizes", tuple(int(n) for n in self.sizes))
        object.__setattr__(self, "timed_sizes", tuple(int(n) for n in self.timed_sizes))
        if not self.sizes or min(self.sizes) < 1 or not set(self.timed_sizes) <= set(self.sizes):
            raise ConfigError("scale_bench: sizes must be >= 1 and timed_sizes a subset of sizes")
        if self.poll_s <= 0:
            raise ConfigError(f"scale_bench.poll_s must be > 0, not {self.poll_s}")
