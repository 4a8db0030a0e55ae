"""`python -m experiments chain NAME`: train a chain of experiments, each from an earlier one.

    python -m experiments chain bodynet [KEY=VALUE ...]     (make bodynet-chain ARGS=...)

`experiments/chains/<name>.yaml` lists the stages in order:

    stages:
      - {experiment: bodynet_stage1_pose2d_segm}
      - {experiment: bodynet_stage2_pose3d, init: {model.init_from: bodynet_stage1_pose2d_segm}}

Each stage is trained as `train` trains it, with the command line's overrides (applied to every
stage) plus, for each `init` entry, `<key>=<run folder of the named stage>/checkpoints/last.ckpt`
from this invocation. A stage may only name stages before it. The run folders are printed as
they finish and returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from experiments.config import ConfigError, find_experiment, load_experiment

CHAINS_DIR = Path(__file__).resolve().parent / "chains"
STAGE_KEYS = {"experiment", "init"}


def chain_names() -> list[str]:
    return sorted(path.stem for path in CHAINS_DIR.glob("*.yaml"))


def load_chain(name: str) -> list[dict]:
    """The stages of chain `name` (a name under experiments/chains/ or a YAML path), checked."""
    path = Path(name) if Path(name).suffix in (".yaml", ".yml") else CHAINS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"Unknown chain '{name}'. Chains: {', '.join(chain_names())}.")
    raw = yaml.safe_load(path.read_text()) or {}
    stages = raw.get("stages") if isinstance(raw, dict) else None
    if not isinstance(stages, list) or not stages:
        raise ConfigError(f"{path}: 'stages' must be a non-empty list")
    seen: list[str] = []
    for index, stage in enumerate(stages):
        where = f"{path}: stages[{index}]"
        if not isinstance(stage, dict) or "experiment" not in stage or set(stage) - STAGE_KEYS:
            raise ConfigError(f"{where} must be {{experiment: NAME, init: {{KEY: STAGE}}}}")
        find_experiment(stage["experiment"])  # ConfigError naming the experiments
        for key, source in (stage.get("init") or {}).items():
            if source not in seen:
                raise ConfigError(f"{where}: init {key} names '{source}', not an earlier stage")
        seen.append(stage["experiment"])
    return stages


def run_chain(
    name: str, overrides: Sequence[str] = (), data_root: str | Path | None = None
) -> dict[str, Path]:
    """Train every stage of chain `name` in order; {experiment: run folder}."""
    from experiments.train import train

    stages = load_chain(name)
    runs: dict[str, Path] = {}
    for stage in stages:
        inits = [
            f"{key}={runs[source] / 'checkpoints' / 'last.ckpt'}"
            for key, source in (stage.get("init") or {}).items()
        ]
        cfg = load_experiment(stage["experiment"], [*overrides, *inits], data_root)
        runs[stage["experiment"]] = train(cfg)
        print(runs[stage["experiment"]], flush=True)
    return runs
