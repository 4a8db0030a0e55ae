"""Experiment configs: hydra-core's compose API over OmegaConf, with every key checked at load time.

An experiment is one YAML file, the primary config. Its `defaults:` list starts with `suite`
(`experiments/base/suite.yaml`, the one place that declares the top-level keys) and may select
other options of the groups under `experiments/base/<group>/` (`- override trainer: cpu`).
Experiments live in `experiments/` and are named by file stem (`pare_r50`), or are given as a
path to a YAML file anywhere; the base groups are on the search path either way.

Composition uses `hydra.initialize_config_dir` and `hydra.compose` only: no `@hydra.main`, no
change of working directory, no output folders, no logging setup. The result is in OmegaConf's
struct mode. A misspelled key raises `ConfigError` naming the valid keys, whether it comes from a
command-line override (OmegaConf alone names only the bad key) or from a YAML file (composition
merges files permissively, so the loaded config is checked against the keys `suite.yaml`
declares and, for `_target_` nodes, against the constructor signature of the target).
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

EXPERIMENTS_DIR = Path(__file__).resolve().parent
BASE_DIR = EXPERIMENTS_DIR / "base"
ROOT_CONFIG = "suite"
HYDRA_KEYS = ("_target_", "_partial_", "_recursive_", "_convert_", "_args_")


class ConfigError(ValueError):
    """A mistake in an experiment file or on the command line, explained for the user."""


def find_experiment(exp: str | Path) -> Path:
    """The YAML file of `exp`: a name of `experiments/<name>.yaml`, or a path to a YAML file."""
    text = str(exp)
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text)
        if not path.is_file():
            raise ConfigError(f"Experiment file not found: {text}")
        return path
    path = EXPERIMENTS_DIR / f"{text}.yaml"
    if path.is_file():
        return path
    names = available_experiments()
    message = f"Unknown experiment '{text}'."
    close = difflib.get_close_matches(text, names, n=1)
    if close:
        message += f" Did you mean '{close[0]}'?"
    listing = ", ".join(names) if names else "none yet"
    raise ConfigError(
        f"{message}\nExperiments in experiments/: {listing}. A path to a YAML file works too."
    )


def available_experiments() -> list[str]:
    """Names of the experiments shipped in `experiments/`."""
    return sorted(path.stem for path in EXPERIMENTS_DIR.glob("*.yaml"))


def load_experiment(
    exp: str | Path, overrides: Sequence[str] = (), data_root: str | Path | None = None
) -> DictConfig:
    """Compose experiment `exp` with dotlist `overrides` and `data_root`; checked, struct mode.

    `exp_name` is set to the experiment file's stem. Interpolations are left unresolved (see
    `resolve`), so paths follow the environment of whoever resolves them.
    """
    path = find_experiment(exp)
    runner_overrides = [f"++exp_name={_quote(path.stem)}"]
    if data_root is not None:
        runner_overrides.append(f"data_root={_quote(str(data_root))}")
    cfg = _compose(path.resolve().parent, path.stem, runner_overrides, list(overrides))
    schema = _compose(BASE_DIR, ROOT_CONFIG, [], [])
    present = set(cfg)  # not `key in cfg`, which OmegaConf answers False for an unset (???) value
    missing = [str(key) for key in schema if key not in present]
    if missing:
        raise ConfigError(
            f"Experiment '{path.stem}' lacks the top-level keys {', '.join(missing)}: the first "
            f"entry of its defaults list must be '{ROOT_CONFIG}' (experiments/base/"
            f"{ROOT_CONFIG}.yaml)."
        )
    _check_keys(_plain(cfg), _plain(schema), path="")
    OmegaConf.set_struct(cfg, True)
    return cfg


def load_base(overrides: Sequence[str] = (), data_root: str | Path | None = None) -> DictConfig:
    """The suite's defaults alone (no experiment), for commands that need only paths."""
    runner_overrides = [] if data_root is None else [f"data_root={_quote(str(data_root))}"]
    cfg = _compose(BASE_DIR, ROOT_CONFIG, runner_overrides, list(overrides))
    _check_keys(_plain(cfg), _plain(cfg), path="")
    OmegaConf.set_struct(cfg, True)
    return cfg


def resolve(cfg: DictConfig, allow_missing: bool = False) -> DictConfig:
    """A copy of `cfg` with every interpolation resolved (environment variables read now).

    Unless `allow_missing`, a mandatory value left unset (`???`) is an error.
    """
    resolved = cfg.copy()
    try:
        OmegaConf.resolve(resolved)
    except OmegaConfBaseException as error:
        message = getattr(error, "msg", None) or str(error)
        raise ConfigError(f"Cannot resolve '{error.full_key}': {message}") from None
    missing = sorted(OmegaConf.missing_keys(resolved))
    if missing and not allow_missing:
        raise ConfigError(
            f"The config leaves mandatory keys unset (???): {', '.join(missing)}. "
            "Set them in the experiment file or on the command line (key=value)."
        )
    return resolved


def to_yaml(cfg: DictConfig) -> str:
    """`cfg` as plain YAML with every interpolation resolved; unset values print as ???."""
    return OmegaConf.to_yaml(resolve(cfg, allow_missing=True))


def _compose(
    config_dir: Path, config_name: str, runner_overrides: list[str], user_overrides: list[str]
) -> DictConfig:
    """Compose `config_name` from `config_dir` with the base groups on the search path."""
    search_path = [] if config_dir == BASE_DIR else [_search_path_override(BASE_DIR)]
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            return compose(
                config_name=config_name,
                overrides=[*search_path, *runner_overrides, *user_overrides],
            )
    except OverrideParseException as error:
        raise ConfigError(f"Cannot parse the overrides: {error}") from None
    except MissingConfigException as error:
        # Hydra's message lists the available options, then the search path (absolute paths).
        raise ConfigError(str(error).split("\nConfig search path:")[0]) from None
    except (HydraException, OmegaConfBaseException, yaml.YAMLError) as error:
        bad_key = _key_not_in_struct(error)
        if bad_key is None:
            raise ConfigError(_describe(error)) from None
        culprits = [o for o in user_overrides if _overrides_key(o, bad_key)]
        if not culprits:
            raise ConfigError(_describe(error)) from None
        rest = [o for o in user_overrides if o not in culprits]
        cfg = _compose(config_dir, config_name, runner_overrides, rest)
        raise _unknown_override_error(cfg, bad_key, culprits[0]) from None


def _key_not_in_struct(error: BaseException) -> str | None:
    """The full key that an override tried to set where struct mode has no such key."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConfigAttributeError | ConfigKeyError) and cause.full_key:
            return str(cause.full_key)
        cause = cause.__cause__
    return None


def _overrides_key(override: str, key: str) -> bool:
    """Whether the dotlist `override` sets `key` or a key below it."""
    try:
        target = OverridesParser.create().parse_overrides([override])[0].key_or_group
    except HydraException:
        return False
    return target == key or target.startswith(key + ".")


def _unknown_override_error(cfg: DictConfig, full_key: str, override: str) -> ConfigError:
    parent_path, _, key = full_key.rpartition(".")
    parent = OmegaConf.select(cfg, parent_path) if parent_path else cfg
    where = f"'{parent_path}'" if parent_path else "the top-level config"
    if not isinstance(parent, DictConfig):
        return ConfigError(f"Override '{override}': '{parent_path}' holds a value, not keys.")
    target = parent.get("_target_") if "_target_" in parent else None
    valid = _target_arguments(target) if isinstance(target, str) else None
    if valid is not None and key in valid:
        return ConfigError(
            f"Override '{override}': '{key}' is an argument of {target} that this config does "
            f"not set yet; add it with a leading plus: +{override.lstrip('+')}"
        )
    if valid is None:
        valid = [str(name) for name in parent]
    return ConfigError(_unknown_key_message(key, where, valid, f"override '{override}'", target))


def _check_keys(node: Any, schema: Any, path: str) -> None:
    """Refuse keys of `node` that neither `schema` declares nor a `_target_` accepts.

    `node` and `schema` are plain containers (interpolations unresolved). Plain mappings are
    checked against the schema's mapping at the same place; a mapping whose values are all
    `_target_` nodes (`callbacks`) is a named collection, open to new names; below a
    `_target_` node only nested `_target_` nodes are checked.
    """
    if isinstance(node, list):
        for index, item in enumerate(node):
            _check_keys(item, None, f"{path}[{index}]")
        return
    if not isinstance(node, dict):
        return
    if "_target_" in node:
        _check_target(node, path)
        schema = None
    elif isinstance(schema, dict) and not _is_collection(schema):
        for key in node:
            if key not in schema:
                where = f"'{path}'" if path else "the top-level config"
                origin = "set in the experiment, a base config it lists, or a '+' override"
                raise ConfigError(_unknown_key_message(key, where, list(schema), origin, None))
    else:
        schema = None
    for key, child in node.items():
        child_path = f"{path}.{key}" if path else str(key)
        _check_keys(child, schema.get(key) if isinstance(schema, dict) else None, child_path)


def _check_target(node: dict[str, Any], path: str) -> None:
    target = node["_target_"]
    if not isinstance(target, str) or "${" in target:
        return
    valid = _target_arguments(target, where=path)
    if valid is None:
        return
    for key in node:
        if key not in valid and key not in HYDRA_KEYS:
            origin = "set in the experiment, a base config it lists, or a '+' override"
            raise ConfigError(_unknown_key_message(key, f"'{path}'", valid, origin, target))


def _target_arguments(target: str, where: str = "") -> list[str] | None:
    """Keyword arguments `target` accepts, or None when it takes **kwargs (anything goes)."""
    try:
        factory = get_object(target)
    except ImportError as error:
        raise ConfigError(f"Cannot import _target_ '{target}' of '{where}': {error}") from None
    try:
        parameters = inspect.signature(factory).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    keyword_kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return [p.name for p in parameters if p.kind in keyword_kinds]


def _unknown_key_message(
    key: str, where: str, valid: list[str], origin: str, target: str | None
) -> str:
    lines = [f"Unknown key '{key}' in {where} ({origin})."]
    close = difflib.get_close_matches(str(key), valid, n=1)
    if close:
        lines.append(f"Did you mean '{close[0]}'?")
    if target is not None:
        lines.append(f"Valid keys of {where}, the arguments of {target}: {', '.join(valid)}")
        lines.append(f"(plus Hydra's {', '.join(HYDRA_KEYS)})")
    else:
        lines.append(f"Valid keys of {where}: {', '.join(valid)}")
    return "\n".join(lines)


def _is_collection(schema: dict[str, Any]) -> bool:
    """A mapping of named `_target_` nodes (such as `callbacks`), open to new names."""
    values = list(schema.values())
    return bool(values) and all(isinstance(v, dict) and "_target_" in v for v in values)


def _plain(cfg: DictConfig) -> Any:
    return OmegaConf.to_container(cfg, resolve=False, throw_on_missing=False)


def _describe(error: BaseException) -> str:
    """Hydra's and OmegaConf's messages along the cause chain, without repeats."""
    messages: list[str] = []
    cause: BaseException | None = error
    while cause is not None:
        text = str(cause).strip()
        if text and text not in messages:
            messages.append(text)
        cause = cause.__cause__
    return "\n".join(messages) or type(error).__name__


def _search_path_override(directory: Path) -> str:
    return f"hydra.searchpath=[{_quote('file://' + str(directory))}]"


def _quote(value: str) -> str:
    """`value` as a quoted string in Hydra's override grammar (spaces, '=' and quotes survive).

    The grammar unescapes backslashes only before a quote, so those (and a trailing run) double.
    """
    escaped = re.sub(r"(\\*)('|$)", lambda m: m.group(1) * 2 + ("\\'" if m.group(2) else ""), value)
    return f"'{escaped}'"
