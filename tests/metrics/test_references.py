"""Every metric against its independent NumPy reference on seeded batches of varied sizes, plus
the behaviour every metric shares: names, empty updates, NaN refusal, pickling."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch

from tests.metrics.cases import CASE_IDS, CASES, Case, run

REFERENCE_CASES = [case for case in CASES if case.reference is not None]


def assert_results_close(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert set(actual) == set(expected)
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[key]), key
        else:
            assert actual[key] == pytest.approx(value, rel=1e-6, abs=1e-6), key


@pytest.mark.parametrize("case", REFERENCE_CASES, ids=[c.id for c in REFERENCE_CASES])
def test_matches_the_reference(case: Case) -> None:
    batches = case.batches(np.random.default_rng(0))
    actual = run(case, batches)
    assert_results_close(actual, case.reference(batches))
    # The same batches in the reverse order: the order of updates does not matter.
    one_by_one = run(case, [batch for batch in batches[::-1]])
    assert_results_close(one_by_one, actual)


EMPTY_CASES = [case for case in CASES if case.empty is not None]


@pytest.mark.parametrize("case", EMPTY_CASES, ids=[c.id for c in EMPTY_CASES])
def test_empty_updates_change_nothing(case: Case) -> None:
    batches = case.batches(np.random.default_rng(1))
    with_empty = run(case, [case.empty, *batches, case.empty])
    assert_results_close(with_empty, run(case, batches))
    only_empty = run(case, [case.empty])  # no sample at all: NaN, never 0 or an exception
    assert all(math.isnan(value) for value in only_empty.values())


def first_tensor(value, wanted=lambda tensor: True, path=()):
    """(path, tensor) of the first non-empty tensor inside nested dicts and lists that satisfies
    ``wanted``; None when there is none."""
    if isinstance(value, torch.Tensor):
        return (path, value) if value.numel() and wanted(value) else None
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, item in items:
        found = first_tensor(item, wanted, (*path, key))
        if found is not None:
            return found
    return None


def first_float_tensor(value):
    return first_tensor(value, torch.Tensor.is_floating_point)


FLOAT_CASES = [case for case in CASES if first_float_tensor(case.batches(np.random.default_rng(2)))]
LABEL_CASES = [case for case in CASES if case not in FLOAT_CASES]


@pytest.mark.parametrize("case", FLOAT_CASES, ids=[c.id for c in FLOAT_CASES])
def test_nan_input_raises_naming_the_argument(case: Case) -> None:
    batch = case.batches(np.random.default_rng(2))[1]
    path, tensor = first_float_tensor(batch)
    tensor.view(-1)[0] = math.nan
    named = [p for p in path if isinstance(p, str)][-1]
    with pytest.raises(ValueError, match=rf"{named}(\[\d+\])? contains NaN"):
        case.make().update(**batch)


@pytest.mark.parametrize("case", LABEL_CASES, ids=[c.id for c in LABEL_CASES])
def test_floating_point_masks_and_labels_are_refused(case: Case) -> None:
    """Metrics on masks and labels take no floats, so no NaN can reach them either."""
    batch = case.batches(np.random.default_rng(2))[1]
    batch["target"] = batch["target"].float()
    with pytest.raises(
        ValueError, match=r"target must be an? (bool|integer) tensor, got torch.float32"
    ):
        case.make().update(**batch)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_a_wrong_shape_raises_naming_the_argument(case: Case) -> None:
    batch = case.batches(np.random.default_rng(5))[1]
    path, _ = first_tensor(batch)
    container = batch
    for key in path[:-1]:
        container = container[key]
    container[path[-1]] = container[path[-1]][..., None]  # one dimension too many
    named = [p for p in path if isinstance(p, str)][-1]
    with pytest.raises(ValueError, match=rf"{named}(\[\d+\])? must have shape"):
        case.make().update(**batch)


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_pickles_with_its_state(case: Case) -> None:
    batches = case.batches(np.random.default_rng(3))
    metric = case.make()
    for batch in batches[:2]:
        metric.update(**batch)
    restored = pickle.loads(pickle.dumps(metric))
    for batch in batches[2:]:
        restored.update(**batch)
    assert_results_close(restored.results(), run(case, batches))


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_reset_forgets_everything(case: Case) -> None:
    batches = case.batches(np.random.default_rng(4))
    metric = case.make()
    metric.update(**batches[0])
    metric.reset()
    for batch in batches[1:]:
        metric.update(**batch)
    assert_results_close(metric.results(), run(case, batches[1:]))
