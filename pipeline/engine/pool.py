"""Apply a function to items in parallel and yield the results as they finish (no home-made scheduler).

``local`` uses :class:`concurrent.futures.ProcessPoolExecutor`, ``ray`` uses Ray tasks and ``ray.wait``. Both keep
at most ``workers x in_flight_per_worker`` tasks pending, so memory does not grow with the number of items, and
both turn a failure of one item into an :class:`ItemResult` with ``error`` set instead of stopping the batch.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from itertools import islice
from typing import Any

from pipeline.engine.settings import RAY, EngineSettings
from pipeline.errors import ConfigError

log = logging.getLogger(__name__)

#: Modules the fork server imports once, so that each worker forked from it starts with them loaded.
PRELOAD = ("numpy", "cv2", "pandas")
RAY_MISSING = ("--engine ray needs Ray, which is an optional extra: install the 'ray' extra "
               "(pip install 'tally-audit[ray]', or pip install 'ray>=2.9')")


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome: ``value`` when ``fn`` returned, else ``error`` (the exception, as text)."""

    item: Any
    value: Any = None
    error: str | None = None


def process_context(preload: Iterable[str] = PRELOAD) -> multiprocessing.context.BaseContext:
    """The start method of every process pool in the pipeline: a fork server.

    Not ``fork``: forking a process in which TensorFlow, OpenCV or any other library already runs threads can
    leave the child waiting forever on a lock some thread held. The fork server is a fresh single-threaded
    process; it imports ``preload`` once and workers are forked from it.
    """
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(list(preload))
    return context


def resolve_workers(workers: int, n_items: int | None = None) -> int:
    """``workers``, or every core when 0; never more than ``n_items`` (when known), never less than 1."""
    n = workers or os.cpu_count() or 1
    return max(1, min(n, n_items) if n_items is not None else n)


def apply_chunk(fn: Callable[[Any], Any], chunk: list, initializer: Callable[[], None] | None = None
                ) -> list[ItemResult]:
    """Apply ``fn`` to every item of ``chunk``; an exception is recorded on its item and the chunk goes on."""
    if initializer is not None:
        initializer()
    results = []
    for item in chunk:
        try:
            results.append(ItemResult(item, fn(item)))
        except Exception as exc:  # the batch must go on: the failure is the item's result
            log.exception("%s: failed", item)
            results.append(ItemResult(item, error=f"{type(exc).__name__}: {exc}"))
    return results


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Consecutive lists of ``size`` items (the last may be shorter), read lazily from ``items``."""
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _failed(chunk: list, exc: BaseException) -> list[ItemResult]:
    """Every item of a chunk whose task died (a worker killed, out of memory, ...)."""
    return [ItemResult(item, error=f"worker failed ({type(exc).__name__}: {exc})") for item in chunk]


def _local(fn, chunks: Iterator[list], workers: int, limit: int, initializer) -> Iterator[ItemResult]:
    with ProcessPoolExecutor(workers, mp_context=process_context(), initializer=initializer) as pool:
        pending: dict[Future, list] = {}
        while True:
            for chunk in islice(chunks, limit - len(pending)):
                pending[pool.submit(apply_chunk, fn, chunk)] = chunk
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                chunk = pending.pop(future)
                try:
                    yield from future.result()
                except Exception as exc:
                    yield from _failed(chunk, exc)


def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(RAY_MISSING) from exc
    return ray


def _ray(ray, fn, chunks: Iterator[list], settings: EngineSettings, limit: int, initializer
         ) -> Iterator[ItemResult]:
    if not ray.is_initialized():
        local = {} if settings.ray_address else {"num_cpus": resolve_workers(settings.workers)}
        ray.init(address=settings.ray_address, log_to_driver=False, **local)
    task = ray.remote(apply_chunk)
    pending: dict = {}
    while True:
        for chunk in islice(chunks, limit - len(pending)):
            pending[task.remote(fn, chunk, initializer)] = chunk
        if not pending:
            return
        done, _ = ray.wait(list(pending), num_returns=1)
        for ref in done:
            chunk = pending.pop(ref)
            try:
                yield from ray.get(ref)
            except Exception as exc:  # ray.exceptions.RayError and friends: the task died, not the item
                yield from _failed(chunk, exc)


def map_items(fn: Callable[[Any], Any], items: Iterable, settings: EngineSettings | None = None,
              initializer: Callable[[], None] | None = None, n_items: int | None = None) -> Iterator[ItemResult]:
    """Apply ``fn`` (a picklable, module-level function) to every item; yield results in completion order.

    One local worker runs in this process with no pool (and no ``initializer``, which is for pool workers: it
    runs once per worker process, once per task on Ray). ``n_items`` (when known) caps the workers started.

    Raises:
        ConfigError: ``engine`` is ``ray`` and Ray is not installed (raised here, before any work starts).
    """
    settings = settings or EngineSettings()
    workers = resolve_workers(settings.workers, n_items)
    chunks = chunked(items, settings.chunksize)
    limit = workers * settings.in_flight_per_worker
    if settings.engine == RAY:
        return _ray(_import_ray(), fn, chunks, settings, limit, initializer)
    if workers == 1:
        return (r for chunk in chunks for r in apply_chunk(fn, chunk))
    return _local(fn, chunks, workers, limit, initializer)
