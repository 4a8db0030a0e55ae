"""BodyNet's rule for the weights of a multi-task loss, as a callback any module can use.

BodyNet (paper section 3.3 and appendix C.2): "we set all weights to be equal (sum to 1) and
run the training for 100 iterations. We then average the gradient magnitudes and find
relative ratios to scale individual losses", so that "the average gradient of each loss
across parameters is at the same scale"; the weights are normalised to sum to one.

`GradientLossBalancing` does exactly that during the first `steps` optimizer steps of a run:
it sets the module's weights equal, and on each batch differentiates every loss term alone
with respect to the shared parameters (`parameters`: a prefix of `named_parameters`, default
all trainable ones), recording the mean absolute gradient over their elements. Then each
weight becomes proportional to 1 / (that loss's average magnitude), normalised to sum to one;
the module trains on with them, they are logged as `balance/weight_<name>`, and written to
`<run>/loss_weights.json` and `<run>/loss_weights.yaml` (a config snippet,
`model.loss_weights: {...}`, to copy into an experiment for other runs on the same data). A term
with no gradient on a batch (no sample with its ground truth) is skipped on that batch; one
with none at all is an error naming it. The found weights travel in the callback's state, so
a resumed run keeps them instead of measuring again.

The module provides `loss_weights` (a dict name -> weight, read by its training step) and
`loss_terms(batch) -> dict[name, scalar tensor]` (the unweighted terms of a batch); the cost
is one extra forward pass and one backward pass per term on each measured batch.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch import Tensor

log = logging.getLogger(__name__)


WEIGHTS, TERMS = "loss_weights", "loss_terms"  # what a balanced module provides


def module_weights(pl_module: pl.LightningModule) -> dict[str, float]:
    """The module's `loss_weights` dict (TypeError when it lacks the balancing protocol)."""
    weights = getattr(pl_module, WEIGHTS, None)
    if not isinstance(weights, dict) or not callable(getattr(pl_module, TERMS, None)):
        raise TypeError(
            f"{type(pl_module).__name__} needs `loss_weights` (dict) and `loss_terms(batch)` "
            "for GradientLossBalancing"
        )
    return weights


def balanced_weights(magnitudes: dict[str, float]) -> dict[str, float]:
    """Weights proportional to 1 / magnitude, normalised to sum to one."""
    bad = sorted(name for name, value in magnitudes.items() if not value > 0)
    if bad:
        raise ValueError(f"losses {bad} produced no gradient on the shared parameters")
    inverse = {name: 1.0 / value for name, value in magnitudes.items()}
    total = sum(inverse.values())
    return {name: value / total for name, value in inverse.items()}


class GradientLossBalancing(pl.Callback):
    """Measure, then set, the module's loss weights (module docstring).

    Args:
        steps: number of optimizer steps measured with equal weights (BodyNet: 100).
        parameters: prefix of the shared parameters' names (e.g. `network.backbone`); None: all
            trainable parameters.
        losses: the terms to balance; None: every key of the module's `loss_weights`.
    """

    def __init__(
        self, steps: int = 100, parameters: str | None = None, losses: list[str] | None = None
    ) -> None:
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.steps, self.prefix, self.losses = steps, parameters, losses
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.weights: dict[str, float] | None = None

    # the measurement ---------------------------------------------------------------------

    def names(self, pl_module: pl.LightningModule) -> list[str]:
        weights = module_weights(pl_module)
        names = list(self.losses if self.losses is not None else weights)
        unknown = sorted(set(names) - set(weights))
        if unknown:
            raise ValueError(f"losses {unknown} are not in the module's loss_weights")
        return names

    def shared_parameters(self, pl_module: pl.LightningModule) -> list[Tensor]:
        chosen: list[Tensor] = [
            p
            for name, p in pl_module.named_parameters()
            if p.requires_grad and (self.prefix is None or name.startswith(f"{self.prefix}."))
        ]
        if not chosen:
            raise ValueError(f"no trainable parameter starts with {self.prefix!r}")
        return chosen

    def measure(self, pl_module: pl.LightningModule, batch: Any) -> dict[str, float]:
        """Mean absolute gradient of each term alone over the shared parameters (0: none)."""
        params = self.shared_parameters(pl_module)
        terms = getattr(pl_module, TERMS)(batch)
        found: dict[str, float] = {}
        names = self.names(pl_module)
        for index, name in enumerate(names):
            term = terms.get(name)
            if term is None or not term.requires_grad:
                found[name] = 0.0
                continue
            grads = torch.autograd.grad(
                term, params, retain_graph=index < len(names) - 1, allow_unused=True
            )
            present = [g.abs().flatten() for g in grads if g is not None]
            found[name] = float(torch.cat(present).mean()) if present else 0.0
        return found

    # hooks -------------------------------------------------------------------------------

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        names = self.names(pl_module)
        chosen = self.weights or {name: 1.0 / len(names) for name in names}
        module_weights(pl_module).update(chosen)

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        if self.weights is not None:
            return
        with torch.enable_grad():
            for name, value in self.measure(pl_module, batch).items():
                if value > 0:
                    self.sums[name] = self.sums.get(name, 0.0) + value
                    self.counts[name] = self.counts.get(name, 0) + 1

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if self.weights is not None or trainer.global_step < self.steps:
            return
        names = self.names(pl_module)
        magnitudes = {n: self.sums.get(n, 0.0) / max(self.counts.get(n, 0), 1) for n in names}
        self.weights = balanced_weights(magnitudes)
        module_weights(pl_module).update(self.weights)
        for name, weight in self.weights.items():
            pl_module.log(f"balance/weight_{name}", weight, batch_size=1)
        if trainer.is_global_zero:
            self.write(Path(trainer.default_root_dir), magnitudes)

    def write(self, run_dir: Path, magnitudes: dict[str, float]) -> None:
        assert self.weights is not None
        record = {"steps": self.steps, "parameters": self.prefix, "gradient_magnitudes":
                  magnitudes, "loss_weights": self.weights}  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "loss_weights.json").write_text(json.dumps(record, indent=2) + "\n")
        lines = [f"# GradientLossBalancing (BodyNet's rule) after {self.steps} equal-weight steps",
                 "model:", "  loss_weights:"]  # fmt: skip
        lines += [f"    {name}: {weight:.6g}" for name, weight in self.weights.items()]
        (run_dir / "loss_weights.yaml").write_text("\n".join(lines) + "\n")
        log.info("balanced loss weights %s written to %s", self.weights, run_dir)

    def state_dict(self) -> dict[str, Any]:
        return {"sums": self.sums, "counts": self.counts, "weights": self.weights}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.sums, self.counts = dict(state_dict["sums"]), dict(state_dict["counts"])
        self.weights = state_dict["weights"]
