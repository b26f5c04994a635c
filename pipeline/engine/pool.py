"""Apply a function to items in parallel and yield the results as they finish (no home-made scheduler).

``local`` uses :class:`concurrent.futures.ProcessPoolExecutor`, ``ray`` uses Ray tasks and ``ray.wait``. Both keep
at most ``workers x in_flight_per_worker`` tasks pending, so memory does not grow with the number of items, and
both turn a failure of one item into an :class:`ItemResult` with ``error`` set instead of stopping the batch.

A local worker killed by the system (out of memory, ``kill -9``) breaks its whole pool, and every task in flight
fails with it. The pool is then replaced, and each item that was in flight is run again alone, in a pool of its
own: the one that kills its worker again comes back with ``died`` set (and is not tried a third time), the others
with their results. So a dying worker costs the item that killed it, and nothing else. When the batch is stopped
(an exception, Ctrl-C, SIGTERM) the workers are terminated, not waited for.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import resource
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from itertools import islice
from typing import Any

from pipeline.engine.settings import RAY, EngineSettings
from pipeline.errors import ConfigError, TallyAuditError, is_fatal_os_error, output_error

log = logging.getLogger(__name__)

#: Modules the fork server imports once, so that each worker forked from it starts with them loaded.
PRELOAD = ("numpy", "cv2", "pandas")
MB = 2**20
#: Exit status of a pool worker that ended because the process that started the batch is gone.
ORPHAN_EXIT = 70
#: Where the kernel cannot signal a process's end (no pidfd), how often a worker checks that its batch lives.
PARENT_POLL_S = 1.0
#: Error text (and ``pages.csv`` status) of an item that killed the worker process running it.
WORKER_DIED = "worker_died"
RAY_MISSING = ("--engine ray needs Ray, which is an optional extra: install the 'ray' extra "
               "(pip install 'tally-audit[ray]', or pip install 'ray>=2.9')")


@dataclass(frozen=True)
class ItemResult:
    """One item's outcome: ``value`` when ``fn`` returned, else ``error`` (the exception, as text); ``died`` when
    the item killed the worker process running it, twice (the second time alone)."""

    item: Any
    value: Any = None
    error: str | None = None
    died: bool = False


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
    """Apply ``fn`` to every item of ``chunk``; an exception is recorded on its item and the chunk goes on.

    Raises:
        OutputError: ``fn`` met a full or read-only disk (:data:`pipeline.errors.FATAL_ERRNOS`), which no other item
            would get past.
    """
    if initializer is not None:
        initializer()
    results = []
    for item in chunk:
        try:
            results.append(ItemResult(item, fn(item)))
        except OSError as exc:
            if is_fatal_os_error(exc):  # a full or read-only disk fails every item alike: stop the batch
                raise output_error(exc) from exc
            log.exception("%s: failed", item)
            results.append(ItemResult(item, error=f"{type(exc).__name__}: {exc}"))
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


def _new_pool(workers: int, initializer) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=process_context(),
                               initializer=partial(exit_with, os.getpid(), initializer))


def exit_with(batch_pid: int, then: Callable[[], None] | None = None) -> None:
    """Pool worker initializer: end this worker as soon as the process running the batch ends, then run ``then``.

    A worker's parent is the fork server, not the batch, so nothing else tells it that the batch was killed
    (``kill -9``, the out-of-memory killer): it would run on, and with it the fork server and the resource tracker,
    whose pipes it holds.
    """
    threading.Thread(target=_exit_when_gone, args=(batch_pid,), daemon=True).start()
    if then is not None:
        then()


def _exit_when_gone(pid: int) -> None:
    """Block until process ``pid`` has ended, then leave at once (``os._exit``: nothing of the batch is left)."""
    try:
        handle = os.pidfd_open(pid)
        select.select([handle], [], [])
    except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll
        while _alive(pid):
            time.sleep(PARENT_POLL_S)
    os._exit(ORPHAN_EXIT)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_pool(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: drop the queued tasks and terminate its workers (a worker deep in a long item would
    otherwise run on, and keep its memory, after the batch was stopped)."""
    pool.shutdown(wait=False, cancel_futures=True)
    for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public API before Python 3.14
        if process.is_alive():
            process.terminate()
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.join()


def _alone(fn, item, initializer) -> list[ItemResult]:
    """Run one item in a pool of its own: its result, or ``died`` when it kills that worker too."""
    pool = _new_pool(1, initializer)
    try:
        return pool.submit(apply_chunk, fn, [item]).result()
    except BrokenProcessPool as exc:
        log.error("%s: killed its worker process twice (%s); skipped", item, exc)
        return [ItemResult(item, error=f"{WORKER_DIED}: the worker process reading it was killed (out of memory?)",
                           died=True)]
    finally:
        stop_pool(pool)


def _local(fn, chunks: Iterator[list], workers: int, limit: int, initializer) -> Iterator[ItemResult]:
    pool = _new_pool(workers, initializer)
    pending: dict[Future, list] = {}
    requeued: deque[list] = deque()  # chunks taken from ``chunks`` that a broken pool refused
    try:
        while True:
            broken = False
            while len(pending) < limit and not broken:
                chunk = requeued.popleft() if requeued else next(chunks, None)
                if chunk is None:
                    break
                try:
                    pending[pool.submit(apply_chunk, fn, chunk)] = chunk
                except BrokenProcessPool:
                    requeued.appendleft(chunk)
                    broken = True
            if not pending and not broken:
                pool.shutdown()
                return
            suspects: list[list] = []
            if pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    chunk = pending.pop(future)
                    try:
                        yield from future.result()
                    except BrokenProcessPool:
                        suspects.append(chunk)
                        broken = True
                    except TallyAuditError:
                        raise
                    except Exception as exc:
                        yield from _failed(chunk, exc)
            if broken:  # a worker was killed: every task in flight failed with it; find which item did it
                log.warning("a worker process died; running the %d item(s) in flight again, one at a time",
                            sum(map(len, suspects)) + sum(map(len, pending.values())))
                suspects += list(pending.values())
                pending.clear()
                stop_pool(pool)
                for item in (item for chunk in suspects for item in chunk):
                    yield from _alone(fn, item, initializer)
                pool = _new_pool(workers, initializer)
    finally:
        stop_pool(pool)


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
            except TallyAuditError:
                raise
            except Exception as exc:  # ray.exceptions.RayError and friends: the task died, not the item
                yield from _failed(chunk, exc)


def map_items(fn: Callable[[Any], Any], items: Iterable, settings: EngineSettings | None = None,
              initializer: Callable[[], None] | None = None, n_items: int | None = None) -> Iterator[ItemResult]:
    """Apply ``fn`` (a picklable, module-level function) to every item; yield results in completion order.

    When one local worker is asked for (``workers: 1``, or one core), it runs in this process with no pool (and no
    ``initializer``, which is for pool workers: it runs once per worker process, once per task on Ray).
    ``n_items`` (when known) caps the workers started; capped to one, the work still runs in a pool of one
    process, so that an item that kills its process (a resume with one file left) never takes this one with it.
    ``settings.worker_memory_mb`` caps each pool worker's memory.

    Raises:
        ConfigError: ``engine`` is ``ray`` and Ray is not installed (raised here, before any work starts).
    """
    settings = settings or EngineSettings()
    workers = resolve_workers(settings.workers, n_items)
    chunks = chunked(items, settings.chunksize)
    limit = workers * settings.in_flight_per_worker
    if settings.engine == RAY:
        return _ray(_import_ray(), fn, chunks, settings, limit, initializer)
    if resolve_workers(settings.workers) == 1:
        return (r for chunk in chunks for r in apply_chunk(fn, chunk))
    if settings.worker_memory_mb:
        initializer = partial(limit_memory, settings.worker_memory_mb, initializer)
    return _local(fn, chunks, workers, limit, initializer)


def limit_memory(megabytes: int, then: Callable[[], None] | None = None) -> None:
    """Cap this process's address space at ``megabytes`` (a pool worker's initializer), then run ``then``.

    An item that needs more fails in its worker with ``MemoryError`` (its result says so) instead of growing
    until the system's out-of-memory killer ends the worker, or another process.
    """
    limit = megabytes * MB
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if then is not None:
        then()
