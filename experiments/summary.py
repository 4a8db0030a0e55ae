"""`python -m experiments summary EXP [--json]`: an experiment's model size and cost.

Parameters: the total and per top-level module of the LightningModule, with the network's own
children listed too (`network.backbone`, `network.head`). FLOPs: one forward pass of the
network (body model excluded, as the papers count) on a batch of one image at the configured
input size (`data.crop_size`), counted by `torch.utils.flop_counter` in eval mode; FLOPs are
2 x multiply-adds (the counter's convention).
"""

from __future__ import annotations

import json

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def summarize(cfg: DictConfig) -> dict:
    """{experiment, input_size, params_total, params_by_module, flops_total} of a resolved
    experiment config."""
    model = instantiate(cfg.model, _convert_="all")
    by_module = {name: count_parameters(child) for name, child in model.named_children()}
    network = getattr(model, "network", None)
    if isinstance(network, nn.Module):
        for name, child in network.named_children():
            by_module[f"network.{name}"] = count_parameters(child)
    size = int(cfg.data.crop_size)
    target = network if isinstance(network, nn.Module) else model
    target.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        target(torch.zeros(1, 3, size, size))
    return {
        "experiment": str(cfg.exp_name),
        "input_size": [size, size],
        "params_total": count_parameters(model),
        "params_by_module": by_module,
        "flops_total": int(counter.get_total_flops()),
    }


def format_summary(summary: dict) -> str:
    lines = [f"{summary['experiment']}: input {summary['input_size'][0]}x"
             f"{summary['input_size'][1]}"]  # fmt: skip
    lines.append(f"  parameters  {summary['params_total'] / 1e6:9.3f} M")
    for name, count in summary["params_by_module"].items():
        lines.append(f"    {name:<20s}{count / 1e6:9.3f} M")
    lines.append(f"  FLOPs       {summary['flops_total'] / 1e9:9.3f} G (2 x multiply-adds)")
    return "\n".join(lines)


def print_summary(cfg: DictConfig, as_json: bool) -> None:
    summary = summarize(cfg)
    print(json.dumps(summary, indent=2) if as_json else format_summary(summary))
