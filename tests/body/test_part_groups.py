"""BodyNet's part groupings against the lookup tables of datasets.md 1.5 (BodyNet's `segmIx`
and its 6-part table, indexed by SURREAL part id 1..24 = SMPL part order)."""

from __future__ import annotations

import pytest
import torch

from body.part_groups import class_names, group_parts, lookup_table

SEGM_IX = [2, 12, 9, 2, 13, 10, 2, 14, 11, 2, 14, 11, 2, 2, 2, 1, 6, 3, 7, 4, 8, 5, 8, 5]
SIX_PARTS = [2, 6, 5, 2, 6, 5, 2, 6, 5, 2, 6, 5, 2, 2, 2, 1, 4, 3, 4, 3, 4, 3, 4, 3]


@pytest.mark.parametrize(("grouping", "table"), [("bodynet_15", SEGM_IX), ("bodynet_7", SIX_PARTS)])
def test_groupings_equal_bodynets_tables(grouping: str, table: list[int]) -> None:
    assert lookup_table(grouping).tolist() == [0, *table]
    assert len(class_names(grouping)) == max(table) + 1


def test_group_parts_maps_labels_of_any_shape() -> None:
    labels = torch.tensor([[0, 16, 1], [24, 17, 0]])
    assert group_parts(labels, "bodynet_15").tolist() == [[0, 1, 2], [5, 6, 0]]
    assert group_parts(torch.zeros(0, dtype=torch.int64), "bodynet_7").shape == (0,)


def test_bad_labels_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 24\]"):
        group_parts(torch.tensor([25]), "bodynet_15")
    with pytest.raises(TypeError):
        group_parts(torch.tensor([1.0]), "bodynet_15")
    with pytest.raises(KeyError, match="bodynet_15"):
        group_parts(torch.tensor([1]), "bodynet_14")
