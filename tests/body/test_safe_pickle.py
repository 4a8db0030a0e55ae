"""The restricted unpickler: what real files need loads, everything else is refused unexecuted.

Also home of the fake chumpy classes (``FakeCh`` and friends) that pickle exactly as chumpy's own
classes do; ``test_convert_smpl`` builds its fake official SMPL files with them.
"""

from __future__ import annotations

import importlib.util
import pickle
import sys
import types
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse

from body.safe_pickle import (
    ChumpyCh,
    UnsafePickleError,
    dump_legacy_pickle,
    dumps_legacy_pickle,
    load_pickle,
    to_numpy_tree,
)

# ----------------------------------------------------------------------------------------------
# fake chumpy: classes that pickle under chumpy's names with chumpy's state


class FakeChumpyNode:
    """Pickles like a chumpy node: object's default reduce, state = ``__dict__`` without the
    unpicklable ``_parents`` and ``_cache`` (chumpy.ch.Ch.__getstate__)."""

    def __init__(self, **terms: Any) -> None:
        self.__dict__.update(terms)
        self.__dict__.update(
            _dirty_vars=set(terms),
            _itr=None,
            _depends_on_deps={},
            _make_dense=False,
            _make_sparse=False,
            _parents={},
            _cache={"r": None, "drs": {}},
        )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_parents"]
        del state["_cache"]
        return state


def _chumpy_class(module: str, name: str) -> type[FakeChumpyNode]:
    return type(name, (FakeChumpyNode,), {"__module__": module, "__qualname__": name})


FakeCh = _chumpy_class("chumpy.ch", "Ch")
FakeSelect = _chumpy_class("chumpy.reordering", "Select")
FakeTranspose = _chumpy_class("chumpy.reordering", "transpose")
FakeReshape = _chumpy_class("chumpy.reordering", "Reshape")
FakeAdd = _chumpy_class("chumpy.ch_ops", "add")
FAKE_CHUMPY_CLASSES = (FakeCh, FakeSelect, FakeTranspose, FakeReshape, FakeAdd)


@contextmanager
def fake_chumpy_modules() -> Iterator[None]:
    """Make the fake classes importable as chumpy's, only while pickling."""
    names = ["chumpy", *sorted({cls.__module__ for cls in FAKE_CHUMPY_CLASSES})]
    modules = {name: types.ModuleType(name) for name in names}
    for cls in FAKE_CHUMPY_CLASSES:
        setattr(modules[cls.__module__], cls.__name__, cls)
    with pytest.MonkeyPatch.context() as patch:
        for name, module in modules.items():
            patch.setitem(sys.modules, name, module)
        yield


def fake_chumpy_installed() -> bool:
    return getattr(sys.modules.get("chumpy.ch"), "Ch", None) is FakeCh


def pickle_with_fake_chumpy(obj: Any, protocol: int = 2) -> bytes:
    """Pickle ``obj`` as Python 2 with chumpy installed would (default protocol 2)."""
    with fake_chumpy_modules():
        return pickle.dumps(obj, protocol=protocol)


def test_fake_chumpy_pickles_under_chumpy_names_then_leaves() -> None:
    assert b"cchumpy.ch\nCh\n" in pickle_with_fake_chumpy(FakeCh(x=np.zeros(2)), protocol=0)
    assert b"cchumpy.reordering\nSelect\n" in pickle_with_fake_chumpy(FakeSelect(a=1), protocol=2)
    assert not fake_chumpy_installed()


# ----------------------------------------------------------------------------------------------
# helpers


def assert_tree_equal(actual: Any, expected: Any) -> None:
    """Deep equality that also compares types, dtypes and sparse formats."""
    assert type(actual) is type(expected), (type(actual), type(expected))
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key in expected:
            assert_tree_equal(actual[key], expected[key])
    elif isinstance(expected, list | tuple):
        assert len(actual) == len(expected)
        for item, expected_item in zip(actual, expected, strict=True):
            assert_tree_equal(item, expected_item)
    elif scipy.sparse.issparse(expected):
        assert actual.format == expected.format and actual.shape == expected.shape
        assert (actual != expected).nnz == 0
    elif isinstance(expected, np.ndarray | np.generic):
        assert actual.dtype == expected.dtype and actual.shape == expected.shape
        assert np.array_equal(actual, expected)
        if isinstance(expected, np.ndarray):
            assert actual.flags.f_contiguous == expected.flags.f_contiguous
    else:
        assert actual == expected


def write(tmp_path: Path, data: bytes, name: str = "file.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def plain_load(path: Path) -> Any:
    """What smplx does; the legacy scipy name warns on scipy 1.17 (as official files do)."""
    with open(path, "rb") as file, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Please import `cs", DeprecationWarning)
        return pickle.load(file, encoding="latin1")


def sample_tree() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "float64": rng.normal(size=(4, 3)),
        "float32": rng.normal(size=5).astype(np.float32),
        "int64": np.arange(-3, 3, dtype=np.int64),
        "uint32_faces": rng.integers(0, 100, size=(6, 3)).astype(np.uint32),
        "bool": np.array([True, False, True]),
        "complex": np.array([1 + 2j, -1j]),
        "zero_d": np.array(3.5),
        "empty": np.zeros((0, 3)),
        "fortran": np.asfortranarray(rng.normal(size=(3, 2))),
        "structured": np.array([(1.0, 2)], dtype=[("a", "<f4"), ("b", "<i2")]),
        "unicode": np.array(["lsp", "mpii"]),
        "object_strings": np.array(["a", "bb", None], dtype=object),
        "scalars": [np.float64(1.25), np.int32(-7), np.float32(0.5), np.bool_(True)],
        "nested": {"list": [1, 2.5, "x", None, b"raw", b""], "tuple": (1, (2, 3))},
        "set": {1, 2, 3},
        "frozenset": frozenset({"a"}),
        "python_complex": 1 - 1j,
        "csc": scipy.sparse.csc_matrix(rng.normal(size=(4, 6)) * (rng.random((4, 6)) > 0.5)),
        "csr": scipy.sparse.csr_matrix(np.eye(3)),
        "text": "Ünïcode",
    }


# ----------------------------------------------------------------------------------------------
# what must load


def test_dump_legacy_pickle_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "tree.pkl"
    dump_legacy_pickle(sample_tree(), path)
    assert_tree_equal(load_pickle(path), sample_tree())
    assert_tree_equal(plain_load(path), sample_tree())
    assert [p.name for p in tmp_path.iterdir()] == ["tree.pkl"]  # no temporary file left


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_plain_pickles_of_this_python_load(tmp_path: Path, protocol: int) -> None:
    path = write(tmp_path, pickle.dumps(sample_tree(), protocol=protocol))
    assert_tree_equal(load_pickle(path), sample_tree())


# Hand-written in the form Python 2.7 with numpy 1.x gives {'v': arange(3.), 's': float64(2),
# 'name': 'up3d', 'ok': True} at protocol 0: byte strings as S'...' with Python 2 escapes, I00/I01
# for booleans, the dtype reused from the memo (g12).
PYTHON2_PROTOCOL0 = (
    b"(dp0\nS'v'\np1\ncnumpy.core.multiarray\n_reconstruct\np2\n(cnumpy\nndarray\np3\n(I0\n"
    b"tp4\nS'b'\np5\ntp6\nRp7\n(I1\n(I3\ntp8\ncnumpy\ndtype\np9\n(S'f8'\np10\nI0\nI1\ntp11\n"
    b"Rp12\n(I3\nS'<'\np13\nNNNI-1\nI-1\nI0\ntp14\nbI00\n"
    b"S'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\xf0?"
    b"\\x00\\x00\\x00\\x00\\x00\\x00\\x00@'\np15\ntp16\nbsS's'\np17\n"
    b"cnumpy.core.multiarray\nscalar\np18\n(g12\nS'\\x00\\x00\\x00\\x00\\x00\\x00\\x00@'\n"
    b"p19\ntp20\nRp21\nsS'name'\np22\nS'up3d'\np23\nsS'ok'\np24\nI01\ns."
)


def test_python2_protocol0_file_loads(tmp_path: Path) -> None:
    loaded = load_pickle(write(tmp_path, PYTHON2_PROTOCOL0))
    expected = {"v": np.arange(3.0), "s": np.float64(2.0), "name": "up3d", "ok": True}
    assert_tree_equal(loaded, expected)


def test_legacy_global_names_in_bytes(tmp_path: Path) -> None:
    data = dumps_legacy_pickle(sample_tree())
    assert data[:2] == b"\x80\x02"  # protocol 2
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data
    assert b"cnumpy.core.multiarray\nscalar\n" in data
    assert b"numpy._core" not in data


def _legacy_scipy_module_exists() -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.util.find_spec("scipy.sparse.csc") is not None


def test_scipy_sparse_written_under_legacy_name_while_scipy_has_it() -> None:
    data = dumps_legacy_pickle(
        [scipy.sparse.csc_matrix(np.eye(2)), scipy.sparse.csr_matrix((1, 1))]
    )
    if _legacy_scipy_module_exists():
        assert b"cscipy.sparse.csc\ncsc_matrix\n" in data
        assert b"cscipy.sparse.csr\ncsr_matrix\n" in data
        assert b"scipy.sparse._cs" not in data
    else:
        assert b"cscipy.sparse._csc\ncsc_matrix\n" in data


def test_legacy_numpy_names_load_without_numpy_warning(tmp_path: Path) -> None:
    path = tmp_path / "a.pkl"
    dump_legacy_pickle({"a": np.arange(3), "s": np.float32(1)}, path)
    with open(path, "rb") as file, warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_tree_equal(
            pickle.load(file, encoding="latin1"), {"a": np.arange(3), "s": np.float32(1)}
        )


def test_smpl_like_model_dict(tmp_path: Path) -> None:
    """The mannequin writer's case: arrays, a csc J_regressor and strings, read as smplx does."""
    rng = np.random.default_rng(1)
    model = {
        "v_template": rng.normal(size=(30, 3)),
        "shapedirs": rng.normal(size=(30, 3, 10)),
        "posedirs": rng.normal(size=(30, 3, 207)),
        "J_regressor": scipy.sparse.csc_matrix(rng.random((24, 30)) * (rng.random((24, 30)) > 0.8)),
        "weights": rng.random((30, 24)),
        "kintree_table": np.stack([np.arange(24) - 1, np.arange(24)]),
        "f": rng.integers(0, 30, size=(10, 3)).astype(np.uint32),
        "bs_type": "lrotmin",
        "bs_style": "lbs",
    }
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    dump_legacy_pickle(model, path)
    assert_tree_equal(plain_load(path), model)
    assert_tree_equal(load_pickle(path), model)
    assert isinstance(load_pickle(path)["J_regressor"], scipy.sparse.csc_matrix)


# ----------------------------------------------------------------------------------------------
# what must be refused, unexecuted


def _global_call(module: str, name: str, argument: str) -> bytes:
    """A protocol-0 pickle that calls ``module.name(argument)``."""
    return f"c{module}\n{name}\n(V{argument}\ntR.".encode()


def _dangerous_payloads(target: Path) -> list[tuple[str, bytes]]:
    shell = f"touch {target}"
    python = f"open({str(target)!r}, 'w').close()"
    return [
        ("os.system", _global_call("os", "system", shell)),
        ("posix.system", _global_call("posix", "system", shell)),
        ("builtins.eval", _global_call("builtins", "eval", python)),
        ("__builtin__.eval", _global_call("__builtin__", "eval", python)),
        ("builtins.exec", _global_call("builtins", "exec", python)),
        (
            "numpy.testing._private.utils.runstring",
            _global_call("numpy.testing._private.utils", "runstring", python),
        ),
        ("builtins.getattr", _global_call("builtins", "getattr", "x")),
        (
            "subprocess.Popen",
            f"csubprocess\nPopen\n((lp0\nVtouch\naV{target}\natR.".encode(),
        ),
    ]


DANGEROUS_GLOBALS = [name for name, _ in _dangerous_payloads(Path("unused"))]


@pytest.mark.parametrize("global_name", DANGEROUS_GLOBALS)
def test_dangerous_globals_refused_unexecuted(tmp_path: Path, global_name: str) -> None:
    target = tmp_path / "pwned"
    payload = dict(_dangerous_payloads(target))[global_name]
    path = write(tmp_path, payload, "evil.pkl")
    with pytest.raises(UnsafePickleError) as error:
        load_pickle(path, allow_chumpy=True)
    assert f"'{global_name}'" in str(error.value)
    assert str(path) in str(error.value) and "safety" in str(error.value)
    assert not target.exists()


def test_payload_is_live_under_plain_pickle(tmp_path: Path) -> None:
    """Control: the same bytes do run their code under the stdlib unpickler."""
    target = tmp_path / "pwned"
    pickle.loads(_global_call("builtins", "eval", f"open({str(target)!r}, 'w').close()"))
    assert target.exists()


class _Reduces:
    def __init__(self, function: Any, argument: str) -> None:
        self.function, self.argument = function, argument

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return self.function, (self.argument,)


@pytest.mark.parametrize("protocol", [0, 2, 5])
@pytest.mark.parametrize("function", [print, exec])
def test_reduce_payloads_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], protocol: int, function: Any
) -> None:
    target = tmp_path / "pwned"
    code = "print('pwned')" if function is print else f"open({str(target)!r}, 'w').close()"
    payload = {"v_template": np.zeros((2, 3)), "hidden": [_Reduces(function, code)]}
    path = write(tmp_path, pickle.dumps(payload, protocol=protocol))
    module = "__builtin__" if protocol < 3 else "builtins"
    with pytest.raises(UnsafePickleError, match=rf"'{module}\.{function.__name__}'"):
        load_pickle(path)
    assert capsys.readouterr().out == ""
    assert not target.exists()


def test_refused_before_import(tmp_path: Path) -> None:
    path = write(tmp_path, _global_call("no_such_module_anywhere", "thing", "x"))
    with pytest.raises(UnsafePickleError, match=r"'no_such_module_anywhere\.thing'"):
        load_pickle(path)


def test_codecs_encode_only_latin1(tmp_path: Path) -> None:
    path = write(tmp_path, b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(UnsafePickleError, match="rot13"):
        load_pickle(path)


# ----------------------------------------------------------------------------------------------
# chumpy


@pytest.mark.parametrize("protocol", [0, 2])
def test_chumpy_refused_unless_allowed(tmp_path: Path, protocol: int) -> None:
    x = np.arange(6.0).reshape(2, 3)
    path = write(tmp_path, pickle_with_fake_chumpy({"shapedirs": FakeCh(x=x)}, protocol))
    with pytest.raises(UnsafePickleError, match=r"'chumpy\.ch\.Ch'.*allow_chumpy"):
        load_pickle(path)
    loaded = load_pickle(path, allow_chumpy=True)
    assert isinstance(loaded["shapedirs"], ChumpyCh)
    assert_tree_equal(to_numpy_tree(loaded), {"shapedirs": x})
    assert not fake_chumpy_installed()


def test_chumpy_reordering_stand_ins(tmp_path: Path) -> None:
    base = np.arange(24.0).reshape(2, 3, 4)
    leaf = FakeCh(x=base)
    idxs = np.array([5, 0, 7, 7, 23, 1])
    tree = {
        "select": FakeSelect(a=leaf, idxs=idxs, preferred_shape=(2, 3)),
        "select_flat": FakeSelect(a=leaf, idxs=idxs),
        "transpose": FakeTranspose(a=leaf, axes=(2, 0, 1)),
        "transpose_default": FakeTranspose(a=leaf, axes=None),
        "reshape": [FakeReshape(a=leaf, newshape=(6, 4))],
        "nested": (FakeSelect(a=FakeTranspose(a=leaf, axes=None), idxs=np.array([1])),),
    }
    loaded = to_numpy_tree(
        load_pickle(write(tmp_path, pickle_with_fake_chumpy(tree)), allow_chumpy=True)
    )
    expected = {
        "select": base.ravel()[idxs].reshape(2, 3),
        "select_flat": base.ravel()[idxs],
        "transpose": np.transpose(base, (2, 0, 1)).copy(),
        "transpose_default": base.T.copy(),
        "reshape": [base.reshape(6, 4)],
        "nested": (base.T.ravel()[[1]],),
    }
    assert_tree_equal(loaded, expected)


def test_unsupported_chumpy_class_refused(tmp_path: Path) -> None:
    node = FakeAdd(a=FakeCh(x=np.ones(2)), b=FakeCh(x=np.ones(2)))
    path = write(tmp_path, pickle_with_fake_chumpy({"v_shaped": node}))
    with pytest.raises(UnsafePickleError, match=r"'chumpy\.ch_ops\.add'.*no stand-in"):
        load_pickle(path, allow_chumpy=True)


def test_chumpy_state_without_array_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, pickle_with_fake_chumpy(FakeCh(y=np.ones(2))))
    with pytest.raises(ValueError, match=r"chumpy\.ch\.Ch has no 'x'"):
        to_numpy_tree(load_pickle(path, allow_chumpy=True))


def test_to_numpy_tree_leaves_other_values() -> None:
    tree = {"a": [np.ones(2), ("s", 3)], "m": scipy.sparse.csc_matrix(np.eye(2))}
    assert_tree_equal(to_numpy_tree(tree), tree)
