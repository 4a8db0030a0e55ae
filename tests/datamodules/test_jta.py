"""JTA: the synthetic world in the native layout, the frame cache, the protocols, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from body.joint_sets import canonical_indices
from datamodules.base import ReaderOptions
from datamodules.cache import PrepareContext, steps_for
from datamodules.io import DataError, MissingDataError
from datamodules.jta import PROTOCOL_FRAMES, JTAReader, on_screen, read_annotation

JTA_22 = canonical_indices("jta_22")


@pytest.fixture(scope="module")
def world(tiny_world) -> Path:
    return tiny_world("jta")


@pytest.fixture(scope="module")
def truth(body_models_root) -> dict:
    from datamodules.synthetic import jta as writer
    from datamodules.synthetic.render import SceneRenderer
    from datamodules.synthetic.world import DATASET_INDEX

    rng = np.random.default_rng([0, DATASET_INDEX["jta"]])
    sequences = writer.generate(SceneRenderer(body_models_root), rng, writer.SIZES["tiny"])
    return {(s.split, s.number): s for s in sequences}


@pytest.fixture(scope="module")
def prepared(world, body_models_root, tmp_path_factory) -> ReaderOptions:
    cache = tmp_path_factory.mktemp("jta_cache")
    context = PrepareContext(world, cache, body_models_root, "mannequin", progress=False)
    JTAReader(world, "train")  # registers the reader's steps
    summary = steps_for("jta")["frames"](context)
    assert "3 videos (3 extracted, 0 cached)" in summary
    assert "0 extracted, 3 cached" in steps_for("jta")["frames"](context)
    return ReaderOptions(cache_root=cache)


def test_layout_and_numbering(world):
    names = sorted(str(p.relative_to(world / "jta")) for p in (world / "jta").rglob("seq_*"))
    assert names == ["annotations/test/seq_256.json", "annotations/train/seq_0.json",
                     "annotations/val/seq_257.json", "videos/test/seq_256.mp4",
                     "videos/train/seq_0.mp4", "videos/val/seq_257.mp4"]  # fmt: skip
    rows = json.loads((world / "jta" / "annotations" / "train" / "seq_0.json").read_text())
    assert all(len(row) == 10 for row in rows) and rows[0][0] == 1  # 1-based frames


def test_round_trip(world, truth, prepared):
    """Rows read back exactly; frames from the cache match the rendered ones; people without
    an on-screen joint are dropped; occlusion flags travel in meta."""
    for split in ("train", "test", "val"):
        reader = JTAReader(world, split, prepared)
        assert reader.check() == []
        for index in range(len(reader)):
            record = reader.record(index)
            number, frame = record.meta["sequence"], record.meta["frame"]
            sequence = truth[split, number]
            rows = sequence.rows[sequence.rows[:, 0] == frame]
            expected_ids = [int(i) for i in np.unique(rows[:, 1])
                            if on_screen(rows[rows[:, 1] == i][:, 3:5]).any()]  # fmt: skip
            assert [p.track_id for p in record.people] == expected_ids
            for person, occluded in zip(record.people, record.meta["occluded"], strict=True):
                mine = rows[rows[:, 1] == person.track_id]
                mine = mine[np.argsort(mine[:, 2])]
                np.testing.assert_allclose(person.keypoints2d[JTA_22, :2], mine[:, 3:5], atol=1e-9)
                np.testing.assert_allclose(person.keypoints3d[JTA_22, :3], mine[:, 5:8], atol=1e-9)
                np.testing.assert_array_equal(occluded, mine[:, 8] > 0)
            image = sequence.frames.images[frame - 1]
            assert np.abs(record.image.astype(int) - image).mean() < 6  # H.264 then JPEG
            np.testing.assert_allclose(record.K, [[1158, 0, 960], [0, 1158, 540], [0, 0, 1]])
    reader = JTAReader(world, "test", prepared)
    assert reader.items == [(256, 3)]  # frames 10, 20, ... do not exist: the last frame
    rows = truth["test", 256].rows
    rows = rows[rows[:, 0] == 3]
    off_screen = [
        i for i in np.unique(rows[:, 1]) if not on_screen(rows[rows[:, 1] == i][:, 3:5]).any()
    ]
    assert len(reader.record(0, load_image=False).people) + len(off_screen) == len(
        np.unique(rows[:, 1])
    )
    assert reader.dropped_people == len(off_screen) > 0


def test_projection_consistency(world, prepared):
    """The stored 2D joints are the pinhole projections of the 3D ones with the fixed K."""
    reader = JTAReader(world, "train", prepared)
    record = reader.record(0, load_image=False)
    for person in record.people:
        points = person.keypoints3d[JTA_22, :3]
        uv = points @ record.K.T
        np.testing.assert_allclose(person.keypoints2d[JTA_22, :2], uv[:, :2] / uv[:, 2:], atol=1e-6)


def test_occlusion_flags_occur(truth):
    rows = np.concatenate([s.rows for s in truth.values()])
    assert rows[:, 8].any() and rows[:, 9].any()
    assert len({int(i) for s in truth.values() for i in np.unique(s.rows[:, 1])}) >= 5


def test_records_never_decode_video(world, tmp_path):
    reader = JTAReader(world, "train", ReaderOptions(cache_root=tmp_path / "empty"))
    assert reader.record(0, load_image=False).people
    with pytest.raises(MissingDataError, match="prepare jta"):
        reader.record(0)


def test_real_root_protocol_and_bad_files(world, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(world / "jta", root / "jta")  # no SYNTHETIC.json: a real root
    reader = JTAReader(root, "train")
    assert reader.items == [(0, 1)]  # frame 6 and later are past the sequence's end
    assert any("protocol frame 6 is past the last frame" in p for p in reader.check())
    assert PROTOCOL_FRAMES["test"][:2] == (10, 20) and PROTOCOL_FRAMES["val"] == (123,)
    with pytest.raises(MissingDataError, match="annotations"):
        JTAReader(tmp_path / "elsewhere", "train")
    bad = root / "jta" / "annotations" / "train" / "seq_0.json"
    bad.write_text("[[1, 2, 3]]")
    with pytest.raises(DataError, match=r"seq_0\.json: rows must have 10 columns"):
        read_annotation(bad)
    bad.write_text("[[1, 0, 25, 0, 0, 1, 1, 1, 0, 0]]")
    with pytest.raises(DataError, match="joint types"):
        JTAReader(root, "train")
    bad.write_text("not json")
    with pytest.raises(DataError, match="cannot read JSON"):
        JTAReader(root, "train")
