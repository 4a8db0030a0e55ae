"""Reading and writing dataset files with errors that name the file, the sample and the field.

- `DataError`: a corrupt, truncated or invalid file (or a NaN in it); `MissingDataError`: a
  dataset folder, split file or image that is not where the layout says.
- Images are decoded with Pillow because it reports truncated files (OpenCV decodes a truncated
  JPEG into a partly grey image and only prints a warning).
- Pickles only through `body.safe_pickle` (the suite's one restricted unpickler); `.mat` with
  scipy, or h5py for MATLAB v7.3 files.
- Writers write to a temporary name beside the target and rename it into place, so an
  interrupted run never leaves a half-written file that a reader would accept.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import scipy.io
from PIL import Image

from body.safe_pickle import UnsafePickleError, load_pickle


class DataError(ValueError):
    """A dataset file that exists but cannot be used; the message names file, sample and field."""


class MissingDataError(FileNotFoundError):
    """A dataset folder or file that is not where the documented layout puts it."""


def missing(path: Path, what: str, layout: str) -> MissingDataError:
    """An error for a missing `path`, saying what it is and the expected layout."""
    return MissingDataError(
        f"{path}: {what} not found.\n  expected layout: {layout}\n"
        "  (README section 'Datasets' lists every dataset's tree)"
    )


def read_image(path: Path, sample_id: str = "") -> np.ndarray:
    """(H, W, 3) uint8 RGB pixels of an image file; DataError if corrupt or truncated."""
    where = f"{path} (sample {sample_id})" if sample_id else str(path)
    if not path.is_file():
        raise MissingDataError(f"{where}: image file not found")
    try:
        with Image.open(path) as image:
            image.load()
            return np.asarray(image.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{where}: cannot decode image ({error})") from error


def write_image(path: Path, image: np.ndarray, quality: int = 90, compress_level: int = 1) -> None:
    """Write (H, W, 3) uint8 RGB (or (H, W) uint8) atomically; format from the suffix.

    `quality` is JPEG's; `compress_level` is PNG's zlib level (1: the pixels are what count,
    and level 6 triples the time of writing large label maps)."""
    jpeg = path.suffix.lower() in (".jpg", ".jpeg")
    options = {"quality": quality} if jpeg else {"compress_level": compress_level}
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(image)).save(tmp, format=_pil_format(path), **options)


def _pil_format(path: Path) -> str:
    return {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}[path.suffix.lower()]


def load_mat(path: Path) -> dict[str, Any]:
    """A MATLAB file as a dict: v5 through scipy, v7.3 (HDF5) through h5py datasets as arrays."""
    if not path.is_file():
        raise MissingDataError(f"{path}: .mat file not found")
    try:
        return scipy.io.loadmat(str(path))
    except NotImplementedError:  # MATLAB v7.3
        return _load_hdf5_mat(path)
    except (
        ValueError,
        OSError,
        TypeError,
        EOFError,
        IndexError,
        scipy.io.matlab.MatReadError,
    ) as error:
        raise DataError(f"{path}: cannot read MATLAB file ({error})") from error


def _load_hdf5_mat(path: Path) -> dict[str, Any]:
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            return {key: handle[key][()] for key in handle if isinstance(handle[key], h5py.Dataset)}
    except OSError as error:
        raise DataError(f"{path}: cannot read MATLAB v7.3 file ({error})") from error


def iter_video(path: Path, sample: str = "") -> Iterator[np.ndarray]:
    """(H, W, 3) uint8 RGB frames of a video one at a time (PyAV, threaded decoding), so long
    1080p videos never sit in memory whole; DataError if corrupt, truncated or empty."""
    import av

    where = f"{path} (sample {sample})" if sample else str(path)
    count = 0
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                count += 1
                yield frame.to_ndarray(format="rgb24")
    except (av.FFmpegError, OSError, ValueError, IndexError) as error:
        raise DataError(f"{where}: cannot decode video ({error})") from error
    if count == 0:
        raise DataError(f"{where}: no video frames decoded (corrupt or truncated file)")


def read_json(path: Path, kind: type = dict) -> Any:
    """A JSON file whose top level is a `kind` (object or list); MissingDataError if absent,
    DataError naming the file if unreadable or of another kind."""
    if not path.is_file():
        raise MissingDataError(f"{path}: file not found")
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: cannot read JSON ({error})") from error
    if not isinstance(data, kind):
        raise DataError(f"{path}: top level is {type(data).__name__}, expected {kind.__name__}")
    return data


def read_pickle(path: Path) -> Any:
    """A pickle through the restricted unpickler; DataError for truncated or unsafe files."""
    if not path.is_file():
        raise MissingDataError(f"{path}: pickle file not found")
    try:
        return load_pickle(path)
    except UnsafePickleError:
        raise
    except Exception as error:  # truncated or malformed: EOFError, UnpicklingError, ValueError...
        raise DataError(f"{path}: cannot read pickle ({type(error).__name__}: {error})") from error


def load_npz(path: Path) -> dict[str, np.ndarray]:
    """Every array of an .npz file (no pickled objects allowed)."""
    if not path.is_file():
        raise MissingDataError(f"{path}: .npz file not found")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in data.files}
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"{path}: cannot read npz ({error})") from error


def field(data: dict, key: str, source: Path | str, shape: tuple | None = None) -> np.ndarray:
    """`data[key]` as an array, checked: present, finite if numeric, and of `shape` (None = any
    size on that axis). Errors name the file and the field."""
    if key not in data:
        raise DataError(f"{source}: field {key!r} missing (has {sorted(map(str, data))})")
    value = np.asarray(data[key])
    if shape is not None and (
        value.ndim != len(shape)
        or any(w is not None and h != w for h, w in zip(value.shape, shape, strict=False))
    ):
        raise DataError(f"{source}: field {key!r} has shape {value.shape}, expected {shape}")
    check_finite(value, source, key)
    return value


def check_finite(value: np.ndarray, source: Path | str, key: str) -> None:
    """DataError naming the file and field when a numeric array holds NaN or infinity."""
    if value.dtype.kind in "fc" and not np.isfinite(value).all():
        bad = np.argwhere(~np.isfinite(value))[0].tolist()
        raise DataError(f"{source}: field {key!r} holds NaN or infinite values (first at {bad})")


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success rename it to `path`, else delete it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def savemat(path: Path, data: dict[str, Any]) -> None:
    """MATLAB v5 with compression, as SURREAL's and MuPoTS's files are written."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        scipy.io.savemat(handle, data, do_compression=True)


def savez(path: Path, **arrays: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)  # type: ignore[arg-type]
