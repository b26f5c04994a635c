"""Fault bench (``python -m pipeline bench --only faults``): a batch that is killed, stopped, starved or shared.

On a small synthetic batch (:data:`SHEETS` sheets from ``python -m pipeline synth``, read by a tiny digit model
trained for the bench, audited with ``--no-alteration``) it runs ``python -m pipeline run`` once undisturbed (the
reference), then once per fault of :data:`FAULTS`, each into its own folders:

- ``kill -9`` of the main process during read, during recognise and during audit (the stage is taken from the
  run's log), then the same command again, which resumes;
- ``kill -9`` of one read worker (what the system's out-of-memory killer does): the run must go on by itself;
- SIGTERM to the main process during read: every child process must be gone, then the same command resumes;
- a full disk: the output folders on a tmpfs too small for them (``mount -t tmpfs``, which needs root); the run
  must stop with one line that names a path, and exit 7; the tmpfs is then enlarged (``mount -o remount``) and the
  same command resumes. Where no tmpfs can be mounted the fault is recorded as not measured, with the reason;
- a second run of the same command while the first one runs: the second must be refused with a clear error and
  exit 7, and the first must finish unharmed. The first run is paused (SIGSTOP) once it holds its folders' locks
  and continued (SIGCONT) when the second has ended, so that the second meets a run in progress however fast or
  busy the machine is.

For each fault it records the exit status (a signal as the shell reports it: 128 + its number), the last
``error:`` line, the tracebacks printed and their exceptions, the child processes (by role: ``worker``,
``forkserver``, ``resource_tracker``) still alive :data:`GRACE_S` s after the main process ended (they are then
killed), and after the resume the sheets lost, the duplicate rows, and whether ``pages.csv``,
``crops.parquet``, ``fields.parquet``, ``sheets.csv`` and ``flags.csv`` equal the reference run's (the
``cpu_s`` column, a timing, aside).
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pipeline.engine import parts as pt
from pipeline.engine.bench import children_of
from pipeline.engine.lock import LOCK_FILE
from pipeline.engine.pool import WORKER_DIED

log = logging.getLogger(__name__)

SHEETS, QUICK_SHEETS = 40, 12
SEED = 11
WORKERS = 2
#: Sheets the recognise and audit stages hold at once: small, so that they stream in several chunks.
STREAM_SHEETS = 8
#: The read is disturbed once this share of the files has its part file written.
KILL_AT_FRACTION = 1 / 3
POLL_S = 0.05
#: How long the child processes of a run that ended may take to end too before they count as left behind.
GRACE_S = 5.0
#: Longest any one run of the pipeline may take before the bench gives up on it.
RUN_TIMEOUT_S = 300
#: The full-disk tmpfs holds this share of what the reference run wrote, then is enlarged to hold it all.
FULL_DISK_FRACTION = 1 / 3
ROOMY_DISK_FACTOR = 4
KB = 1024
EXIT_OK, EXIT_OUTPUT_ERROR = 0, 7
EXIT_KILLED, EXIT_TERMINATED = 128 + signal.SIGKILL, 128 + signal.SIGTERM

#: The outputs compared with the reference run: (folder, file); ``cpu_s`` is dropped from every table.
COMPARED = (("run", "pages.csv"), ("run", "crops.parquet"), ("run", "fields.parquet"), ("out", "sheets.csv"),
            ("out", "flags.csv"))
TIMING_COLUMNS = ("cpu_s",)
STAGE_LINE = re.compile(r"stage (?P<stage>\w+) (?P<what>\.\.\.|done)")
TRACEBACK = "Traceback (most recent call last)"
ERROR_PREFIX = "error:"
#: What :func:`pipeline.errors.os_error_message` writes in place of the path when the error names no file.
UNNAMED_PATH = "(no path)"

#: When a fault strikes.
AT_PARTS, AT_RECOGNISE, AT_AUDIT, AT_LOCKED, AT_START = "parts", "recognise", "audit", "locked", "start"
#: What the fault is.
KILL_MAIN, KILL_WORKER, TERM_MAIN, SECOND_RUN, FULL_DISK = "kill_main", "kill_worker", "term_main", "second_run", \
    "full_disk"


@dataclass(frozen=True)
class Fault:
    """One fault: what is done (``action``), when (``at``), the exit status it must give, and whether the same
    command is then run again to resume."""

    name: str
    action: str
    at: str
    expect_exit: int
    resume: bool
    what: str


FAULTS = (
    Fault("kill_in_read", KILL_MAIN, AT_PARTS, EXIT_KILLED, True, "kill -9 of the main process during read"),
    Fault("kill_in_recognise", KILL_MAIN, AT_RECOGNISE, EXIT_KILLED, True,
          "kill -9 of the main process during recognise"),
    Fault("kill_in_audit", KILL_MAIN, AT_AUDIT, EXIT_KILLED, True, "kill -9 of the main process during audit"),
    Fault("worker_killed", KILL_WORKER, AT_PARTS, EXIT_OK, False,
          "kill -9 of one read worker process (as the out-of-memory killer does)"),
    Fault("sigterm", TERM_MAIN, AT_PARTS, EXIT_TERMINATED, True, "SIGTERM to the main process during read"),
    Fault("full_disk", FULL_DISK, AT_START, EXIT_OUTPUT_ERROR, True,
          "output folders on a tmpfs too small for them, then enlarged"),
    Fault("concurrent_run", SECOND_RUN, AT_LOCKED, EXIT_OK, False,
          "a second run of the same command into the same folders while the first runs"),
)


@dataclass(frozen=True)
class RunDirs:
    """The folders one run writes: the interim run folder and the audit output folder."""

    run: Path
    out: Path

    @classmethod
    def under(cls, folder: Path) -> RunDirs:
        """``folder/run`` and ``folder/out``: every run sits at the same depth, so relative sources match."""
        return cls(folder / "run", folder / "out")


@dataclass
class Watched:
    """What happened to one watched run: its exit status, its error output, and the fault's details."""

    exit_code: int
    stderr: str
    detail: dict = field(default_factory=dict)
    children_left: list[str] = field(default_factory=list)


# --- reporting: pure functions over what the runs left ------------------------------------------------------


def exit_status(returncode: int) -> int:
    """A ``Popen`` return code as a shell reports it: a process ended by signal N gives 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def log_lines(text: str) -> list[str]:
    """The non-empty lines of an error output; progress bars redraw with carriage returns, which split too."""
    return [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]


def message_line(text: str) -> str | None:
    """The last ``error:`` line of an error output, or ``None`` when it printed none."""
    errors = [line for line in log_lines(text) if line.startswith(ERROR_PREFIX)]
    return errors[-1] if errors else None


def tracebacks(text: str) -> int:
    """How many tracebacks an error output holds."""
    return text.count(TRACEBACK)


def exceptions(text: str, limit: int = 3) -> list[str]:
    """The distinct exception lines ending the tracebacks of an error output (at most ``limit``), so that a
    failure is named in the bench's figures."""
    found, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if TRACEBACK not in line:
            continue
        rest = [x for x in lines[i + 1:] if x.strip() and not x.startswith(" ")]
        if rest and rest[0].strip() not in found:
            found.append(rest[0].strip())
    return found[:limit]


def current_stage(text: str) -> str | None:
    """The stage a ``run`` was in when it logged ``text``: the last ``stage X ...`` not followed by ``stage X done``
    (``None`` before the first stage and between stages)."""
    stage = None
    for match in STAGE_LINE.finditer(text):
        stage = match["stage"] if match["what"] == "..." else None
    return stage


def read_output(path: Path) -> pd.DataFrame | None:
    """One compared output as a frame (CSV cells kept as text), without its timing columns; ``None`` if missing."""
    if not path.is_file():
        return None
    frame = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path, dtype=str,
                                                                              keep_default_na=False)
    return frame.drop(columns=[c for c in TIMING_COLUMNS if c in frame.columns])


def difference(reference: pd.DataFrame | None, other: pd.DataFrame | None) -> str | None:
    """How ``other`` differs from ``reference`` in a few words (``None``: equal)."""
    if reference is None or other is None:
        return "missing" if other is None else "missing in the reference run"
    if reference.equals(other):
        return None
    if reference.shape != other.shape or list(reference.columns) != list(other.columns):
        return f"shape {other.shape} vs {reference.shape}"
    unequal = [c for c in reference.columns if not reference[c].equals(other[c])]
    rows = int((reference[unequal].astype(str) != other[unequal].astype(str)).any(axis=1).sum())
    return f"{rows} row(s) differ in {', '.join(map(str, unequal))}"


def differing_outputs(reference: RunDirs, other: RunDirs) -> dict[str, str]:
    """The compared outputs (:data:`COMPARED`) of ``other`` that are missing or differ from ``reference``'s, with
    how they differ."""
    differ = {}
    for folder, name in COMPARED:
        how = difference(read_output(getattr(reference, folder) / name), read_output(getattr(other, folder) / name))
        if how:
            differ[name] = how
    return differ


def sheet_counts(expected: set[str], dirs: RunDirs) -> dict:
    """Sheets of ``expected`` missing from the final ``sheets.csv``; sheet ids on more than one row of
    ``pages.csv`` or ``sheets.csv``; ``pages.csv`` rows of files that killed their worker."""
    pages, sheets = read_output(dirs.run / "pages.csv"), read_output(dirs.out / "sheets.csv")
    if pages is None or sheets is None:
        return {"sheets_lost": len(expected), "duplicate_rows": 0, "worker_died_rows": 0}
    return {"sheets_lost": len(expected - set(sheets["sheet_id"])),
            "duplicate_rows": int(pages["sheet_id"].duplicated().sum() + sheets["sheet_id"].duplicated().sum()),
            "worker_died_rows": int((pages["status"] == WORKER_DIED).sum())}


def final_check(expected: set[str], reference: RunDirs, dirs: RunDirs) -> dict:
    """Sheets lost, duplicate rows and whether the outputs equal the reference run's (:data:`COMPARED`)."""
    differ = differing_outputs(reference, dirs)
    return {**sheet_counts(expected, dirs), "identical": not differ, "differs": differ}


def fault_held(fault: Fault, result: dict) -> bool:
    """Whether the batch came through ``fault``: the exit status it must give, no child process left behind, no
    sheet lost, no duplicate row, outputs equal to the reference; a concurrent second run refused with exit 7
    and an error line; a full disk reported in one line that names a path, without a traceback."""
    if result.get("measured") is False:
        return False
    held = (result["exit_code"] == fault.expect_exit and not result["children_left"]
            and result["sheets_lost"] == 0 and result["duplicate_rows"] == 0 and result["identical"])
    if fault.resume:
        held = held and result.get("resume_exit_code") == EXIT_OK
    if fault.action == SECOND_RUN:
        second = result["second_run"]
        held = held and second["exit_code"] == EXIT_OUTPUT_ERROR and bool(second["message"]) \
            and second["ended_while_first_ran"]
    if fault.action == FULL_DISK:
        held = held and bool(result["message"]) and UNNAMED_PATH not in result["message"] \
            and result["tracebacks"] == 0
    return held


def summarise(results: dict[str, dict]) -> dict:
    """The bench's headline: faults tried, faults held, and the sheets lost and duplicate rows over all of them."""
    by_name = {f.name: f for f in FAULTS}
    held = {name: fault_held(by_name[name], r) for name, r in results.items()}
    measured = [r for r in results.values() if r.get("measured", True)]
    return {"faults": len(results), "held": sum(held.values()), "not_held": sorted(k for k, v in held.items() if not v),
            "sheets_lost": sum(r["sheets_lost"] for r in measured),
            "duplicate_rows": sum(r["duplicate_rows"] for r in measured),
            "identical": sum(bool(r["identical"]) for r in measured),
            "not_measured": sorted(k for k, r in results.items() if not r.get("measured", True))}


# --- processes ---------------------------------------------------------------------------------------------------


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """``(state, parent pid, start time in clock ticks)`` of a process, or ``None`` when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and brackets
    return fields[0], int(fields[1]), int(fields[19])


def descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    """Every process below ``pid`` in ``tree`` (:func:`pipeline.engine.bench.children_of`)."""
    found, todo = [], list(tree.get(pid, []))
    while todo:
        child = todo.pop()
        found.append(child)
        todo += tree.get(child, [])
    return found


def alive(pid: int, started: int) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs (a zombie has ended)."""
    stat = proc_stat(pid)
    return stat is not None and stat[2] == started and stat[0] != "Z"


def left_behind(seen: dict[int, tuple[int, str]], grace_s: float = GRACE_S) -> list[str]:
    """The roles of the processes of ``seen`` (pid -> (start time, role)) still alive after up to ``grace_s``
    seconds; they are then killed, so that they do not disturb the next run."""
    deadline = time.monotonic() + grace_s
    while (left := [p for p, (t, _) in seen.items() if alive(p, t)]) and time.monotonic() < deadline:
        time.sleep(POLL_S * 5)
    for pid in left:
        if alive(pid, seen[pid][0]):
            os.kill(pid, signal.SIGKILL)
    return sorted(seen[pid][1] for pid in left)


def command_line(pid: int) -> bytes:
    """The command line of ``pid`` (empty when it is gone)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def is_forkserver(pid: int) -> bool:
    """Whether ``pid`` is a multiprocessing fork server (the parent of every pool worker)."""
    return b"forkserver" in command_line(pid)


def role(pid: int, parent: int) -> str:
    """What a child process of a run is: a pool ``worker`` (a child of the fork server), the ``forkserver``, the
    ``resource_tracker``, or another ``process``."""
    if is_forkserver(parent):
        return "worker"
    line = command_line(pid)
    return "forkserver" if b"forkserver" in line else "resource_tracker" if b"resource_tracker" in line else "process"


def pool_workers(main: int, tree: dict[int, list[int]]) -> list[int]:
    """The pool workers of the run ``main``: the children of its fork server."""
    servers = [p for p in tree.get(main, []) if is_forkserver(p)]
    return sorted(w for s in servers for w in tree.get(s, []))


def parts_written(dirs: RunDirs) -> int:
    """Files whose part has been written into the run folder."""
    return sum(1 for _ in (dirs.run / pt.PARTS_DIR).glob("*.npz"))


# --- runs -------------------------------------------------------------------------------------------------------


def pipeline_command(sheets: Path, dirs: RunDirs, model: Path, config: Path) -> list[str]:
    """``python -m pipeline run`` of ``sheets`` into ``dirs`` (2 workers, no alteration detector)."""
    return [sys.executable, "-m", "pipeline", "--config", str(config), "run", str(sheets), "--out", str(dirs.out),
            "--interim", str(dirs.run), "--model", str(model), "--no-alteration", "--workers", str(WORKERS)]


def struck(fault: Fault, dirs: RunDirs, log_path: Path, main: int, tree: dict[int, list[int]],
           kill_at_parts: int) -> bool:
    """Whether it is time for ``fault`` to strike the run ``main``."""
    if fault.at == AT_PARTS:
        ready = parts_written(dirs) >= kill_at_parts
        return ready and (fault.action != KILL_WORKER or bool(pool_workers(main, tree)))
    if fault.at in (AT_RECOGNISE, AT_AUDIT):
        return current_stage(log_path.read_text(errors="replace")) == fault.at
    if fault.at == AT_LOCKED:
        return (dirs.run / LOCK_FILE).is_file() and (dirs.out / LOCK_FILE).is_file()
    return False


def strike(fault: Fault, proc: subprocess.Popen, tree: dict[int, list[int]], command: list[str],
           folder: Path) -> dict:
    """Do ``fault`` to the run ``proc``; returns what was done (a second run's ``Popen`` under ``"second"``)."""
    if fault.action == KILL_MAIN:
        proc.send_signal(signal.SIGKILL)
    elif fault.action == TERM_MAIN:
        proc.send_signal(signal.SIGTERM)
    elif fault.action == KILL_WORKER:
        victim = pool_workers(proc.pid, tree)[0]
        os.kill(victim, signal.SIGKILL)
        return {"worker_killed": victim}
    elif fault.action == SECOND_RUN:  # the first run waits (stopped) until the second has ended
        proc.send_signal(signal.SIGSTOP)
        with (folder / "second.log").open("wb") as err:
            return {"second": subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err),
                    "second_deadline": time.monotonic() + RUN_TIMEOUT_S}
    return {}


def watch(command: list[str], dirs: RunDirs, folder: Path, name: str, fault: Fault | None = None,
          kill_at_parts: int = 0) -> Watched:
    """Run ``command`` (its error output to ``folder/<name>.log``), doing ``fault`` once its moment comes; returns
    its exit status, error output, what the fault found and how many child processes outlived it.

    Raises:
        RuntimeError: the run took longer than :data:`RUN_TIMEOUT_S`.
    """
    log_path, seen, detail = folder / f"{name}.log", {}, {}
    deadline = time.monotonic() + RUN_TIMEOUT_S
    with log_path.open("wb") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
        while proc.poll() is None:
            tree = children_of()
            second = detail.get("second")
            for pid in descendants(proc.pid, tree) + ([second.pid, *descendants(second.pid, tree)] if second else []):
                if pid not in seen and (stat := proc_stat(pid)):
                    seen[pid] = stat[2], role(pid, stat[1])
            if fault and not detail and struck(fault, dirs, log_path, proc.pid, tree, kill_at_parts):
                detail = {"stage_at_fault": current_stage(log_path.read_text(errors="replace")),
                          "parts_at_fault": parts_written(dirs), **strike(fault, proc, tree, command, folder)}
            if second and "second_ended_while_first_ran" not in detail and (
                    second.poll() is not None or time.monotonic() > detail["second_deadline"]):
                detail["second_ended_while_first_ran"] = second.poll() is not None
                proc.send_signal(signal.SIGCONT)
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"{' '.join(command)} ran past {RUN_TIMEOUT_S} s")
            time.sleep(POLL_S)
    return Watched(exit_status(proc.returncode), log_path.read_text(errors="replace"), detail, left_behind(seen))


def second_run_outcome(detail: dict, folder: Path) -> dict:
    """The concurrent second run's exit status and error line, and whether it ended while the first one ran."""
    second = detail["second"]
    second.wait(timeout=RUN_TIMEOUT_S)
    text = (folder / "second.log").read_text(errors="replace")
    return {"exit_code": exit_status(second.returncode), "message": message_line(text),
            "ended_while_first_ran": detail.get("second_ended_while_first_ran", False), "tracebacks": tracebacks(text)}


# --- the full disk -----------------------------------------------------------------------------------------------


def mount_tmpfs(folder: Path, size_kb: int, remount: bool = False) -> str | None:
    """Mount (or resize) a tmpfs of ``size_kb`` KB on ``folder``; ``None``, or why it could not be done."""
    folder.mkdir(parents=True, exist_ok=True)
    options = f"{'remount,' if remount else ''}size={size_kb}k"
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True,
                              text=True, check=False)
    except OSError as exc:
        return f"mount: {exc}"
    return None if done.returncode == 0 else f"mount -t tmpfs: {done.stderr.strip() or done.returncode}"


def unmount(folder: Path) -> None:
    """Unmount the tmpfs on ``folder`` (lazily, should something still hold it)."""
    subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def folder_kb(*folders: Path) -> int:
    """Disk space the files under ``folders`` take, in KB (rounded up per file)."""
    return sum(-(-p.stat().st_size // KB) for f in folders for p in f.rglob("*") if p.is_file())


# --- the bench ---------------------------------------------------------------------------------------------------


def prepare(work: Path, n: int) -> tuple[Path, Path, Path]:
    """A synthetic batch of ``n`` sheets, a tiny digit model and the run's config file, made under ``work``:
    ``(sheets folder, model, config)``.

    Raises:
        RuntimeError: ``synth`` or ``train`` failed.
    """
    steps = {"synth": ["synth", "--sheets", str(n), "--seed", str(SEED), "--out", str(work / "syn")],
             "train": ["train", "--tiny", "--out", str(work / "models"), "--reports", str(work / "model_reports")]}
    for name, args in steps.items():
        done = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"fault bench: `{name}` failed ({done.returncode}):\n{done.stderr[-2000:]}")
    config = work / "faults.yaml"
    config.write_text(f"engine: {{stream_sheets: {STREAM_SHEETS}}}\n", encoding="utf-8")
    return work / "syn" / "sheets", work / "models" / "current", config


def outcome(watched: Watched, prefix: str = "") -> dict:
    """What a watched run printed and left: exit status, last error line, tracebacks and their exceptions, the
    child processes that outlived it (keys prefixed by ``prefix``)."""
    return {f"{prefix}exit_code": watched.exit_code, f"{prefix}message": message_line(watched.stderr),
            f"{prefix}tracebacks": tracebacks(watched.stderr), f"{prefix}exceptions": exceptions(watched.stderr),
            f"{prefix}children_left": watched.children_left}


def resumed(command: list[str], dirs: RunDirs, logs: Path, result: dict) -> dict:
    """``result`` with the outcome of running ``command`` again (the resume); its children left are added."""
    again = outcome(watch(command, dirs, logs, "resume"), "resume_")
    left = again.pop("resume_children_left")
    return result | again | {"children_left": result["children_left"] + left}


def run_fault(fault: Fault, command_for, work: Path, reference: RunDirs, expected: set[str],
              kill_at_parts: int) -> dict:
    """Do ``fault`` to a run of its own, resume it if the fault says so, and check what it left."""
    folder = work / fault.name
    folder.mkdir()
    dirs = RunDirs.under(folder)
    command = command_for(dirs)
    first = watch(command, dirs, folder, "run", fault, kill_at_parts)
    result = {"fault": fault.what, **outcome(first),
              **{k: v for k, v in first.detail.items() if not k.startswith("second")}}
    if "second" in first.detail:
        result["second_run"] = second_run_outcome(first.detail, folder)
    if fault.resume:
        result = resumed(command, dirs, folder, result)
    return result | final_check(expected, reference, dirs)


def run_full_disk(fault: Fault, command_for, work: Path, reference: RunDirs, expected: set[str]) -> dict:
    """The full-disk fault: the run's folders on a tmpfs that holds :data:`FULL_DISK_FRACTION` of what the
    reference run wrote; then the tmpfs is enlarged and the same command resumes."""
    folder = work / fault.name
    need_kb = folder_kb(reference.run, reference.out)
    small_kb = max(1, int(need_kb * FULL_DISK_FRACTION))
    why = mount_tmpfs(folder, small_kb)
    if why:
        return {"fault": fault.what, "measured": False, "why": why}
    try:
        dirs = RunDirs.under(folder)
        command = command_for(dirs)
        logs = work / f"{fault.name}_logs"  # the logs must not fill the disk under test
        logs.mkdir()
        result = {"fault": fault.what, "how": f"tmpfs of {small_kb} KB (the reference run wrote {need_kb} KB), "
                                              f"then remounted with {need_kb * ROOMY_DISK_FACTOR} KB",
                  **outcome(watch(command, dirs, logs, "run"))}
        why = mount_tmpfs(folder, need_kb * ROOMY_DISK_FACTOR, remount=True)
        if why:
            return result | {"measured": False, "why": why}
        return resumed(command, dirs, logs, result) | final_check(expected, reference, dirs)
    finally:
        unmount(folder)


def run_bench(config: dict, quick: bool) -> dict:
    """Every fault of :data:`FAULTS` on a fresh batch (``quick``: :data:`QUICK_SHEETS` sheets)."""
    with tempfile.TemporaryDirectory() as tmp:
        return measure(Path(tmp), QUICK_SHEETS if quick else SHEETS)


def measure(work: Path, n: int, faults: tuple[Fault, ...] = FAULTS) -> dict:
    """:func:`run_bench` in the folder ``work``, on ``n`` sheets, for ``faults``."""
    kill_at_parts = max(1, int(n * KILL_AT_FRACTION))
    sheets, model, run_config = prepare(work, n)

    def command_for(dirs: RunDirs) -> list[str]:
        return pipeline_command(sheets, dirs, model, run_config)

    (work / "reference").mkdir()
    reference = RunDirs.under(work / "reference")
    start = time.perf_counter()
    plain = watch(command_for(reference), reference, work / "reference", "run")
    if plain.exit_code != EXIT_OK:
        raise RuntimeError(f"fault bench: the reference run failed ({plain.exit_code}):\n{plain.stderr[-2000:]}")
    expected = set(read_output(reference.out / "sheets.csv")["sheet_id"])
    result: dict = {"sheets": n, "workers": WORKERS, "stream_sheets": STREAM_SHEETS,
                    "reference": {"seconds": round(time.perf_counter() - start, 1), "sheets_out": len(expected),
                                  "children_left": plain.children_left},
                    "compared": [name for _, name in COMPARED], "faults": {}}
    for fault in faults:
        start = time.perf_counter()
        if fault.action == FULL_DISK:
            outcome = run_full_disk(fault, command_for, work, reference, expected)
        else:
            outcome = run_fault(fault, command_for, work, reference, expected, kill_at_parts)
        outcome["seconds"] = round(time.perf_counter() - start, 1)
        result["faults"][fault.name] = outcome
        log.info("fault %s: %s", fault.name, outcome)
    return result | {"summary": summarise(result["faults"])}
