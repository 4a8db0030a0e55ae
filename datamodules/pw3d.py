"""3DPW (von Marcard et al. ECCV 2018): sequence pickles and images -> scene records.

Layout (datasets.md 4.1), read untouched:

    3dpw/imageFiles/<sequence>/image_%05d.jpg          0-based; frame index = row of `poses`
    3dpw/sequenceFiles/{train,validation,test}/<sequence>.pkl

Sequence files (datasets.md 4.2) are Python-2 pickles, read through the suite's restricted
unpickler (`datamodules.io.read_pickle`); a file naming any other global is refused, naming it.
Per-actor fields are lists of length P in {1, 2}. Quirks of the real files, handled here:

- the genders live under `genders` (the official readme says `gender`) and the OpenPose
  detections under `poses2d` (the readme says `poses2D`); both spellings are accepted;
- `betas` are sliced to `[:10]` (defensively; the files hold 10);
- `poses2d` is (N, 3, 18): rows x, y, confidence, columns the COCO-18 joints; a frame where
  OpenPose found fewer than 6 joints is all zeros.
Only the fields a record needs are read and checked (shape, NaN/inf, naming file and field):
`genders`, `betas`, `poses`, `trans`, `jointPositions`, `poses2d`, `cam_poses`,
`cam_intrinsics`, `campose_valid`; the 60 Hz arrays, clothed shapes and textures are not used.

Named splits (frames of every split are sorted by sequence name, then frame index; splits over
several folders sort all their sequences by name together):

- `train`, `validation`, `test`: every image frame of that folder where at least one actor has
  `campose_valid`; the record's people are the valid actors.
- `test_spin`: SPIN/PARE's protocol (datasets.md 4.4): the test folder, `campose_valid` frames,
  gendered ground truth, no poses2d test. Its records are those of `test`; the name fixes the
  protocol for the benchmark registry whatever `test` may become.
- `occ` (3DPW-OCC, datasets.md 4.5): sequences whose name without the `_NN` suffix is one of
  `OCC_SEQUENCES`. Which folders and frames PARE used is **unverified**; chosen here: all three
  folders, `campose_valid` frames (as ROMP's OC mode, which draws these sequences from VIBE's
  train/val/test databases keeping the valid frames).
- `pc` (ROMP's 3DPW-PC): the frame ranges [start, end) of `PC_RANGES` over all three folders,
  `campose_valid` frames. On a synthetic root a range is intersected with the frames that
  exist; on a real root the frames are selected the same way, but a range reaching past a
  sequence's last frame (or a PC sequence that is absent) is a problem `check()` reports.
- `challenge`: the official evaluation's (frame, actor) pairs (datasets.md 4.3) on the test
  folder: `campose_valid` and `poses2d` not all zeros; people = the actors that pass.

Records. One per selected image frame: `K` = `cam_intrinsics` (the real camera, so
`has_camera`); the image size comes from the JPEG's header (decoded only with `load_image`);
sample ids are `<sequence>/image_%05d`; `meta` holds sequence, frame, folder, actors and
poses2d. Per person (track_id = actor index, in actor order):

- SMPL moved from the world to the camera frame with `cam_poses[f]` (X_cam = R X + t) by
  `geometry.world_to_camera_smpl`, with J0 = the rest-pose root joint of the actor's shape
  from the configured body model of the actor's gender (datasets.md 9.4b): the body models
  are required (`ReaderOptions.body_models`; records raise a ValueError without them, while
  the index and `len` work without);
- keypoints3d: `jointPositions[f]` (24 SMPL joints, world) moved to the camera frame, conf 1;
- keypoints2d: their projection with K (conf 1 where in front of the camera). The OpenPose
  detections are not mixed into the canonical keypoints: `meta["poses2d"]` keeps them, one
  (18, 3) array (x, y, confidence; COCO-18 order = `openpose_18`) per person;
- box: the tight box of the projected joints, widened by `BOX_MARGIN` of its larger side on
  every side (SMPL joints lie inside the body: head top, hands and feet reach past them);
- gender 'm' -> 1, 'f' -> 2.
Part labels, mask and instance map are rendered from the SMPL ground truth of the record's
people with `datamodules.part_labels.cached_part_maps` when `load_image` is True (the
`campose_valid = 0` actors, whose ground truth does not match the image, are not drawn). The
cache frame key is `<frame>_a<actor ids>`, because `challenge` can keep fewer actors of a
frame than the other splits. `python -m experiments prepare pw3d` renders them all ahead
(the step is registered in `datamodules.readers`).

The sequence table `REAL_SEQUENCES` (split, actors, image frames of the 60 sequences) comes
from a public table in a ROMP-based evaluation script; it agrees with the official
evaluator's 87 (sequence, actor) pairs and PARE's 24 test sequences, and is otherwise
**unverified**. `check()` compares a real root with it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from datamodules import io
from datamodules.base import DatasetReader, frames_in_ranges, register_reader
from datamodules.io import DataError, MissingDataError
from datamodules.part_labels import cached_part_maps
from datamodules.records import (
    PersonRecord,
    SceneRecord,
    canonical_keypoints,
    image_flags,
    joint_box,
    person_flags,
)
from geometry.cameras import project_points, world_to_camera_smpl

FOLDERS = ("train", "validation", "test")
# named split -> the sequenceFiles folders it reads
SPLIT_FOLDERS = {
    "train": ("train",),
    "validation": ("validation",),
    "test": ("test",),
    "test_spin": ("test",),
    "occ": FOLDERS,
    "pc": FOLDERS,
    "challenge": ("test",),
}
GENDERS = {"m": 1, "f": 2}
BOX_MARGIN = 0.1
NUM_BETAS = 10
LAYOUT = (
    "3dpw/imageFiles/<sequence>/image_%05d.jpg and "
    "3dpw/sequenceFiles/{train,validation,test}/<sequence>.pkl"
)

# 3DPW-OCC (Zhang et al. CVPR'20, as in PARE and ROMP): sequence names without `_NN`.
OCC_SEQUENCES = (
    "courtyard_backpack", "courtyard_basketball", "courtyard_bodyScannerMotions",
    "courtyard_box", "courtyard_golf", "courtyard_jacket", "courtyard_laceShoe",
    "downtown_stairs", "flat_guitar", "flat_packBags", "outdoors_climbing",
    "outdoors_crosscountry", "outdoors_fencing", "outdoors_freestyle", "outdoors_golf",
    "outdoors_parcours", "outdoors_slalom",
)  # fmt: skip
# ROMP's 3DPW-PC: sequence -> image-frame range [start, end).
PC_RANGES = {
    "courtyard_basketball_00": (200, 280),
    "courtyard_captureSelfies_00": (500, 600),
    "courtyard_dancing_00": (60, 370),
    "courtyard_dancing_01": (60, 270),
    "courtyard_hug_00": (100, 500),
    "downtown_bus_00": (1620, 1900),
}
# split -> sequence -> (actors, image frames); module docstring for the source.
REAL_SEQUENCES: dict[str, dict[str, tuple[int, int]]] = {
    "train": {
        "courtyard_arguing_00": (2, 765), "courtyard_backpack_00": (1, 1262),
        "courtyard_basketball_00": (2, 468), "courtyard_bodyScannerMotions_00": (1, 1257),
        "courtyard_box_00": (1, 1041), "courtyard_capoeira_00": (2, 435),
        "courtyard_captureSelfies_00": (2, 750), "courtyard_dancing_01": (2, 351),
        "courtyard_giveDirections_00": (2, 848), "courtyard_golf_00": (1, 604),
        "courtyard_goodNews_00": (2, 431), "courtyard_jacket_00": (1, 1245),
        "courtyard_laceShoe_00": (1, 931), "courtyard_rangeOfMotions_00": (2, 601),
        "courtyard_relaxOnBench_00": (1, 558), "courtyard_relaxOnBench_01": (1, 959),
        "courtyard_shakeHands_00": (2, 391), "courtyard_warmWelcome_00": (2, 599),
        "outdoors_climbing_00": (1, 1228), "outdoors_climbing_01": (1, 1062),
        "outdoors_climbing_02": (1, 916), "outdoors_freestyle_00": (1, 498),
        "outdoors_slalom_00": (1, 333), "outdoors_slalom_01": (1, 371),
    },
    "validation": {
        "courtyard_basketball_01": (1, 958), "courtyard_dancing_00": (2, 459),
        "courtyard_drinking_00": (2, 689), "courtyard_hug_00": (2, 614),
        "courtyard_jumpBench_01": (1, 619), "courtyard_rangeOfMotions_01": (2, 587),
        "downtown_walkDownhill_00": (1, 437), "outdoors_crosscountry_00": (1, 544),
        "outdoors_freestyle_01": (1, 273), "outdoors_golf_00": (1, 341),
        "outdoors_parcours_00": (1, 1661), "outdoors_parcours_01": (1, 1327),
    },
    "test": {
        "downtown_arguing_00": (2, 898), "downtown_bar_00": (2, 1403),
        "downtown_bus_00": (2, 2178), "downtown_cafe_00": (2, 1201),
        "downtown_car_00": (2, 1020), "downtown_crossStreets_00": (2, 588),
        "downtown_downstairs_00": (1, 857), "downtown_enterShop_00": (1, 1449),
        "downtown_rampAndStairs_00": (2, 984), "downtown_runForBus_00": (2, 731),
        "downtown_runForBus_01": (2, 783), "downtown_sitOnStairs_00": (2, 1337),
        "downtown_stairs_00": (1, 1240), "downtown_upstairs_00": (1, 845),
        "downtown_walkBridge_01": (1, 1372), "downtown_walkUphill_00": (1, 388),
        "downtown_walking_00": (2, 1387), "downtown_warmWelcome_00": (2, 589),
        "downtown_weeklyMarket_00": (1, 1193), "downtown_windowShopping_00": (1, 1948),
        "flat_guitar_01": (1, 748), "flat_packBags_00": (1, 1279),
        "office_phoneCall_00": (2, 880), "outdoors_fencing_01": (1, 942),
    },
}  # fmt: skip


def is_occ_sequence(name: str) -> bool:
    """Whether `name` (e.g. `downtown_stairs_00`) is a 3DPW-OCC sequence."""
    return re.sub(r"_\d+$", "", name) in OCC_SEQUENCES


@dataclass
class SequenceIndex:
    """What split selection needs of one sequence: valid (P, N) = `campose_valid`,
    detected (P, N) = `poses2d` not all zeros."""

    name: str
    folder: str
    valid: np.ndarray
    detected: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.valid.shape[1])


@dataclass
class SequenceFile(SequenceIndex):
    """One sequence file's fields that records use (world frame, metres, float64).

    genders (P,) codes; betas (P, 10); poses (P, N, 72); trans (P, N, 3);
    joints (P, N, 24, 3); poses2d (P, N, 18, 3) x, y, conf; cam_poses (N, 4, 4); K (3, 3).
    """

    path: Path
    genders: np.ndarray
    betas: np.ndarray
    poses: np.ndarray
    trans: np.ndarray
    joints: np.ndarray
    poses2d: np.ndarray
    cam_poses: np.ndarray
    K: np.ndarray


# ----------------------------------------------------------------------------------------------
# split selection (pure; the synthetic writer uses it to count its samples)


def select_frames(
    split: str, sequences: list[SequenceIndex]
) -> list[tuple[int, int, tuple[int, ...]]]:
    """(sequence position, frame, actors) of every record of `split`, in the documented order.

    `sequences` must be those of the split's folders, sorted by name. PC ranges are
    intersected with the frames that exist (only a real root's `check()` complains).
    """
    entries = []
    for position, sequence in enumerate(sequences):
        if split == "occ" and not is_occ_sequence(sequence.name):
            continue
        if split == "pc" and sequence.name not in PC_RANGES:
            continue
        frames: list[int] = list(range(sequence.num_frames))
        if split == "pc":
            frames = frames_in_ranges(frames, [PC_RANGES[sequence.name]])
        keep = sequence.valid & sequence.detected if split == "challenge" else sequence.valid
        for frame in frames:
            actors = tuple(int(a) for a in np.flatnonzero(keep[:, frame]))
            if actors:
                entries.append((position, frame, actors))
    return entries


# ----------------------------------------------------------------------------------------------
# reading sequence files


def _key(data: dict, names: tuple[str, ...], path: Path) -> str:
    """The first of `names` present in `data` (the real files' spelling first)."""
    for name in names:
        if name in data:
            return name
    raise DataError(f"{path}: field {names[0]!r} missing (has {sorted(map(str, data))})")


def _per_actor(data: dict, key: str, path: Path, shape: tuple) -> np.ndarray:
    """A per-actor list field stacked to (P, ...) float64 and checked (`io.field`)."""
    value = data.get(key)
    if not isinstance(value, (list, tuple)):
        raise DataError(f"{path}: field {key!r} must be a list per actor, got {type(value)}")
    try:
        stacked = np.stack([np.asarray(item, dtype=np.float64) for item in value])
    except (ValueError, TypeError) as error:
        raise DataError(f"{path}: field {key!r} cannot be stacked per actor ({error})") from error
    return io.field({key: stacked}, key, path, shape)


def _genders(data: dict, path: Path) -> np.ndarray:
    key = _key(data, ("genders", "gender"), path)
    codes = []
    for value in data[key]:
        text = value.decode("latin1") if isinstance(value, bytes) else str(value)
        if text not in GENDERS:
            raise DataError(f"{path}: field {key!r} holds {text!r}; expected 'm' or 'f'")
        codes.append(GENDERS[text])
    return np.asarray(codes, dtype=np.int64)


def read_sequence(path: Path, folder: str) -> SequenceFile:
    """Read and check one `sequenceFiles/<folder>/<sequence>.pkl` (module docstring)."""
    data = io.read_pickle(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a dict, got {type(data).__name__}")
    genders = _genders(data, path)
    actors = len(genders)
    poses = _per_actor(data, "poses", path, (actors, None, 72))
    frames = poses.shape[1]
    poses2d_key = _key(data, ("poses2d", "poses2D"), path)
    poses2d = _per_actor(data, poses2d_key, path, (actors, frames, 3, 18)).transpose(0, 1, 3, 2)
    valid = _per_actor(data, "campose_valid", path, (actors, frames)) > 0
    joints = _per_actor(data, "jointPositions", path, (actors, frames, 72))
    return SequenceFile(
        name=path.stem,
        folder=folder,
        valid=valid,
        detected=np.abs(poses2d).sum(axis=(2, 3)) > 0,
        path=path,
        genders=genders,
        betas=_per_actor(data, "betas", path, (actors, None))[:, :NUM_BETAS],
        poses=poses,
        trans=_per_actor(data, "trans", path, (actors, frames, 3)),
        joints=joints.reshape(actors, frames, 24, 3),
        poses2d=poses2d,
        cam_poses=io.field(data, "cam_poses", path, (frames, 4, 4)).astype(np.float64),
        K=io.field(data, "cam_intrinsics", path, (3, 3)).astype(np.float64),
    )


def image_size(path: Path, sample_id: str) -> tuple[int, int]:
    """(H, W) of an image from its header (no decoding)."""
    if not path.is_file():
        raise MissingDataError(f"{path} (sample {sample_id}): image file not found")
    try:
        with Image.open(path) as image:
            return image.height, image.width
    except (OSError, SyntaxError, ValueError) as error:
        raise DataError(f"{path} (sample {sample_id}): cannot read image ({error})") from error


# ----------------------------------------------------------------------------------------------
# camera-frame people


def move_joints(joints: np.ndarray, cam_pose: np.ndarray) -> np.ndarray:
    """(J, 3) world points -> camera frame with the (4, 4) extrinsics X_cam = R X + t."""
    return joints @ cam_pose[:3, :3].T + cam_pose[:3, 3]


def camera_smpl(
    pose: np.ndarray, trans: np.ndarray, root_joint: np.ndarray, cam_pose: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """World SMPL pose (..., 72) and trans (..., 3) -> camera-frame (pose (..., 72), transl
    (..., 3)) with extrinsics (..., 4, 4) and the rest root joint J0 (..., 3) (datasets.md 9.4b)."""
    as_tensor = lambda array: torch.as_tensor(np.asarray(array, dtype=np.float64))
    orient, transl = world_to_camera_smpl(
        as_tensor(pose[..., :3]),
        as_tensor(trans),
        as_tensor(root_joint),
        as_tensor(cam_pose[..., :3, :3]),
        as_tensor(cam_pose[..., :3, 3]),
    )
    camera_pose = np.array(pose, dtype=np.float64)
    camera_pose[..., :3] = orient.numpy()
    return camera_pose, transl.numpy()


# ----------------------------------------------------------------------------------------------
# the reader


@register_reader
class PW3DReader(DatasetReader):
    """3DPW sequence files and images (module docstring: splits, order, records)."""

    dataset_id = "pw3d"
    folder = "3dpw"
    joint_set = "smpl_24"
    splits = tuple(SPLIT_FOLDERS)
    layout = LAYOUT

    def _open(self) -> None:
        paths = []
        for folder in SPLIT_FOLDERS[self.split]:
            directory = self.root / "sequenceFiles" / folder
            if not directory.is_dir():
                raise io.missing(directory, f"3DPW sequenceFiles/{folder} folder", LAYOUT)
            paths += [(path, folder) for path in directory.glob("*.pkl")]
        paths.sort(key=lambda item: item[0].stem)
        self.sequences = [read_sequence(path, folder) for path, folder in paths]
        self._index = select_frames(self.split, list(self.sequences))
        self._root_joints: dict[tuple[int, int], np.ndarray] = {}

    def __len__(self) -> int:
        return len(self._index)

    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        self._check_index(index)
        position, frame, actors = self._index[index]
        sequence = self.sequences[position]
        sample_id = f"{sequence.name}/image_{frame:05d}"
        image_path = self.root / "imageFiles" / sequence.name / f"image_{frame:05d}.jpg"
        image = io.read_image(image_path, sample_id) if load_image else None
        size = image.shape[:2] if image is not None else image_size(image_path, sample_id)
        people = [self._person(position, frame, actor) for actor in actors]
        record = SceneRecord(
            dataset=self.dataset_id,
            split=self.split,
            index=index,
            sample_id=sample_id,
            image_path=image_path,
            image_size=(int(size[0]), int(size[1])),
            K=sequence.K.copy(),
            joint_set=self.joint_set,
            people=people,
            flags=image_flags(
                has_camera=True, has_part_segm=True, has_mask=True, has_instance_map=True
            ),
            image=image,
            meta=self._meta(sequence, frame, actors),
        )
        if load_image and self.options.render_part_labels:
            self._add_maps(record, sequence, frame, actors)
        return record

    def _meta(self, sequence: SequenceFile, frame: int, actors: tuple[int, ...]) -> dict[str, Any]:
        return {
            "sequence": sequence.name,
            "frame": frame,
            "folder": sequence.folder,
            "actors": list(actors),
            "poses2d": [sequence.poses2d[actor, frame].copy() for actor in actors],
        }

    def _person(self, position: int, frame: int, actor: int) -> PersonRecord:
        sequence = self.sequences[position]
        cam_pose = sequence.cam_poses[frame]
        pose, transl = camera_smpl(
            sequence.poses[actor, frame],
            sequence.trans[actor, frame],
            self._root_joint(position, actor),
            cam_pose,
        )
        joints = move_joints(sequence.joints[actor, frame], cam_pose)
        pixels = project_points(torch.as_tensor(joints), torch.as_tensor(sequence.K)).numpy()
        in_front = (joints[:, 2] > 0).astype(np.float64)[:, None]
        keypoints2d = np.concatenate([pixels, in_front], axis=1)
        return PersonRecord(
            keypoints2d=canonical_keypoints(keypoints2d, self.joint_set),
            keypoints3d=canonical_keypoints(np.c_[joints, np.ones(24)], self.joint_set),
            box=joint_box(keypoints2d, BOX_MARGIN),
            pose=pose,
            betas=sequence.betas[actor].copy(),
            transl=transl,
            gender=int(sequence.genders[actor]),
            flags=person_flags(
                has_keypoints2d=True, has_keypoints3d=True, has_smpl=True, has_gender=True
            ),
            track_id=actor,
        )

    def _root_joint(self, position: int, actor: int) -> np.ndarray:
        """(3,) J0 of the actor's shape and gender (cached per actor)."""
        if self.options.body_models is None:
            raise ValueError(
                f"pw3d/{self.split}: records need body models (ReaderOptions.body_models): "
                "moving SMPL from the world to the camera frame needs each actor's rest-pose "
                "root joint (datasets.md 9.4b), and part labels are rendered from SMPL."
            )
        key = (position, actor)
        if key not in self._root_joints:
            sequence = self.sequences[position]
            self._root_joints[key] = self.body_models.rest_root_joint(
                sequence.betas[actor], int(sequence.genders[actor])
            )
        return self._root_joints[key]

    def _add_maps(
        self, record: SceneRecord, sequence: SequenceFile, frame: int, actors: tuple[int, ...]
    ) -> None:
        part_segm, instance_map = cached_part_maps(
            self.cache_root,
            self.data_root,
            sequence.path,
            f"{frame:05d}_a{''.join(map(str, actors))}",
            self.body_models,
            record.people,
            record.K,
            record.image_size,
        )
        record.part_segm, record.instance_map = part_segm, instance_map
        record.mask = instance_map > 0

    def check(self) -> list[str]:
        """Every record's annotations, plus (real roots only) the sequence table and PC ranges."""
        problems = super().check()
        if not self.synthetic:
            problems += self._check_sequences() + self._check_pc()
        return problems

    def _check_sequences(self) -> list[str]:
        problems = []
        for folder in SPLIT_FOLDERS[self.split]:
            directory = self.root / "sequenceFiles" / folder
            expected = REAL_SEQUENCES[folder]
            present = {s.name: s for s in self.sequences if s.folder == folder}
            if len(present) != len(expected):
                problems.append(
                    f"{directory}: {len(present)} sequence files, expected {len(expected)}"
                )
            for name, sequence in present.items():
                shape = (sequence.valid.shape[0], sequence.num_frames)
                if expected.get(name, shape) != shape:
                    problems.append(
                        f"{sequence.path}: {shape[0]} actors and {shape[1]} frames, "
                        f"expected {expected[name][0]} and {expected[name][1]}"
                    )
        return problems

    def _check_pc(self) -> list[str]:
        if self.split != "pc":
            return []
        problems = []
        names = {s.name: s for s in self.sequences}
        for name, (start, end) in PC_RANGES.items():
            if name not in names:
                problems.append(f"{self.root / 'sequenceFiles'}: 3DPW-PC sequence {name} absent")
            elif names[name].num_frames < end:
                problems.append(
                    f"{names[name].path}: 3DPW-PC range [{start}, {end}) reaches past the "
                    f"sequence's {names[name].num_frames} frames"
                )
        return problems
