"""Synthetic SURREAL in the release's own layout and formats (datasets.md 1.1-1.4, 10):
what `datamodules.surreal.SurrealReader` reads.

    surreal/cmu/<split>/run<r>/<seq>/<seq>_c%04d.mp4         320x240 H.264 (libx264, yuv420p,
                                                             30 fps) through PyAV
                                     <seq>_c%04d_info.mat    every key of datasets.md 1.2
                                     <seq>_c%04d_segm.mat    segm_1..segm_T (240, 320) uint8
                                     <seq>_c%04d_depth.mat   depth_1..depth_T float32, 1e10 bg

One clip = one person over T frames (one shape, gender, clothing, background, light and zrot
per clip, as in the release). The person is generated and rendered in the camera frame (the
suite's renderer, anatomically correct); the files then get SURREAL's conventions, written as
the exact inverses of what the reader undoes (`datamodules.surreal` module docstring), so real
and synthetic files share one correction:

* `joints3D` (world, file joint names) = `joints_to_world(camera joints)`: the fixed mirror
  camera of datasets.md 1.3 maps them back, and file joint j is the anatomical joint
  `SMPL_FLIP_PERMUTATION[j]` of the image; `joints2D` = round(K [R | t] joints3D), 0-based.
* `pose` (before zrot) = `pose_to_file(camera pose, zrot)`: with the official demo's world
  orientation R_x(90 deg) R_z(zrot) R(pose[0:3]) the world body is the mirror image of the
  rendered one (and, the mannequin being symmetric, poses exactly onto `joints3D`).
* `segm` = the rendered part labels with left and right swapped (`SEGM_FLIP`), as Blender's
  vertex groups label the mirrored body; `depth` = rendered planar depth, 1e10 background.
* World frame as in the real files: floor at y = 0 (the lower foot joint of frame 0), up = -y;
  the camera follows the pelvis at the first frame only (`camLoc` = pelvis + (camDist - 1, ., .)
  as in the golden file; `main_part1.py` recentres it the same way), so the pelvis projects to
  the image centre at frame 0 and the person moves freely afterwards.
* `camDist` ~ N(8, 1) m as in `main_part1.py`, clipped to [6.5, 11] so that the person stays
  in the 240-pixel-high frame (at 8 m a person is about 125 px tall); `zrot` ~ U(0, 2 pi);
  `light` = the release's spherical-harmonics distribution (the renderer's own Lambertian
  light is what the pixels show); `bg` / `cloth` cell strings name the procedural background
  and clothing (no real LSUN or texture files exist here); `stride` 50 / 30 / 70 for
  run0 / run1 / run2 (that mapping is **unverified**); `source` 'cmu'; gender 0 female, 1 male.
* Occluders on about 30 % of the clips (the maps still describe the whole body).

Speed: each clip has its own seed (drawn from the dataset's rng after the clip plan), and two
clips render at once on one torch thread each (`write`; the ci world writes in 36-55 s on 2
cores instead of 64 s rendering one clip at a time). Content is deterministic for the
rng up to the last bit of rasterized floats (depth), which BLAS kernels may vary between runs.

Names: train sequences `01_01`, `01_02`, ... (CMU subjects 1..), two clips each, runs in turn;
val/test sequences `101_01`, ... (other subjects, as the release splits by subject). Each val
clip is one (run, sequence)'s clip c0001 and is written into `test/` too (val is a subset of
test); the extra test clips are c0002 of the val sequences, then new sequences. Every named
split of the reader (train, val, test, val_bodynet) is non-empty in every size.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from body.joint_sets import SMPL_JOINTS
from datamodules.io import atomic_path, savemat
from datamodules.surreal import (
    BACKGROUND_DEPTH,
    CAMERA_ROTATION,
    IMAGE_SIZE,
    SEGM_FLIP,
    K,
    camera_translation,
    joints_to_world,
    pose_to_file,
    project,
)
from datamodules.synthetic.prior import sample_betas, sample_gender, sample_pose_sequence
from datamodules.synthetic.render import Frames, Person, SceneRenderer

COUNT_NAMES = ("train_clips", "val_clips", "extra_test_clips", "min_frames", "max_frames",
               "eval_frames")  # fmt: skip
# Clips per split (test = the val clips + extra_test_clips), train clip lengths min..max
# frames, val/test clip length. ci: ~1 500 train frames from 300 clips (distinct people matter
# more than frames for learnability); small: ~2 500; full: 100-frame clips.
SIZES: dict[str, dict[str, int]] = {
    name: dict(zip(COUNT_NAMES, values, strict=True))
    for name, values in {
        "tiny": (3, 2, 1, 4, 4, 4),
        "ci": (300, 100, 20, 4, 6, 4),
        "small": (416, 150, 30, 4, 8, 4),
        "full": (500, 173, 127, 100, 100, 100),
    }.items()
}
RUN_STRIDES = (50, 30, 70)  # `stride` field of run0, run1, run2 (unverified mapping)
FPS = 30
# x264 speed settings: 3x faster than the default preset on these short clips, same format.
VIDEO_OPTIONS = {"preset": "veryfast", "threads": "1"}
OCCLUDER_PROBABILITY = 0.3
WRITER_THREADS = 2
FILE_GENDERS = {"female": 0, "male": 1}
FEET = [SMPL_JOINTS.index(name) for name in ("left_foot", "right_foot")]


@dataclass(frozen=True)
class ClipSpec:
    """Where a clip goes: split folders (val clips also go to test), run, sequence, number."""

    splits: tuple[str, ...]
    run: int
    sequence: str
    number: int
    num_frames: int

    @property
    def name(self) -> str:
        return f"{self.sequence}_c{self.number:04d}"


@dataclass
class SyntheticClip:
    """A generated clip: the camera-frame ground truth (`person`, `frames`) and the per-clip
    values the files carry (`zrot` radians, `cam_dist` and `cam_loc` (3,) metres, float32)."""

    spec: ClipSpec
    person: Person
    frames: Frames
    zrot: float
    cam_dist: float
    cam_loc: np.ndarray
    light: np.ndarray  # (9,) spherical-harmonics coefficients
    cloth: str
    background: str


def plan_clips(rng: np.random.Generator, counts: dict[str, int]) -> list[ClipSpec]:
    """Every clip of the world, in writing order (module docstring: names)."""
    specs = []
    for i in range(counts["train_clips"]):
        frames = int(rng.integers(counts["min_frames"], counts["max_frames"] + 1))
        seq = i // 2
        specs.append(ClipSpec(("train",), seq % 3, _train_name(seq), i % 2 + 1, frames))
    num_val, frames = counts["val_clips"], counts["eval_frames"]
    for j in range(num_val):
        specs.append(ClipSpec(("val", "test"), j % 3, _test_name(j), 1, frames))
    for k in range(counts["extra_test_clips"]):  # c0002 of the val sequences, then new ones
        number = 2 if k < num_val else 1
        specs.append(ClipSpec(("test",), k % 3, _test_name(k), number, frames))
    return specs


def _train_name(index: int) -> str:
    return f"{1 + index // 3:02d}_{1 + index % 3:02d}"


def _test_name(index: int) -> str:
    return f"{101 + index // 3}_{1 + index % 3:02d}"


def generate(
    renderer: SceneRenderer, rng: np.random.Generator, counts: dict[str, int]
) -> Iterator[SyntheticClip]:
    """Generate the world's clips in writing order (what `write` writes; tests re-run it)."""
    for spec, seed in _plan_with_seeds(rng, counts):
        yield generate_clip(renderer, np.random.default_rng(seed), spec)


def _plan_with_seeds(
    rng: np.random.Generator, counts: dict[str, int]
) -> list[tuple[ClipSpec, int]]:
    """Every clip with its own seed, so a clip's content does not depend on the order in
    which clips are rendered."""
    specs = plan_clips(rng, counts)
    seeds = rng.integers(0, 2**63, size=len(specs))
    return [(spec, int(seed)) for spec, seed in zip(specs, seeds, strict=True)]


def generate_clip(
    renderer: SceneRenderer, rng: np.random.Generator, spec: ClipSpec
) -> SyntheticClip:
    """One person over `spec.num_frames` frames, rendered in the camera frame."""
    frames = spec.num_frames
    gender = sample_gender(rng, ("female", "male"))
    person = Person(
        sample_pose_sequence(rng, frames),
        sample_betas(rng),
        np.zeros((frames, 3)),
        gender,
        renderer.random_colors(rng),
    )
    cam_dist = float(np.float32(np.clip(rng.normal(8.0, 1.0), 6.5, 11.0)))
    start = np.array([rng.normal(0, 0.02), rng.normal(0, 0.02), cam_dist - 1.0])
    velocity = rng.uniform(-0.03, 0.03, size=3) * np.array([1.0, 0.2, 1.0])  # metres per frame
    pelvis = start + np.arange(frames)[:, None] * velocity
    person.transl = pelvis - _rest_pelvis(renderer, person)
    occluders = int(rng.uniform() < OCCLUDER_PROBABILITY)
    rendered = renderer.render([person], K, IMAGE_SIZE, rng, occluders=occluders)
    light = 0.7 * (2 * rng.uniform(size=9) - 1)
    light[0], light[1] = 0.5 + 0.9 * rng.uniform(), -0.7 * rng.uniform()
    return SyntheticClip(
        spec=spec,
        person=person,
        frames=rendered,
        zrot=float(np.float32(rng.uniform(0.0, 2 * np.pi))),
        cam_dist=cam_dist,
        cam_loc=_camera_location(rendered.posed[0].joints[0], rng),
        light=light,
        cloth=f"textures/{gender}/synthetic_{gender}_{rng.integers(10000):04d}.jpg",
        background=f"synthetic/backgrounds/{spec.splits[0]}/bg_{rng.integers(10**6):06d}.png",
    )


def _rest_pelvis(renderer: SceneRenderer, person: Person) -> np.ndarray:
    """(3,) the pelvis of `person` with zero translation: SMPL rotates about the rest root
    joint J0(betas), so it does not depend on the pose (cheaper than `root_offset`)."""
    model = renderer.models[person.gender]
    betas = torch.as_tensor(person.betas[None], dtype=model.smpl.v_template.dtype)
    with torch.no_grad():
        return model.rest_root_joint(betas)[0].double().numpy()


def _camera_location(joints: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(3,) float32 camLoc for frame-0 camera-frame joints (24, 3): the pelvis at a random
    world (x, z) within 2 m of the origin, the lower foot joint on the floor y = 0."""
    origin = rng.uniform(-2.0, 2.0, size=2)
    pelvis, feet = joints[0], joints[FEET]
    # world = R x_cam + camLoc with R = CAMERA_ROTATION (symmetric, its own inverse)
    cam_loc = np.array([origin[0] + pelvis[2], -feet[:, 1].max(), origin[1] + pelvis[0]])
    return cam_loc.astype(np.float32)


def file_joints2d(joints3d_world: np.ndarray, cam_loc: np.ndarray) -> np.ndarray:
    """(..., 24, 2) `joints2D` as the release computes them: round(K [R | t] X), file names."""
    camera = np.asarray(joints3d_world, np.float64) @ CAMERA_ROTATION.T
    return np.round(project(camera + camera_translation(cam_loc)))


def info_fields(clip: SyntheticClip) -> dict[str, object]:
    """The `_info.mat` content of a clip, every key of datasets.md 1.2 with its dtype/shape."""
    frames, person = clip.spec.num_frames, clip.person
    joints3d = joints_to_world(clip.frames.posed[0].joints, clip.cam_loc).astype(np.float32)
    joints2d = file_joints2d(joints3d, clip.cam_loc).astype(np.float32)  # (T, 24, 2)
    pose = pose_to_file(person.pose, np.full(frames, clip.zrot)).astype(np.float32)
    strings = lambda text: np.array([[text] * frames], dtype=object)  # (1, T) cell of strings
    return {
        "joints2D": np.ascontiguousarray(np.transpose(joints2d, (2, 1, 0))),
        "joints3D": np.ascontiguousarray(np.transpose(joints3d, (2, 1, 0))),
        "pose": np.ascontiguousarray(pose.T),
        "shape": np.tile(person.betas.astype(np.float32)[:, None], (1, frames)),
        "zrot": np.full((frames, 1), clip.zrot, dtype=np.float32),
        "camLoc": clip.cam_loc.reshape(3, 1).astype(np.float32),
        "camDist": np.array([[clip.cam_dist]], dtype=np.float32),
        "gender": np.full((frames, 1), FILE_GENDERS[person.gender], dtype=np.uint8),
        "light": np.tile(clip.light.astype(np.float32)[:, None], (1, frames)),
        "bg": strings(clip.background),
        "cloth": strings(clip.cloth),
        "sequence": clip.spec.name,
        "clipNo": np.array([[clip.spec.number]], dtype=np.uint8),
        "stride": np.array([[RUN_STRIDES[clip.spec.run]]], dtype=np.uint8),
        "source": "cmu",
    }


def write_video(path: Path, images: np.ndarray) -> None:
    """(T, H, W, 3) uint8 RGB -> H.264 mp4 (libx264, yuv420p, 30 fps), atomically."""
    with atomic_path(path) as tmp, av.open(str(tmp), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS, options=VIDEO_OPTIONS)
        stream.height, stream.width = images.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for image in images:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))


def write_clip(dataset_dir: Path, clip: SyntheticClip) -> None:
    """Write a clip's four files into each of its split folders."""
    spec, frames = clip.spec, clip.frames
    folders = [
        dataset_dir / "cmu" / split / f"run{spec.run}" / spec.sequence for split in spec.splits
    ]
    first = lambda suffix: folders[0] / f"{spec.name}{suffix}"
    write_video(first(".mp4"), frames.images)
    savemat(first("_info.mat"), info_fields(clip))
    segm = SEGM_FLIP[frames.part_segm]
    savemat(first("_segm.mat"), {f"segm_{t + 1}": segm[t] for t in range(spec.num_frames)})
    depth = np.where(np.isfinite(frames.depth), frames.depth, BACKGROUND_DEPTH).astype(np.float32)
    savemat(first("_depth.mat"), {f"depth_{t + 1}": depth[t] for t in range(spec.num_frames)})
    for folder in folders[1:]:  # a val clip is also a test clip: same files
        for suffix in (".mp4", "_info.mat", "_segm.mat", "_depth.mat"):
            with atomic_path(folder / first(suffix).name) as tmp:
                shutil.copyfile(first(suffix), tmp)


def write(
    dataset_dir: Path,
    renderer: SceneRenderer,
    rng: np.random.Generator,
    counts: dict[str, int],
    progress: Callable[[int], object],
) -> dict[str, int]:
    """Write the world (module docstring); return the number of records per reader split.

    Two clips render at once, each on one torch thread (the renderer's small per-clip
    operations use two cores better this way than with torch's own intra-op threads)."""
    written = {"train": 0, "val": 0, "test": 0, "val_bodynet": 0}

    def render_and_write(job: tuple[ClipSpec, int]) -> ClipSpec:
        spec, seed = job
        write_clip(Path(dataset_dir), generate_clip(renderer, np.random.default_rng(seed), spec))
        return spec

    with one_torch_thread(), ThreadPoolExecutor(max_workers=WRITER_THREADS) as pool:
        for spec in pool.map(render_and_write, _plan_with_seeds(rng, counts)):
            progress(spec.num_frames)
            for split in spec.splits:
                written[split] += spec.num_frames
            written["val_bodynet"] += "val" in spec.splits
    return written


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, as `write` renders: the rasterizer's float results
    (depth) depend on the thread count in the last bit, so re-generating the ground truth of a
    written world (tests) must use the same setting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
