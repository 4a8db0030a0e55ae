"""What every metric of the suite shares: a name for logs and results files, units, flattening.

Every metric is a torchmetrics ``Metric`` whose states are registered with ``add_state`` and a
``dist_reduce_fx``, so Lightning and DDP reduce them across processes. On top of that:

- ``name``: the key under which logs (``val/pa_mpjpe_mm``) and results files store the value.
  Scalar metrics carry their unit in the name (``mpjpe_mm``, ``pck3d_pct``); a benchmark that
  reports two variants of one metric gives each instance its own ``name=`` (``pa_pve_mm``).
- Dict-valued metrics (``SilhouetteScores``, ``JointDetectionScores``, ...) have a stem name
  (``silhouette``) and one unit per key (``key_units``); ``flatten_result`` turns their value
  into ``<name>/<key>_<unit>`` entries (``silhouette/f1_fg_pct``); a key with a threshold keeps
  it last (``precision@0.4`` -> ``joint_detection/precision_pct@0.4``), as DESIGN.md writes.
- ``results()``: ``compute()`` flattened to plain floats, what results files store.

Means over an empty set (no sample, no visible joint, no pair) are NaN: never a silent 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor
from torchmetrics import Metric


def flat_key(name: str, key: str, unit: str) -> str:
    """``<name>/<key>_<unit>``, with an ``@threshold`` suffix of ``key`` kept last."""
    stem, at, threshold = key.partition("@")
    return f"{name}/{stem}_{unit}{at}{threshold}"


def flatten_result(name: str, value: Any, key_units: Mapping[str, str]) -> dict[str, float]:
    """A metric's computed value as ``{flat name: float}``.

    Args:
        name: the metric's name (its unit included for scalars, a stem for dicts).
        value: a scalar tensor or number, or a dict of them.
        key_units: unit of each key of a dict value (ignored for scalars).

    Raises:
        KeyError: a dict key without a declared unit.
    """
    if not isinstance(value, Mapping):
        return {name: _as_float(value)}
    flat = {}
    for key, item in value.items():
        if key not in key_units:
            raise KeyError(
                f"metric {name!r}: key {key!r} has no unit; declared: {sorted(key_units)}"
            )
        flat[flat_key(name, key, key_units[key])] = _as_float(item)
    return flat


def _as_float(value: Any) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)


def results_of(metrics: Iterable[SuiteMetric]) -> dict[str, float]:
    """Flattened results of several metrics; two metrics with the same name are an error."""
    merged: dict[str, float] = {}
    for metric in metrics:
        flat = metric.results()
        clash = set(flat) & set(merged)
        if clash:
            raise ValueError(f"two metrics report {sorted(clash)}: give one of them name=...")
        merged.update(flat)
    return merged


def safe_ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator in float64, NaN where the denominator is 0."""
    numerator = numerator.to(torch.float64)
    denominator = denominator.to(torch.float64)
    nan = torch.full_like(numerator, math.nan)
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300), nan)


class SuiteMetric(Metric):
    """Base of the suite's metrics: ``name``, ``key_units`` and ``results()``.

    Subclasses set ``default_name`` (with the unit for scalar metrics) and, for dict-valued
    metrics, return each key's unit from ``key_units``. ``**kwargs`` go to torchmetrics'
    ``Metric`` (``sync_on_compute``, ``process_group``, ...).
    """

    default_name: ClassVar[str]
    is_differentiable = False
    full_state_update = False

    def __init__(self, name: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if name is not None and (not isinstance(name, str) or not name or "/" in name):
            raise ValueError(
                f"{type(self).__name__}: name must be a non-empty string without '/', got {name!r}"
            )
        self.name = name or self.default_name

    @property
    def where(self) -> str:
        """Prefix of error messages: ``MPJPE(mpjpe_mm).update``."""
        return f"{type(self).__name__}({self.name}).update"

    def key_units(self) -> dict[str, str]:
        """Unit of each key of a dict-valued result; empty for scalar metrics."""
        return {}

    def results(self) -> dict[str, float]:
        """``compute()`` flattened to ``{flat name: float}`` (module docstring)."""
        return flatten_result(self.name, self.compute(), self.key_units())

    def _add_sum_state(self, name: str, shape: tuple[int, ...] = (), integer: bool = False) -> None:
        """A zero-initialised state (float64 sums or int64 counts) reduced by summation."""
        dtype = torch.int64 if integer else torch.float64
        self.add_state(name, default=torch.zeros(shape, dtype=dtype), dist_reduce_fx="sum")
