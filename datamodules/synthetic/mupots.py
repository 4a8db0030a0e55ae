"""Synthetic MuPoTS-3D test sequences in the release's layout (datasets.md 8.2,
`datamodules.mupots`).

    mupots/MultiPersonTestSet/TS<k>/img_%06d.jpg     0-based frames, JPEG (quality 90)
    mupots/MultiPersonTestSet/TS<k>/annot.mat        `annotations` cell (frames x people) of
                                                     structs annot2, annot3, univ_annot3,
                                                     isValidFrame (MATLAB v5, scipy)
    mupots/MultiPersonTestSet/TS<k>/occlusion.mat    `occlusion_labels` cell of 1 x 17 rows

No `MuPoTS-3D.json` (3DMPPE's derived file): the reader fits the intrinsics from the
annotations, as it must on the raw release. Sequences are written in the order of `SEQUENCES`
(TS1, TS6, TS2, TS7, ...), so even the tiny world has a 2048 x 2048 studio sequence (TS1..TS5)
and a 1920 x 1080 outdoor one (TS6..TS20), as the release has.

Scenes. A camera at 1.0 to 1.7 m height looks at a point 2.5 to 5 m ahead, about chest high
(world frame y down, floor y = 0; Panoptic's `look_at`), with f near 1500 px for the square
sequences and near 1400 px for the wide ones and the principal point within 20 px of the
centre. 2 or 3 people (MuPoTS's counts) from the prior stand and walk slowly close together
in front of it (`datamodules.synthetic.ground.walkers`: feet on the floor, never
interpenetrating), so they often overlap in the image. Fields, per person and frame:
- `annot2`: the pinhole projection of the `mupots_17` keypoints (float pixels, not rounded);
- `annot3`: the keypoints in the camera frame, millimetres;
- `univ_annot3`: `annot3` rescaled about the pelvis so the skeleton's total bone length (the
  `mupots_17` tree) equals the neutral mean body's (the release retargets to a universal
  subject; a uniform scale is the synthetic stand-in);
- `isValidFrame`: 0 when fewer than half the joints project inside the image, else 1;
- `occlusion_labels`: 1 where the joint's pixel shows another person (instance map).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from body.joint_sets import canonical_indices, root_index, skeleton
from datamodules.io import savemat, write_image
from datamodules.synthetic.ground import seen_from, walkers
from datamodules.synthetic.panoptic import look_at
from datamodules.synthetic.render import Frames, SceneRenderer, hidden_by_others

SEQUENCES = (1, 6, 2, 7, 3, 8, 4, 9, 5, *range(10, 21))
SIZES = {
    "tiny": {"sequences": 2, "frames": 2, "people": 3},
    "ci": {"sequences": 2, "frames": 3, "people": 3},
    "small": {"sequences": 4, "frames": 4, "people": 3},
    "full": {"sequences": 20, "frames": 30, "people": 3},
}
STUDIO_SIZE, OUTDOOR_SIZE = (2048, 2048), (1080, 1920)
GROUP_SPREAD_M = 0.45
MM_PER_M = 1000.0


@dataclass
class MuPoTSSequence:
    number: int
    K: np.ndarray
    frames: Frames  # rendered, camera frame
    keypoints2d: np.ndarray  # (P, T, 17, 2) px
    keypoints3d: np.ndarray  # (P, T, 17, 3) m
    universal3d: np.ndarray  # (P, T, 17, 3) m
    valid: np.ndarray  # (P, T) bool
    occluded: np.ndarray  # (P, T, 17) bool


def image_size(number: int) -> tuple[int, int]:
    return STUDIO_SIZE if number <= 5 else OUTDOOR_SIZE


def camera(
    rng: np.random.Generator, size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(K, R, t, distance) of a camera at person height looking at the people (module
    docstring); R, t world -> camera."""
    height, width = size
    f = rng.uniform(1480, 1520) if height == width else rng.uniform(1380, 1420)
    K = np.array([[f, 0.0, width / 2 + rng.uniform(-20, 20)],
                  [0.0, f, height / 2 + rng.uniform(-20, 20)], [0.0, 0.0, 1.0]])  # fmt: skip
    position = np.array([0.0, -rng.uniform(1.0, 1.7), 0.0])
    distance = float(rng.uniform(2.5, 5.0))
    R = look_at(position, np.array([0.0, -1.2, distance]))
    return K, R, -R @ position, distance


def bone_total(keypoints: np.ndarray) -> np.ndarray:
    """(...,) summed bone lengths of (..., 17, 3) `mupots_17` keypoints."""
    parents, traversal = skeleton("mupots_17")
    bones = keypoints[..., traversal, :] - keypoints[..., [parents[j] for j in traversal], :]
    return np.linalg.norm(bones, axis=-1).sum(axis=-1)


def universal(keypoints3d: np.ndarray, reference_length: float) -> np.ndarray:
    """(P, T, 17, 3) rescaled about the pelvis so each person's frame-0 total bone length is
    `reference_length` (module docstring)."""
    root = root_index("mupots_17")
    pelvis = keypoints3d[..., root : root + 1, :]
    scale = reference_length / bone_total(keypoints3d[:, 0])  # (P,)
    return pelvis + (keypoints3d - pelvis) * scale[:, None, None, None]


def inside_fraction(uv: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(...,) share of the (..., J, 2) pixels inside an image of `size` (H, W)."""
    height, width = size
    x, y = uv[..., 0], uv[..., 1]
    return ((x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)).mean(axis=-1)


def generate_sequence(
    renderer: SceneRenderer, rng: np.random.Generator, number: int, frames: int,
    max_people: int, reference_length: float,
) -> MuPoTSSequence:  # fmt: skip
    size = image_size(number)
    K, R, t, distance = camera(rng, size)
    centre = np.array([rng.uniform(-0.3, 0.3), distance])

    def start(rng: np.random.Generator) -> np.ndarray:
        return centre + rng.normal(0.0, GROUP_SPREAD_M, 2) * [1.0, 0.5]

    def step(rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-0.02, 0.02, 2)

    count = int(rng.integers(2, max_people + 1))
    placed = walkers(renderer, rng, count, frames, start, step)
    people = [seen_from(renderer, person, R, t) for person in placed]
    rendered = renderer.render(people, K, size, rng)
    indices = canonical_indices("mupots_17")
    points3d = np.stack([posed.keypoints[:, indices] for posed in rendered.posed])
    uv = np.stack([rendered.keypoints2d(k, K)[:, indices] for k in range(count)])
    occluded = np.stack([hidden_by_others(uv[k], rendered.instance_map, k) for k in range(count)])
    return MuPoTSSequence(
        number, K, rendered, uv, points3d, universal(points3d, reference_length),
        inside_fraction(uv, size) >= 0.5, occluded,
    )  # fmt: skip


def mean_body_length(renderer: SceneRenderer) -> float:
    """Total `mupots_17` bone length of the neutral mean body at rest (metres)."""
    with torch.no_grad():
        rest = renderer.models["neutral"](torch.zeros(1, 72))
    return float(bone_total(rest.keypoints[0, canonical_indices("mupots_17")].double().numpy()))


def generate(
    renderer: SceneRenderer, rng: np.random.Generator, counts: dict[str, int],
    progress: Callable[[int], object] = lambda n: None,
) -> Iterator[MuPoTSSequence]:  # fmt: skip
    reference = mean_body_length(renderer)
    for number in SEQUENCES[: counts["sequences"]]:
        yield generate_sequence(
            renderer, rng, number, counts["frames"], counts["people"], reference
        )
        progress(counts["frames"])


def annotation_cells(sequence: MuPoTSSequence) -> tuple[np.ndarray, np.ndarray]:
    """(`annotations`, `occlusion_labels`) object arrays (frames x people) for savemat."""
    people, frames = sequence.valid.shape
    annotations = np.empty((frames, people), dtype=object)
    labels = np.empty((frames, people), dtype=object)
    for p in range(people):
        for f in range(frames):
            annotations[f, p] = {
                "annot2": sequence.keypoints2d[p, f].T.copy(),
                "annot3": MM_PER_M * sequence.keypoints3d[p, f].T,
                "univ_annot3": MM_PER_M * sequence.universal3d[p, f].T,
                "isValidFrame": np.array([[float(sequence.valid[p, f])]]),
            }
            labels[f, p] = sequence.occluded[p, f].astype(np.float64)[None]
    return annotations, labels


def write(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object],
) -> dict[str, int]:
    """Write the world (module docstring); returns the number of records of each split."""
    images = 0
    for sequence in generate(renderer, rng, counts, progress):
        folder = Path(dataset_dir) / "MultiPersonTestSet" / f"TS{sequence.number}"
        for f, image in enumerate(sequence.frames.images):
            write_image(folder / f"img_{f:06d}.jpg", image)
            images += 1
        annotations, labels = annotation_cells(sequence)
        savemat(folder / "occlusion.mat", {"occlusion_labels": labels})
        savemat(folder / "annot.mat", {"annotations": annotations})  # last: marks it complete
    return {"test": images}
