"""The run directory of one (model, dataset, seed): where it lies and what it holds.

``<results>/<dataset>/<model>-s<seed>/`` holds config.json (what ran: recipe, crop,
data root, protocol, training frames), protocol.json (the protocol record: the card's original
protocol and what was applied, :class:`hpbench.record.ProtocolRecord`), environment.json (torch,
device, git commit), log.jsonl (one line per epoch), checkpoints/, predictions.txt (community format), the result files
metrics.csv and profile.csv (tidy rows), and error.txt, the traceback of a failed
attempt. The runner writes it, sweeps skip a finished one, and
:func:`hpbench.scoring.collect_results` reads only its result files.

One process owns a run directory at a time: :meth:`RunDir.lock` holds ``.lock``
(pid, host, start time), created atomically; a second run into the folder is
refused with :class:`RunRefused`, and a lock left by a dead process on this host
(or by an earlier attempt of the same, requeued Slurm job) is taken over. Files are written atomically (:func:`hpbench.files.atomic_write`) with the mode
the user's umask gives.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import socket
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpbench.files import atomic_write

__all__ = ["FOLDS_DIR", "RunDir", "RunRefused"]

FOLDS_DIR = "folds"
"""Folder of the per-fold run directories inside a leave-one-subject-out run directory."""


class RunRefused(Exception):
    """A run that must not start in its folder (busy, holding another run, or saved with other settings);
    the folder is left as it was."""


def _write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda temporary: Path(temporary).write_text(text))


def _alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _read_lock(path: Path) -> dict[str, Any] | None:
    """The holder recorded in lock file ``path``; None when it is gone; {} when unreadable."""
    try:
        holder = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _slurm_attempt() -> dict[str, Any]:
    """This Slurm job and its restart count (a requeued job keeps its id); empty outside Slurm."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    job = f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}" if array else os.environ.get("SLURM_JOB_ID", "")
    return {"slurm_job": job, "slurm_restart": int(os.environ.get("SLURM_RESTART_COUNT") or 0)} if job else {}


def _stale(holder: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Whether the lock of ``holder`` is left by a process that is gone: one of this host that no longer
    runs, or an earlier attempt of this very Slurm job (requeued, perhaps onto another node)."""
    if record.get("slurm_job") and holder.get("slurm_job") == record["slurm_job"]:
        return int(holder.get("slurm_restart") or 0) < record["slurm_restart"]
    pid = holder.get("pid")
    return holder.get("host") == record["host"] and isinstance(pid, int) and not _alive(pid)


def _holder(holder: Mapping[str, Any]) -> str:
    return f"pid {holder.get('pid')}@{holder.get('host')} since {holder.get('started')}"


def _create_exclusive(path: Path, text: str) -> bool:
    """Create ``path`` holding ``text`` unless it exists (atomic: a hard link of a full temporary file,
    or O_CREAT|O_EXCL where links are not supported); False when it exists."""
    temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    try:
        os.link(temporary, path)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links on this file system
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        return True
    finally:
        temporary.unlink(missing_ok=True)


@dataclass(frozen=True)
class RunDir:
    """The folder ``path`` of one run; :meth:`of` is the one place its location is decided."""

    path: Path

    @classmethod
    def of(cls, results_dir: str | os.PathLike[str], dataset: str, model: str, seed: int) -> RunDir:
        """The run directory of ``model`` on dataset ``dataset`` (its spec's name) with ``seed``."""
        return cls(Path(results_dir) / dataset / f"{model}-s{seed}")

    def exists(self) -> bool:
        """Whether a run started here: it wrote its config or recorded its failure."""
        return self.config.is_file() or self.error.is_file()

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def environment(self) -> Path:
        return self.path / "environment.json"

    @property
    def protocol(self) -> Path:
        return self.path / "protocol.json"

    @property
    def log(self) -> Path:
        return self.path / "log.jsonl"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def predictions(self) -> Path:
        return self.path / "predictions.txt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.csv"

    @property
    def profile(self) -> Path:
        return self.path / "profile.csv"

    @property
    def error(self) -> Path:
        return self.path / "error.txt"

    @property
    def lock_file(self) -> Path:
        return self.path / ".lock"

    def held_results(self) -> list[str]:
        """What of an earlier run lies here (config, protocol record, environment, log, checkpoints,
        predictions, results)."""
        paths = (self.config, self.protocol, self.environment, self.log, self.predictions, self.metrics, self.profile)
        held = [path.name for path in paths if path.is_file()]
        if self.checkpoints.is_dir() and any(self.checkpoints.iterdir()):
            held.append("checkpoints/")
        return held

    def clear(self) -> None:
        """Delete everything in the folder but its lock: what comes next is all new."""
        if not self.path.is_dir():
            return
        for entry in self.path.iterdir():
            if entry == self.lock_file:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()

    @contextlib.contextmanager
    def lock(self, echo: Callable[[str], None] = print) -> Iterator[dict[str, Any]]:
        """Own the folder for the block: ``.lock`` (pid, host, start time) created atomically, removed at
        the end, also on failure. :class:`RunRefused` when another live process holds it; a lock left
        by a dead process on this host is taken over (``echo`` says so). Yields the lock's record. A folder
        that cannot be written (read-only, full disk) is an OSError naming the folder."""
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), **_slurm_attempt()}
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._acquire(record, echo)
        except OSError as error:  # the lock's temporary file is no name to give
            raise OSError(error.errno, f"cannot write the run directory: {error.strerror or error}",
                          str(self.path)) from error
        try:
            yield record
        finally:
            if _read_lock(self.lock_file) == record:  # still ours
                self.lock_file.unlink(missing_ok=True)

    def _acquire(self, record: dict[str, Any], echo: Callable[[str], None]) -> None:
        """Create the lock holding ``record``, taking over a stale one; RunRefused when it is held."""
        for _ in range(5):
            if _create_exclusive(self.lock_file, json.dumps(record)):
                return
            holder = _read_lock(self.lock_file)
            if holder is None:  # released meanwhile: try again
                continue
            if not holder:
                raise RunRefused(f"{self.path} is locked by an unreadable {self.lock_file}: delete it if no "
                                 "run is using this folder")
            if not _stale(holder, record):
                raise RunRefused(f"{self.path} is in use by {_holder(holder)} (lock {self.lock_file}; delete it "
                                 "if that process is gone)")
            if self._take_over(holder):
                echo(f"{self.path}: took over the stale lock of {_holder(holder)} (that process is gone)")
        raise RunRefused(f"{self.path}: could not take its lock {self.lock_file} (other processes keep taking it)")

    def _take_over(self, stale: dict[str, Any]) -> bool:
        """Remove the lock if it still is ``stale`` (moved aside first, so that a lock another process
        took meanwhile is put back, not deleted); whether it was removed."""
        aside = self.lock_file.with_name(f".lock.stale.{os.getpid()}")
        try:
            os.replace(self.lock_file, aside)
        except FileNotFoundError:
            return False
        if _read_lock(aside) != stale:  # someone else's fresh lock: put it back
            with contextlib.suppress(OSError):
                os.link(aside, self.lock_file)
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        return True

    @property
    def finished(self) -> bool:
        """Whether the run wrote its metrics and recorded no failure after them."""
        return self.metrics.is_file() and not self.error.is_file()

    @property
    def folds(self) -> Path:
        """Folder of a leave-one-subject-out run's per-fold run directories (hpbench.loso)."""
        return self.path / FOLDS_DIR

    def result_files(self) -> list[Path]:
        """The tidy result files present (metrics.csv, profile.csv): what reports are made from."""
        return [path for path in (self.metrics, self.profile) if path.is_file()]

    def mean_error_mm(self) -> float | None:
        """The mean 3D error (mm) in metrics.csv; None when it holds no mean_error row."""
        from hpbench.results import read_results

        rows = read_results([self.metrics])
        mean = rows.loc[rows["metric"] == "mean_error", "value"]
        return float(mean.iloc[0]) if len(mean) else None

    def write_config(self, config: Mapping[str, Any]) -> None:
        """Write config.json (creating the folder)."""
        _write_text(self.config, json.dumps(config, indent=1))

    def read_config(self) -> dict[str, Any]:
        """The contents of config.json; ValueError naming the file when it is not a JSON object."""
        try:
            config = json.loads(self.config.read_text())
        except ValueError as error:
            raise ValueError(f"{self.config}: not valid JSON ({error})") from None
        if not isinstance(config, dict):
            raise ValueError(f"{self.config}: expected a JSON object, got {type(config).__name__}")
        return config

    def write_protocol(self, text: str) -> None:
        """Write protocol.json (``text``: :meth:`hpbench.record.ProtocolRecord.to_json`)."""
        _write_text(self.protocol, text)

    def write_environment(self, environment: Mapping[str, Any]) -> None:
        """Write environment.json (creating the folder)."""
        _write_text(self.environment, json.dumps(environment, indent=1))

    def record_failure(self, text: str) -> None:
        """Write ``text`` (a traceback, or why a job ended) to error.txt, creating the folder."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.error.write_text(text)

    def read_failure(self) -> str | None:
        """The recorded failure, or None when there is none."""
        return self.error.read_text() if self.error.is_file() else None

    def clear_failure(self) -> None:
        """Forget the failure of an earlier attempt."""
        self.error.unlink(missing_ok=True)
