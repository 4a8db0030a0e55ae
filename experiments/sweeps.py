"""Sweeps over config values (loss weights first): wandb sweep files, run online or offline.

`experiments/sweeps/<name>.yaml` is a wandb sweep configuration: `method` (grid, random,
bayes), `metric` ({name, goal}), `parameters` (dotted config keys, each with `values`, `value`
or a `distribution` with `min`/`max`) and a `command` running `python -m experiments train EXP
${args_no_hyphens}`: wandb passes a trial's values as `key=value`, which are the runner's
dotlist overrides, so a trial is a normal training run.

`python -m experiments sweep NAME --count N [key=value ...]` (`make sweep SWEEP=... COUNT=...`):

- with a wandb login (`WANDB_API_KEY`, or `wandb login`'s netrc entry) and `WANDB_MODE` not
  `offline`: `wandb sweep` registers the file and `wandb agent --count N` runs the trials;
- otherwise, or with `--local`: this module proposes N trials from the same file (grid: the
  cartesian product of every parameter's `values`, in order; random: each parameter drawn
  independently from its `values` or distribution, seeded by `--seed`; `bayes` needs wandb's
  service: refused offline), runs each in turn through `experiments.train.train` with the
  extra overrides and `run_name=<sweep>-<trial>`, reads the metric from the run's
  `metrics.json` (the final logged values), and prints the trials as a table sorted by the
  metric. The table also goes to `<output_root>/sweeps/<name>-<time>.json`.

Before anything runs, every swept key is checked against the composed experiment (a key the
config does not have is a ConfigError naming it), so a typo costs no training.

Why our own offline runner: wandb's agent needs its server to propose parameters; optuna
would cover `bayes` offline but is not a dependency yet.
"""

from __future__ import annotations

import datetime
import itertools
import json
import math
import netrc
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from experiments.config import EXPERIMENTS_DIR, ConfigError, load_experiment, resolve

SWEEP_DIR = EXPERIMENTS_DIR / "sweeps"
DISTRIBUTIONS = ("uniform", "log_uniform_values", "int_uniform", "q_uniform")


def sweep_path(name: str | Path) -> Path:
    """`experiments/sweeps/<name>.yaml`, or a path to a sweep file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return path
    found = SWEEP_DIR / f"{name}.yaml"
    if not found.is_file():
        known = sorted(p.stem for p in SWEEP_DIR.glob("*.yaml"))
        raise ConfigError(f"unknown sweep {name!r}; sweeps: {', '.join(known)}")
    return found


def load_sweep(path: Path) -> dict[str, Any]:
    """The sweep file, with its shape checked (method, metric, parameters, train command)."""
    sweep = yaml.safe_load(path.read_text())
    if not isinstance(sweep, dict):
        raise ConfigError(f"{path}: a sweep file is a mapping")
    for key in ("method", "metric", "parameters", "command"):
        if key not in sweep:
            raise ConfigError(f"{path}: sweep has no '{key}'")
    if sweep["method"] not in ("grid", "random", "bayes"):
        raise ConfigError(f"{path}: method {sweep['method']!r} is not grid, random or bayes")
    if not {"name", "goal"} <= set(sweep["metric"]):
        raise ConfigError(f"{path}: metric needs 'name' and 'goal'")
    experiment(sweep, path)
    return sweep


def experiment(sweep: dict[str, Any], path: Path) -> str:
    """The experiment of the sweep's command (the word after `train`)."""
    command = [str(word) for word in sweep["command"]]
    if "train" not in command or command.index("train") + 1 >= len(command):
        raise ConfigError(f"{path}: the command must run `python -m experiments train EXP`")
    return command[command.index("train") + 1]


def trial_overrides(values: dict[str, Any]) -> list[str]:
    """`key=value` overrides of one trial (wandb's `${args_no_hyphens}`)."""
    return [f"{key}={json.dumps(value) if isinstance(value, str) else value}"
            for key, value in values.items()]  # fmt: skip


def check_keys(sweep: dict[str, Any], path: Path, overrides: Sequence[str] = ()) -> None:
    """Compose the experiment with one candidate of every parameter: a ConfigError names a
    swept key the config does not have."""
    first = {key: _candidates(spec, key, path)[0] for key, spec in sweep["parameters"].items()}
    try:
        load_experiment(experiment(sweep, path), [*overrides, *trial_overrides(first)])
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def propose(sweep: dict[str, Any], count: int, seed: int, path: Path) -> list[dict[str, Any]]:
    """`count` trials (dicts key -> value) of a grid or random sweep (module docstring)."""
    parameters: dict[str, Any] = sweep["parameters"]
    if sweep["method"] == "grid":
        keys = list(parameters)
        grid = itertools.product(*(_candidates(parameters[k], k, path) for k in keys))
        return [dict(zip(keys, values, strict=True)) for values in itertools.islice(grid, count)]
    if sweep["method"] == "bayes":
        raise ConfigError(f"{path}: method bayes needs wandb's sweep service; offline use random")
    rng = np.random.default_rng(seed)
    return [{k: _draw(spec, k, rng, path) for k, spec in parameters.items()} for _ in range(count)]


def _candidates(spec: dict[str, Any], key: str, path: Path) -> list[Any]:
    if "values" in spec:
        return list(spec["values"])
    if "value" in spec:
        return [spec["value"]]
    if spec.get("distribution") in DISTRIBUTIONS:
        return [spec["min"]]
    raise ConfigError(f"{path}: parameter {key} needs values, value or a distribution")


def _draw(spec: dict[str, Any], key: str, rng: np.random.Generator, path: Path) -> Any:
    if "values" in spec:
        return spec["values"][int(rng.integers(len(spec["values"])))]
    if "value" in spec:
        return spec["value"]
    kind, low, high = spec.get("distribution"), spec.get("min"), spec.get("max")
    if kind not in DISTRIBUTIONS or low is None or high is None:
        raise ConfigError(f"{path}: parameter {key}: distribution one of {DISTRIBUTIONS} "
                          "with min and max")  # fmt: skip
    if kind == "int_uniform":
        return int(rng.integers(int(low), int(high) + 1))
    if kind == "log_uniform_values":
        return float(math.exp(rng.uniform(math.log(low), math.log(high))))
    value = float(rng.uniform(low, high))
    return round(value / spec["q"]) * spec["q"] if kind == "q_uniform" else value


# ----------------------------------------------------------------------------- running


def wandb_online() -> bool:
    """Whether wandb can reach its server as a logged-in user (no network call here)."""
    if os.environ.get("WANDB_MODE", "").lower() in ("offline", "disabled", "dryrun"):
        return False
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def run_wandb_agent(path: Path, count: int) -> None:
    """`wandb sweep` then `wandb agent --count`; the trials log online."""
    wandb = shutil.which("wandb") or "wandb"
    created = subprocess.run([wandb, "sweep", str(path)], capture_output=True, text=True)
    sweep_id = next((line.split()[-1] for line in created.stderr.splitlines()
                     if "wandb agent" in line), None)  # fmt: skip
    if created.returncode != 0 or sweep_id is None:
        raise RuntimeError(f"wandb sweep {path} failed: {created.stderr[-2000:]}")
    subprocess.run([wandb, "agent", "--count", str(count), sweep_id], check=True)


def run_local(
    name: str, count: int, overrides: Sequence[str] = (), seed: int = 0, data_root: Any = None
) -> list[dict[str, Any]]:
    """Run `count` trials here (module docstring); return them best first."""
    from experiments.train import train  # imports Lightning

    path = sweep_path(name)
    sweep = load_sweep(path)
    check_keys(sweep, path, overrides)
    metric, goal = sweep["metric"]["name"], sweep["metric"]["goal"]
    trials = []
    for index, values in enumerate(propose(sweep, count, seed, path)):
        run_name = f"{path.stem}-{index}"
        cfg = load_experiment(experiment(sweep, path),
                              [*overrides, *trial_overrides(values), f"run_name={run_name}"],
                              data_root)  # fmt: skip
        run_dir = train(cfg)
        logged = json.loads((run_dir / "metrics.json").read_text())
        trials.append({"trial": index, "run_dir": str(run_dir), "values": values,
                       metric: logged.get(metric)})  # fmt: skip
    missing = [t["run_dir"] for t in trials if t[metric] is None]
    if missing:
        raise ValueError(f"sweep {path.stem}: runs {missing} logged no {metric}")
    trials.sort(key=lambda t: t[metric], reverse=goal == "maximize")
    out = Path(resolve(cfg).output_root) / "sweeps"
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    (out / f"{path.stem}-{stamp}.json").write_text(json.dumps(trials, indent=2) + "\n")
    return trials


def trials_table(trials: Sequence[dict[str, Any]], metric: str) -> str:
    """The trials as a Markdown table, in the given order."""
    keys = list(trials[0]["values"]) if trials else []
    lines = ["| trial | " + " | ".join([*keys, metric]) + " |",
             "|---" * (len(keys) + 2) + "|"]  # fmt: skip
    for trial in trials:
        cells = [f"{trial['values'][k]:.4g}" if isinstance(trial["values"][k], float)
                 else str(trial["values"][k]) for k in keys]  # fmt: skip
        lines.append(f"| {trial['trial']} | " + " | ".join([*cells, f"{trial[metric]:.4g}"]) + " |")
    return "\n".join(lines)
