"""PARE's occlusion sensitivity analysis and the attention figure (`experiments.occlusion`,
`experiments.figures`): the occluder grid, the occluded batch, the error maps' alignment with
the image (a stub whose one joint reacts to one image region), and every output file of a real
(untrained) pare_tiny model on a tiny synthetic 3DPW split."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch import Tensor, nn

from body.joint_sets import canonical_indices
from experiments.config import load_experiment, resolve
from experiments.figures import attention_cell_size, attention_figure
from experiments.occlusion import (
    JSON_NAME,
    MAP_CELL_SIZE,
    OCCLUDER_VALUE,
    analyse,
    bar_chart,
    centred_joint_errors,
    load_per_joint,
    occlude,
    occluder_centres,
    occluder_positions,
    position_maps_to_pixels,
    run_occlusion_analysis,
)
from lightning_modules.common.prediction import Prediction

NUM_CANONICAL = 101  # size of the canonical keypoint superset
SMPL_24 = canonical_indices("smpl_24")


def read_png(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, f"{path} is not a readable PNG"
    return image


# -------------------------------------------------------------------------------------------
# occluder grid and occluded batch


def test_paper_grid_has_576_positions_covering_the_crop():
    positions = occluder_positions(224, 40, 8)
    assert positions.shape == (576, 2)  # (224 - 40) / 8 + 1 = 24 per side
    assert positions[0].tolist() == [0, 0] and positions[1].tolist() == [8, 0]  # x varies fastest
    assert positions[24].tolist() == [0, 8] and positions[-1].tolist() == [184, 184]
    covered = np.zeros((224, 224), bool)
    for x0, y0 in positions:
        covered[y0 : y0 + 40, x0 : x0 + 40] = True
    assert covered.all()
    assert occluder_centres(224, 40, 8)[[0, -1]].tolist() == [19.5, 203.5]


def test_small_grid_by_hand():
    assert occluder_positions(10, 4, 3).tolist() == [
        [0, 0],
        [3, 0],
        [6, 0],
        [0, 3],
        [3, 3],
        [6, 3],
        [0, 6],
        [3, 6],
        [6, 6],
    ]
    # Every occluder stays whole: an 11-pixel crop still has 3 per side, the last column free.
    assert occluder_positions(11, 4, 3)[:, 0].max() == 6
    assert occluder_positions(8, 8, 5).tolist() == [[0, 0]]
    with pytest.raises(ValueError, match="patch"):
        occluder_positions(8, 9, 1)


def test_occlude_fills_exactly_the_patch():
    image = torch.randn(3, 12, 12)
    original = image.clone()
    positions = np.array([[0, 0], [5, 2], [8, 8]])
    variants = occlude(image, positions, 4)
    assert variants.shape == (3, 3, 12, 12) and torch.equal(image, original)
    for variant, (x0, y0) in zip(variants, positions, strict=True):
        inside = torch.zeros(12, 12, dtype=torch.bool)
        inside[y0 : y0 + 4, x0 : x0 + 4] = True
        assert (variant[:, inside] == OCCLUDER_VALUE).all()
        assert torch.equal(variant[:, ~inside], image[:, ~inside])
    per_channel = occlude(image, positions[1:2], 4, torch.tensor([0.1, 0.2, 0.3]))[0]
    assert per_channel[:, 3, 6].tolist() == pytest.approx([0.1, 0.2, 0.3])


def test_centred_joint_errors_against_numpy():
    generator = torch.Generator().manual_seed(0)
    predicted = torch.randn(5, 6, 3, generator=generator)
    truth = torch.randn(6, 3, generator=generator)
    visible = torch.tensor([True, True, False, True, True, False])
    errors = centred_joint_errors(predicted, truth, visible).numpy()
    keep = visible.numpy()
    pred = predicted.double().numpy()[:, keep]
    target = truth.double().numpy()[keep]
    pred = pred - pred.mean(axis=1, keepdims=True)
    target = target - target.mean(axis=0)
    np.testing.assert_allclose(errors[:, keep], 1000 * np.linalg.norm(pred - target, axis=-1))
    assert np.isnan(errors[:, ~keep]).all()


# -------------------------------------------------------------------------------------------
# alignment: a stub whose joint moves when one region of the image is grey

SIZE, PATCH, STRIDE = 32, 8, 4
REGION = (20, 4)  # top-left (x, y) of an 8 x 8 region, on the occluder grid
MOVING = 5  # index within smpl_24 of the joint that reacts
SHIFT = 0.1  # metres along x when the whole region is grey
DEPTH = 2.0  # metres: the stub's mesh is a plane facing the camera


def plane_mesh(size: int, cells: int, K: Tensor) -> tuple[Tensor, Tensor]:
    """A (cells + 1)^2 vertex plane at DEPTH whose projection spans the crop."""
    pixels = torch.linspace(0.0, size - 1.0, cells + 1)
    v, u = torch.meshgrid(pixels, pixels, indexing="ij")
    x = (u - K[0, 2]) * DEPTH / K[0, 0]
    y = (v - K[1, 2]) * DEPTH / K[1, 1]
    vertices = torch.stack([x, y, torch.full_like(x, DEPTH)], dim=-1).reshape(-1, 3)
    index = torch.arange((cells + 1) ** 2).reshape(cells + 1, cells + 1)
    a, b = index[:-1, :-1].reshape(-1), index[:-1, 1:].reshape(-1)
    c, d = index[1:, :-1].reshape(-1), index[1:, 1:].reshape(-1)
    faces = torch.cat([torch.stack([a, c, b], 1), torch.stack([b, c, d], 1)])
    return vertices, faces


class BodyModelStub:
    """What `analyse` reads of a body model: availability, faces, and a template call."""

    def __init__(self, vertices: Tensor, faces: Tensor) -> None:
        self.canonical_available = torch.ones(NUM_CANONICAL, dtype=torch.bool)
        self.faces = faces
        self.vertices = vertices

    def __call__(self, pose: Tensor) -> SimpleNamespace:
        return SimpleNamespace(vertices=self.vertices[None])


class RegionSensitiveStub(nn.Module):
    """predict_step: the ground-truth joints, with smpl_24 joint MOVING shifted by SHIFT times
    the fraction of REGION that is grey; the mesh is a camera-facing plane over the crop."""

    def __init__(self, truth: Tensor) -> None:
        super().__init__()
        self.truth = truth  # (K, 3)
        self.K = torch.tensor([[32.0, 0, 15.5], [0, 32.0, 15.5], [0, 0, 1]])
        self.vertices, faces = plane_mesh(SIZE, 8, self.K)
        self.body_model = BodyModelStub(self.vertices, faces)

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def predict_step(self, batch: dict, batch_idx: int = 0, with_attention: bool = False):
        images = batch["image"]
        x0, y0 = REGION
        region = images[:, :, y0 : y0 + 8, x0 : x0 + 8]
        grey = (region == OCCLUDER_VALUE).all(dim=1).float().mean(dim=(1, 2))  # (N,)
        keypoints = self.truth.expand(images.shape[0], -1, -1).clone()
        keypoints[:, SMPL_24[MOVING], 0] += SHIFT * grey
        count = images.shape[0]
        return Prediction(
            keypoints3d=keypoints[:, None],
            K=self.K.expand(count, 3, 3),
            person_valid=torch.ones(count, 1, dtype=torch.bool),
            score=torch.ones(count, 1),
            vertices=self.vertices.expand(count, 1, -1, -1),
        )


@pytest.fixture(scope="module")
def stub_result():
    generator = torch.Generator().manual_seed(1)
    truth = torch.randn(NUM_CANONICAL, 3, generator=generator) * 0.3
    module = RegionSensitiveStub(truth)
    images = torch.randn(2, 3, SIZE, SIZE, generator=generator)
    keypoints = torch.cat([truth, torch.ones(NUM_CANONICAL, 1)], dim=1).expand(2, -1, -1)
    batch = {
        "image": images,
        "keypoints3d": keypoints,
        "has_keypoints3d": torch.ones(2, dtype=torch.bool),
    }
    return analyse(module, [batch], PATCH, STRIDE, progress=False), module


def test_joint_map_peaks_where_the_region_is_occluded(stub_result):
    result, _ = stub_result
    maps = result.joint_maps()  # (24, 7, 7)
    assert maps.shape == (24, 7, 7) and result.num_images == 2
    row, column = np.unravel_index(np.nanargmax(maps[MOVING]), maps[MOVING].shape)
    assert (column * STRIDE, row * STRIDE) == REGION  # not transposed, not shifted
    expected = 1000 * SHIFT * 23 / 24  # mm: the joint's shift less the centring's share of it
    assert maps[MOVING].max() == pytest.approx(expected)
    assert np.sort(maps[MOVING].ravel())[-2] < expected  # the peak is unique
    assert result.per_joint_unoccluded() == pytest.approx(np.zeros(24), abs=1e-9)
    assert result.mpjpe_unoccluded() == pytest.approx(0.0, abs=1e-9)
    # Aggregate: the mean over joints of each position's errors, here peaking at the region.
    assert result.aggregate_map()[1, 5] == pytest.approx(maps[:, 1, 5].mean())
    assert np.nanargmax(result.aggregate_map()) == np.nanargmax(maps[MOVING])
    pixels = position_maps_to_pixels(maps[MOVING : MOVING + 1], SIZE, PATCH, STRIDE)[0]
    y, x = np.unravel_index(np.nanargmax(pixels), pixels.shape)
    assert REGION[0] <= x < REGION[0] + PATCH and REGION[1] <= y < REGION[1] + PATCH
    assert np.isnan(pixels[0, 0]) and np.isfinite(pixels[SIZE // 2, SIZE // 2])


def test_vertex_sensitivity_peaks_on_the_vertex_over_the_region(stub_result):
    result, module = stub_result
    values = result.vertex_means()[MOVING]
    assert np.isfinite(values).all()  # every vertex of the plane is seen
    uv = (module.vertices[:, :2] / DEPTH) * 32.0 + 15.5
    x, y = uv[int(np.argmax(values))].tolist()
    assert REGION[0] <= x < REGION[0] + PATCH and REGION[1] <= y < REGION[1] + PATCH


# -------------------------------------------------------------------------------------------
# a real model on the tiny synthetic world


@pytest.fixture(scope="module")
def pw3d_crops(tmp_path_factory, body_models_root):
    from datamodules import base
    from datamodules.datasets import CropDataset
    from datamodules.synthetic.world import write_world

    root = tmp_path_factory.mktemp("occlusion_world")
    counts = {
        "train": 1,
        "validation": 1,
        "test": 1,
        "train_frames": 1,
        "validation_frames": 1,
        "test_frames": 2,
    }
    write_world(
        root,
        "tiny",
        ("pw3d",),
        seed=0,
        body_model_root=body_models_root,
        overrides={"pw3d": counts},
        progress=False,
    )
    options = base.ReaderOptions(
        body_models=base.BodyModels(body_models_root), render_part_labels=False
    )
    reader = base.reader_class("pw3d")(root, "test", options)
    return root, CropDataset(reader, 64)


@pytest.fixture(scope="module")
def pare_tiny(pw3d_crops, body_models_root):
    torch.manual_seed(0)
    cfg = resolve(
        load_experiment(
            "pare_tiny",
            [f"body_model.root={body_models_root}", "data.crop_size=64"],
            data_root=pw3d_crops[0],
        )
    )
    return instantiate(cfg.model, _convert_="all")


def test_pare_tiny_writes_every_output(pare_tiny, pw3d_crops, tmp_path):
    _, dataset = pw3d_crops
    path = run_occlusion_analysis(
        pare_tiny, dataset, tmp_path, patch=16, stride=16, limit=2, max_batch=10, progress=False
    )
    assert path == tmp_path / JSON_NAME
    numbers = json.loads(path.read_text())
    assert numbers["num_images"] == 2 and numbers["num_positions"] == 16
    assert len(numbers["positions_xy"]) == 16 and numbers["positions_xy"][-1] == [48, 48]
    assert np.isfinite(np.array(numbers["aggregate_map_mm"], dtype=float)).all()
    assert np.array(numbers["aggregate_map_mm"]).shape == (4, 4)
    joint_maps = np.array(list(numbers["joint_maps_mm"].values()), dtype=float)
    assert joint_maps.shape == (24, 4, 4) and np.isfinite(joint_maps).all()
    for key in ("occluded", "unoccluded"):
        per_joint = np.array(list(numbers[key]["per_joint_mm"].values()), dtype=float)
        assert per_joint.shape == (24,) and np.isfinite(per_joint).all()
        assert numbers[key]["mpjpe_mm"] == pytest.approx(per_joint.mean(), abs=0.01)
    vertex = np.array(numbers["vertex_sensitivity_mm"], dtype=float)  # None -> NaN: never seen
    assert vertex.shape == (6890,) and np.isfinite(vertex).sum() > 100
    assert (np.array(numbers["vertex_images"]) > 0).sum() == np.isfinite(vertex).sum()
    cell = 64 * int(np.ceil(MAP_CELL_SIZE / 64))
    for name in ("joint_heatmaps.png", "image_0_joints.png", "image_1_joints.png"):
        assert read_png(tmp_path / name).shape == (4 * cell, 6 * cell, 3)
    for name in ("aggregate.png", "vertex_sensitivity.png", "vertex_sensitivity_joints.png"):
        assert read_png(tmp_path / name).size > 0
    arrays = np.load(tmp_path / "occlusion_vertices.npz")
    assert arrays["joint_vertex_mm"].shape == (24, 6890)
    assert load_per_joint(path) == pytest.approx(numbers["occluded"]["per_joint_mm"])


def test_attention_figure_grid_size(pare_tiny, pw3d_crops, tmp_path):
    _, dataset = pw3d_crops
    image = dataset[0]["image"]
    with torch.inference_mode():
        prediction = pare_tiny.eval().predict_step({"image": image[None]}, with_attention=True)
    attention = prediction.extras["attention"][0, 0]  # (24, h, w)
    names = [f"joint {j}" for j in range(24)]
    path = attention_figure(image, attention, names, tmp_path / "attention.png")
    cell = attention_cell_size(64)
    assert cell == 128 and read_png(path).shape == (4 * cell, 6 * cell, 3)
    with pytest.raises(ValueError, match="attention"):
        attention_figure(image, attention[:3], names, tmp_path / "wrong.png")


def test_bar_chart_of_two_models(tmp_path):
    names = ["pelvis", "left_hip", "right_hip"]
    path = bar_chart(
        {
            "HMR-EFT": dict(zip(names, [90.0, 100.0, 110.0], strict=True)),
            "PARE": dict(zip(names, [80.0, 85.0, float("nan")], strict=True)),
        },
        tmp_path / "figures" / "bars.png",
    )
    image = read_png(path)
    assert image.shape[0] > 100 and image.shape[1] > 100
