"""The cache of derived files (DESIGN.md "Data on disk").

Everything derived from a dataset's files (extracted video frames, rendered part labels,
method targets such as BodyNet's voxels) lives under `cache_root` (default
`<data_root>/.cache/`), one folder per (step, source file):

    <cache_root>/<step>/v<CACHE_VERSION>/<key>/...      + a COMPLETE marker

`key` hashes the source file's path relative to the data root, its size and its modification
time (plus any step options, such as a voxel resolution), so editing or replacing the source
invalidates the entry; a step's `CACHE_VERSION` is bumped by hand when its output changes.
Entries are built in a temporary folder and renamed into place, so an interrupted build never
leaves an entry that looks complete; nobody edits the cache by hand.

Prepare steps. `python -m experiments prepare <dataset> [--targets NAME ...]` runs the steps
registered for a dataset here: method-agnostic ones (`register_step`, run automatically on
first use too) and method targets (`register_target`, e.g. from a method's `targets.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

COMPLETE = "COMPLETE"


def source_key(source: Path, data_root: Path, **options: object) -> str:
    """A short hash of the source file's relative path, size, mtime and the step's options."""
    stat = source.stat()
    try:
        relative = str(source.resolve().relative_to(Path(data_root).resolve()))
    except ValueError:
        relative = str(source.resolve())
    payload = json.dumps(
        [relative, stat.st_size, stat.st_mtime_ns, sorted(options.items())], default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def entry_dir(cache_root: Path, step: str, version: int, key: str) -> Path:
    return Path(cache_root) / step / f"v{version}" / key


def is_complete(entry: Path) -> bool:
    return (entry / COMPLETE).is_file()


@contextlib.contextmanager
def build_entry(entry: Path) -> Iterator[Path]:
    """Yield a temporary folder to fill; on success it becomes `entry` (with its marker)."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        yield tmp
        (tmp / COMPLETE).write_text("")
        if entry.exists():  # built concurrently by another worker: keep theirs
            shutil.rmtree(tmp)
        else:
            os.replace(tmp, entry)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class PrepareContext:
    """What a prepare step receives: where the data is, where the cache goes, and options."""

    data_root: Path
    cache_root: Path
    body_model_root: Path
    body_model_name: str
    options: dict = field(default_factory=dict)
    progress: bool = True


PrepareStep = Callable[[PrepareContext], str]  # returns a one-line summary
_STEPS: dict[str, dict[str, PrepareStep]] = {}
_TARGETS: dict[str, dict[str, PrepareStep]] = {}


def register_step(dataset_id: str, name: str, step: PrepareStep) -> None:
    """A method-agnostic step `prepare <dataset_id>` runs (and readers run on first use)."""
    _STEPS.setdefault(dataset_id, {})[name] = step


def register_target(dataset_id: str, name: str, step: PrepareStep) -> None:
    """A method's target cache, run by `prepare <dataset_id> --targets <name>`."""
    _TARGETS.setdefault(dataset_id, {})[name] = step


def steps_for(dataset_id: str) -> dict[str, PrepareStep]:
    return dict(_STEPS.get(dataset_id, {}))


def target_for(dataset_id: str, name: str) -> PrepareStep:
    targets = _TARGETS.get(dataset_id, {})
    if name not in targets:
        raise KeyError(
            f"no target {name!r} registered for {dataset_id}; registered: {sorted(targets)}"
        )
    return targets[name]
