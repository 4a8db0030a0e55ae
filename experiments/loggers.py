"""Loggers of the suite's runs.

`CSVLogger`: Lightning's CSV logger, except that a resumed run appends to the run's existing
`metrics.csv` (Lightning's writer deletes it when the folder exists). Steps between the last
checkpoint and an interruption are logged again by the resumed run, as wandb shows them too;
readers keep the last row of a step.
"""

from __future__ import annotations

import csv

from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment


class AppendingExperimentWriter(ExperimentWriter):
    """Lightning's CSV writer, continuing an existing `metrics.csv` (same columns kept)."""

    def _check_log_dir_exists(self) -> None:
        if self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as file:
                self.metrics_keys = list(next(csv.reader(file), []))


class CSVLogger(LightningCSVLogger):
    """`<save_dir>/<name>/<version>/metrics.csv` that survives resuming (module docstring)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if not isinstance(self._experiment, ExperimentWriter):
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = AppendingExperimentWriter(log_dir=self.log_dir)
        return self._experiment
