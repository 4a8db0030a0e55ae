"""The suite's one restricted unpickler, and a writer of pickles that old readers can load.

Every pickle the suite opens (official SMPL model files, UP-3D ``_body.pkl``, 3DPW sequence files,
camera pickles) goes through :func:`load_pickle`. Why our own code: unpickling runs code. A pickle
names any importable callable (``os.system``, ``builtins.eval``, ``subprocess.Popen``) and the
stdlib unpickler imports and calls it; the stdlib offers no allow-list loader, and its docs say to
override ``Unpickler.find_class`` to restrict what a pickle may name, which is what this module
does. The files of this field were written by Python 2 and old numpy (``encoding='latin1'`` makes
their byte strings readable), and they name the same few things, in two spellings (old and new):

- numpy arrays and scalars: ``numpy.core.multiarray._reconstruct`` / ``numpy._core...``,
  ``numpy.ndarray``, ``numpy.dtype``, ``numpy.core.multiarray.scalar``; and
  ``numpy._core.numeric._frombuffer``, which Python 3's default protocol (5) writes for arrays;
- byte strings written by Python 3 at protocol < 3: ``_codecs.encode`` (latin-1 only here);
- objects of plain classes at protocol < 2: ``copy_reg._reconstructor`` with ``__builtin__.object``;
- value types without their own opcode at protocol < 4: ``set`` (chumpy's state holds one),
  ``frozenset``, ``bytes`` (an empty byte string, e.g. the data of an empty array), ``complex``;
- ``scipy.sparse.csc.csc_matrix`` / ``scipy.sparse._csc.csc_matrix`` and csr likewise (the SMPL
  ``J_regressor``), loaded as today's ``scipy.sparse`` classes without importing the deprecated
  module names.

Anything else raises :class:`UnsafePickleError` naming the file and the global, before the global
is imported. The limits of this defence: a pickle can still make huge arrays (memory exhaustion),
and its BUILD opcode can set attributes on the allowed Python classes, though only to allowed
values; no allowed callable runs code that a pickle chooses.

chumpy. Official SMPL files store some arrays as ``chumpy`` objects (at least ``shapedirs``; MANO
stores ``shapedirs`` as a ``Select`` over a ``Ch``). chumpy is unmaintained and does not build on
current Python, so it is never imported. With ``allow_chumpy=True`` its classes load as stand-ins
defined here, which keep the pickled state and evaluate it like chumpy's ``compute_r``:
``chumpy.ch.Ch`` (the array is the state's ``x``), ``chumpy.reordering.Select``
(``a.ravel()[idxs]``, reshaped to ``preferred_shape`` when present), ``chumpy.reordering.transpose``
(``a`` transposed by ``axes``) and ``chumpy.reordering.Reshape`` (``a`` reshaped to ``newshape``).
chumpy pickles these with ``object``'s default reduce: the class global, then the instance dict
minus ``_parents`` and ``_cache`` (``x`` or ``a``/``idxs``/... plus bookkeeping such as the set
``_dirty_vars``). Other chumpy classes (the ``ch_ops`` arithmetic nodes) are graphs that only a
saved *posed* model would hold; they are refused by name. :func:`to_numpy_tree` replaces the
stand-ins by plain arrays.

Writing. :func:`dump_legacy_pickle` writes protocol 2 with the legacy global names that real files
carry, so the files load under numpy 1 and 2 and older scipy, as real files do: numpy 2's
``numpy._core.multiarray`` becomes ``numpy.core.multiarray`` (numpy 2 loads those two names without
a warning), and scipy's private ``scipy.sparse._csc``/``_csr`` become ``scipy.sparse.csc``/``csr``
while the legacy module still provides the class. scipy 1.17 still has it (deprecated, to go in
scipy 2.0): so plain ``pickle.load`` of such a file (smplx does that) emits scipy's
DeprecationWarning, exactly as the official SMPL files do; once scipy drops the name, the writer
keeps the current one. The C pickler has no hook to rename a global, so the names are rewritten
in the finished protocol-2 byte stream, whose GLOBAL opcodes carry them as text and whose other
opcodes hold no byte offsets.
"""

from __future__ import annotations

import abc
import builtins
import codecs
import copyreg
import functools
import importlib
import os
import pickle
import pickletools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import scipy.sparse

__all__ = [
    "ChumpyStandIn",
    "UnsafePickleError",
    "dump_legacy_pickle",
    "dumps_legacy_pickle",
    "load_pickle",
    "to_numpy_tree",
]

LEGACY_PROTOCOL = 2


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle names a global that is not on the allow-list; nothing of it was imported."""


# ----------------------------------------------------------------------------------------------
# chumpy stand-ins


class ChumpyStandIn(abc.ABC):
    """The pickled state of one chumpy node; :meth:`value` evaluates it like chumpy would."""

    chumpy_global: ClassVar[str] = "chumpy"

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state

    def __setstate__(self, state: object) -> None:
        if not isinstance(state, dict):
            raise pickle.UnpicklingError(
                f"{self.chumpy_global}: expected a state dict, got {type(state).__name__}"
            )
        self.state = state

    def term(self, key: str) -> Any:
        """One entry of the pickled state, with an error that names the chumpy class."""
        if key not in self.state:
            raise ValueError(
                f"pickled {self.chumpy_global} has no {key!r} in its state "
                f"(keys: {sorted(map(str, self.state))})"
            )
        return self.state[key]

    @abc.abstractmethod
    def value(self) -> np.ndarray:
        """The array this node evaluates to."""

    @property
    def r(self) -> np.ndarray:
        """chumpy's name for the evaluated array."""
        return self.value()

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return np.asarray(self.value(), dtype=dtype)

    def __repr__(self) -> str:
        return f"<stand-in for {self.chumpy_global}>"


def _evaluate(term: Any) -> np.ndarray:
    return term.value() if isinstance(term, ChumpyStandIn) else np.asarray(term)


class ChumpyCh(ChumpyStandIn):
    """``chumpy.ch.Ch``: a leaf holding the array ``x``."""

    chumpy_global = "chumpy.ch.Ch"

    def value(self) -> np.ndarray:
        return np.array(_evaluate(self.term("x")))


class ChumpySelect(ChumpyStandIn):
    """``chumpy.reordering.Select``: ``a.ravel()[idxs]``, reshaped to ``preferred_shape``."""

    chumpy_global = "chumpy.reordering.Select"

    def value(self) -> np.ndarray:
        selected = _evaluate(self.term("a")).ravel()[np.asarray(self.term("idxs"))]
        if "preferred_shape" in self.state:
            return selected.reshape(self.state["preferred_shape"])
        return selected


class ChumpyTranspose(ChumpyStandIn):
    """``chumpy.reordering.transpose``: ``a`` transposed by ``axes`` (None reverses them)."""

    chumpy_global = "chumpy.reordering.transpose"

    def value(self) -> np.ndarray:
        axes = self.state.get("axes")
        return np.ascontiguousarray(np.transpose(_evaluate(self.term("a")), axes=axes))


class ChumpyReshape(ChumpyStandIn):
    """``chumpy.reordering.Reshape``: ``a`` reshaped to ``newshape``."""

    chumpy_global = "chumpy.reordering.Reshape"

    def value(self) -> np.ndarray:
        return _evaluate(self.term("a")).reshape(self.term("newshape"))


def _split_global(dotted: str) -> tuple[str, str]:
    module, _, name = dotted.rpartition(".")
    return module, name


_CHUMPY_STAND_INS: dict[tuple[str, str], type[ChumpyStandIn]] = {
    _split_global(cls.chumpy_global): cls
    for cls in (ChumpyCh, ChumpySelect, ChumpyTranspose, ChumpyReshape)
}


def to_numpy_tree(obj: Any) -> Any:
    """Replace chumpy stand-ins by numpy arrays, recursing through dicts, lists and tuples.

    Everything else (arrays, sparse matrices, strings, numbers) is returned unchanged; object
    arrays are not searched (no known file puts chumpy objects inside one).
    """
    if isinstance(obj, ChumpyStandIn):
        return obj.value()
    if isinstance(obj, dict):
        return {key: to_numpy_tree(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [to_numpy_tree(value) for value in obj]
    if isinstance(obj, tuple):
        return tuple(to_numpy_tree(value) for value in obj)
    return obj


# ----------------------------------------------------------------------------------------------
# reading


def _latin1_encode(text: str, encoding: str = "latin1", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes (always latin-1); other codecs are refused."""
    if codecs.lookup(encoding).name != "iso8859-1":
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is refused for safety")
    return text.encode("latin-1", errors)


def _numpy_internal(submodule: str, name: str) -> Callable[[], Any]:
    """Resolve numpy's private module under either spelling without a deprecation warning."""

    def resolve() -> Any:
        try:
            module = importlib.import_module(f"numpy._core.{submodule}")
        except ImportError:  # a numpy without the numpy._core spelling
            module = importlib.import_module(f"numpy.core.{submodule}")
        return getattr(module, name)

    return resolve


def _safe_globals() -> dict[tuple[str, str], Callable[[], Any]]:
    table: dict[tuple[str, str], Callable[[], Any]] = {
        ("numpy", "ndarray"): lambda: np.ndarray,
        ("numpy", "dtype"): lambda: np.dtype,
        ("_codecs", "encode"): lambda: _latin1_encode,
    }
    for spelling in ("numpy.core", "numpy._core"):
        for submodule, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar")):
            table[(f"{spelling}.{submodule}", name)] = _numpy_internal(submodule, name)
        table[(f"{spelling}.numeric", "_frombuffer")] = _numpy_internal("numeric", "_frombuffer")
    for module in ("copy_reg", "copyreg"):
        table[(module, "_reconstructor")] = functools.partial(getattr, copyreg, "_reconstructor")
    for module in ("__builtin__", "builtins"):
        for name in ("object", "set", "frozenset", "bytes", "complex"):
            table[(module, name)] = functools.partial(getattr, builtins, name)
    for fmt in ("csc", "csr"):
        for module in (f"scipy.sparse.{fmt}", f"scipy.sparse._{fmt}"):
            table[(module, f"{fmt}_matrix")] = functools.partial(
                getattr, scipy.sparse, f"{fmt}_matrix"
            )
    return table


_SAFE_GLOBALS = _safe_globals()


def _refusal(source: str, module: str, name: str, allow_chumpy: bool) -> UnsafePickleError:
    where = f"{source}: refused to load global '{module}.{name}' for safety"
    if module.split(".")[0] != "chumpy":
        reason = (
            "unpickling can run arbitrary code, so only numpy arrays, scipy sparse matrices and "
            "plain containers are allowed (see body/safe_pickle.py)"
        )
    elif not allow_chumpy:
        reason = (
            "chumpy objects are accepted only when converting official SMPL model files "
            "(allow_chumpy=True; `python -m experiments convert-smpl`)"
        )
    else:
        supported = ", ".join(sorted(".".join(key) for key in _CHUMPY_STAND_INS))
        reason = f"this chumpy class has no stand-in (supported: {supported})"
    return UnsafePickleError(f"{where}: {reason}")


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals; refuses the rest before importing anything."""

    def __init__(self, file: BinaryIO, *, source: str, allow_chumpy: bool) -> None:
        super().__init__(file, encoding="latin1")
        self._source = source
        self._allow_chumpy = allow_chumpy

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[key]()
        if self._allow_chumpy and key in _CHUMPY_STAND_INS:
            return _CHUMPY_STAND_INS[key]
        raise _refusal(self._source, module, name, self._allow_chumpy)


def load_pickle(path: str | os.PathLike[str], *, allow_chumpy: bool = False) -> Any:
    """Load a pickle, Python 2 or 3, allowing only numpy, scipy sparse and plain containers.

    Args:
        path: the pickle file.
        allow_chumpy: load chumpy objects as :class:`ChumpyStandIn` (only for official SMPL
            model files; pass the result through :func:`to_numpy_tree`).

    Raises:
        UnsafePickleError: the file names a global outside the allow-list (file and global named).
    """
    with open(path, "rb") as file:
        return _RestrictedUnpickler(file, source=str(path), allow_chumpy=allow_chumpy).load()


# ----------------------------------------------------------------------------------------------
# writing

_NUMPY_LEGACY_NAMES = {
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "scalar"),
}
_SCIPY_LEGACY_MODULES = {
    "scipy.sparse._csc": "scipy.sparse.csc",
    "scipy.sparse._csr": "scipy.sparse.csr",
}


@functools.cache
def _scipy_legacy_name_resolves(module: str, name: str) -> bool:
    """Whether the installed scipy still provides ``module.name`` as the current class."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            return getattr(importlib.import_module(module), name) is getattr(scipy.sparse, name)
        except (ImportError, AttributeError):
            return False


def _legacy_module(module: str, name: str) -> str:
    if (module, name) in _NUMPY_LEGACY_NAMES:
        return "numpy.core.multiarray"
    legacy = _SCIPY_LEGACY_MODULES.get(module)
    if legacy is not None and _scipy_legacy_name_resolves(legacy, name):
        return legacy
    return module


def _rename_globals(data: bytes) -> bytes:
    """Rewrite the GLOBAL opcodes of a protocol-2 pickle to the legacy module names."""
    pieces, cursor = [], 0
    for opcode, arg, position in pickletools.genops(data):
        if opcode.name != "GLOBAL":
            continue
        assert position is not None  # genops over bytes always reports positions
        module, name = str(arg).split(" ", 1)
        pieces.append(data[cursor:position])
        pieces.append(f"c{_legacy_module(module, name)}\n{name}\n".encode("ascii"))
        cursor = position + len(f"c{module}\n{name}\n")
    pieces.append(data[cursor:])
    return b"".join(pieces)


def dumps_legacy_pickle(obj: Any) -> bytes:
    """Pickle ``obj`` with protocol 2 and the legacy global names (see the module docstring)."""
    return _rename_globals(pickle.dumps(obj, protocol=LEGACY_PROTOCOL))


def dump_legacy_pickle(obj: Any, path: str | os.PathLike[str]) -> None:
    """Write ``obj`` as :func:`dumps_legacy_pickle` does, atomically (temporary file, rename).

    The file loads with plain ``pickle.load(f, encoding='latin1')`` (what smplx does) under
    numpy 1 and 2, and with :func:`load_pickle`.
    """
    path = Path(path)
    data = dumps_legacy_pickle(obj)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
