"""Input checks shared by the metrics: shapes with named dimensions, dtypes, finiteness.

Every failure is a ``ValueError`` whose message names the metric, the argument and what was
expected, e.g. ``MPJPE(mpjpe_mm).update: target must have shape (B, J, 3), got (4, 17)``.
NaN or infinite inputs are refused instead of averaged silently.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Spec = Sequence[int | str]


class Inputs:
    """Checks the arguments of one ``update`` call, binding named dimensions across them.

    ``check(tensor, "preds", ("B", "J", 3))`` requires a 3-D tensor whose last dimension is 3;
    its first two sizes become the values of B and J for the arguments checked after it.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.dims: dict[str, tuple[int, str]] = {}  # symbol -> (size, argument that set it)

    def fail(self, message: str) -> ValueError:
        return ValueError(f"{self.where}: {message}")

    def check(self, tensor: object, name: str, spec: Spec, kind: str = "float") -> Tensor:
        """Validate ``tensor`` against ``spec`` and ``kind`` ("float", "bool", "int", "any")."""
        if not isinstance(tensor, Tensor):
            raise self.fail(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        wanted = "(" + ", ".join(str(s) for s in spec) + ")"
        if tensor.dim() != len(spec):
            raise self.fail(f"{name} must have shape {wanted}, got {tuple(tensor.shape)}")
        for size, symbol in zip(tensor.shape, spec, strict=True):
            if isinstance(symbol, int):
                if size != symbol:
                    raise self.fail(f"{name} must have shape {wanted}, got {tuple(tensor.shape)}")
                continue
            bound, source = self.dims.setdefault(symbol, (size, name))
            if size != bound:
                raise self.fail(
                    f"{name} must have shape {wanted}, got {tuple(tensor.shape)}: "
                    f"{symbol} = {bound} from {source}"
                )
        self._check_kind(tensor, name, kind)
        return tensor

    def _check_kind(self, tensor: Tensor, name: str, kind: str) -> None:
        if kind == "float":
            if not tensor.is_floating_point():
                raise self.fail(f"{name} must be a floating-point tensor, got {tensor.dtype}")
            if not bool(torch.isfinite(tensor).all()):
                raise self.fail(f"{name} contains NaN or infinite values")
        elif kind == "bool":
            if tensor.dtype != torch.bool:
                raise self.fail(
                    f"{name} must be a bool tensor, got {tensor.dtype} "
                    "(turn confidences into a mask first, e.g. confidence > 0)"
                )
        elif kind == "int":
            if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
                raise self.fail(f"{name} must be an integer tensor, got {tensor.dtype}")
        elif kind != "any":
            raise ValueError(f"unknown kind {kind!r}")

    def optional_mask(self, mask: object, name: str, spec: Spec) -> Tensor | None:
        """A bool mask of shape ``spec``, or None (everything valid)."""
        return None if mask is None else self.check(mask, name, spec, kind="bool")

    def index(self, value: int | None, name: str, size: int) -> int | None:
        """An index into a dimension of ``size`` (negative counts from the end), or None."""
        if value is None:
            return None
        if not -size <= value < size:
            raise self.fail(f"{name} = {value} is out of range for {size} joints")
        return value % size


def check_choice(owner: str, name: str, value: object, choices: Sequence[object]) -> None:
    """Constructor arguments restricted to a set of values."""
    if value not in choices:
        raise ValueError(f"{owner}: {name} must be one of {list(choices)}, got {value!r}")


def check_positive(owner: str, name: str, value: float, allow_zero: bool = False) -> None:
    if not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{owner}: {name} must be {bound}, got {value!r}")


def check_root_index(owner: str, root_index: int | None) -> None:
    if root_index is not None and (isinstance(root_index, bool) or not isinstance(root_index, int)):
        raise ValueError(f"{owner}: root_index must be an int or None, got {root_index!r}")
