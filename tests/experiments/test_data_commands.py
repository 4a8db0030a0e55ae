"""The data commands end to end on the tiny world of each dataset written so far: synth,
check-data, inspect-data (--json keys, --png), and their errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from experiments.cli import main

DATASETS = ("surreal", "up3d", "h36m", "pw3d", "coco", "panoptic", "jta", "mupots")
SPLITS = {"surreal": "val", "up3d": "test", "h36m": "p1", "pw3d": "test", "coco": "train2014",
          "panoptic": "zanfir", "jta": "test", "mupots": "test"}  # fmt: skip
JSON_KEYS = {
    "dataset",
    "split",
    "index",
    "sample_id",
    "image_path",
    "image_size",
    "K",
    "joint_set",
    "joint_names",
    "people",
    "keypoints2d",
    "keypoints3d",
    "smpl",
    "flags",
}


@pytest.fixture(scope="module")
def world(tmp_path_factory, body_models_root) -> Path:
    root = tmp_path_factory.mktemp("cli_world")
    status = main(
        [
            "synth",
            "--out",
            str(root),
            "--size",
            "tiny",
            "--datasets",
            ",".join(DATASETS),
            f"body_model.root={body_models_root}",
        ]
    )
    assert status == 0
    # JTA's records never decode video: its frames are prepared ahead.
    assert (
        main(["prepare", "jta", "--data-root", str(root), f"body_model.root={body_models_root}"])
        == 0
    )
    return root


def _run(capsys, *argv) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_check_data_passes_on_the_synthetic_world(world, body_models_root, capsys, dataset_id):
    status, out, _ = _run(
        capsys,
        "check-data",
        dataset_id,
        "--data-root",
        str(world),
        f"body_model.root={body_models_root}",
    )
    assert status == 0, out
    assert out.strip().endswith("ok")
    assert f"{dataset_id}/{SPLITS[dataset_id]}:" in out


@pytest.mark.parametrize("dataset_id", DATASETS)
def test_inspect_data_json_has_exactly_the_documented_keys(
    world, body_models_root, capsys, tmp_path, dataset_id
):
    png = tmp_path / f"{dataset_id}.png"
    status, out, _ = _run(
        capsys,
        "inspect-data",
        dataset_id,
        "--data-root",
        str(world),
        "--split",
        SPLITS[dataset_id],
        "--index",
        "0",
        "--json",
        "--png",
        str(png),
        f"body_model.root={body_models_root}",
    )
    assert status == 0
    description = json.loads(out[: out.rindex("}") + 1])
    assert set(description) == JSON_KEYS
    assert isinstance(description["people"], list) and description["people"]
    first = description["people"][0]
    assert description["keypoints2d"] == first["keypoints2d"]
    assert len(first["keypoints2d"]) == len(description["joint_names"])
    assert len(description["image_size"]) == 2
    assert png.is_file() and png.stat().st_size > 1000


def test_check_data_reports_problems_with_paths_and_fails(
    world, body_models_root, capsys, tmp_path
):
    broken = tmp_path / "broken"
    shutil.copytree(world / "h36m", broken / "h36m")
    shutil.copy(world / "SYNTHETIC.json", broken / "SYNTHETIC.json")
    (broken / "h36m" / "h36m_valid_protocol1.npz").write_bytes(b"not an npz")
    status, out, _ = _run(
        capsys,
        "check-data",
        "h36m",
        "--data-root",
        str(broken),
        "--split",
        "p1",
        f"body_model.root={body_models_root}",
    )
    assert status == 1
    assert "h36m_valid_protocol1.npz" in out


def test_a_missing_dataset_folder_names_the_path_and_the_layout(body_models_root, capsys, tmp_path):
    status, _, err = _run(
        capsys,
        "inspect-data",
        "pw3d",
        "--data-root",
        str(tmp_path),
        "--split",
        "test",
        f"body_model.root={body_models_root}",
    )
    assert status == 1
    assert str(tmp_path / "3dpw") in err and "expected layout" in err
