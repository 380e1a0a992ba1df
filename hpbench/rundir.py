"""The run directory of one (model, dataset, seed): where it lies and what it holds.

``<results>/<dataset>/<model>-s<seed>/`` holds config.json (what ran: recipe, crop,
data root), environment.json (torch, device, git commit), log.jsonl (one line per
epoch), checkpoints/, predictions.txt (community format), the result files
metrics.csv and profile.csv (tidy rows), and error.txt, the traceback of a failed
attempt. The runner writes it, sweeps skip a finished one, and
:func:`hpbench.scoring.collect_results` reads only its result files.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunDir"]


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
    def finished(self) -> bool:
        """Whether the run wrote its metrics and recorded no failure after them."""
        return self.metrics.is_file() and not self.error.is_file()

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
        self.path.mkdir(parents=True, exist_ok=True)
        self.config.write_text(json.dumps(config, indent=1))

    def read_config(self) -> dict[str, Any]:
        """The contents of config.json."""
        return json.loads(self.config.read_text())

    def write_environment(self, environment: Mapping[str, Any]) -> None:
        """Write environment.json (creating the folder)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.environment.write_text(json.dumps(environment, indent=1))

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
