"""JTA (Joint Track Auto, datasets.md 6) with LoCO's protocols -> scene records of 1080p frames.

Layout (datasets.md 6.1, read untouched):

    jta/annotations/{train,val,test}/seq_<N>.json      rows of 10 numbers (below)
    jta/videos/{train,val,test}/seq_<N>.mp4            1920 x 1080, 30 fps, up to 900 frames

Frames. Records never decode video: `python -m experiments prepare jta` decodes each video once
(streaming, `datamodules.io.iter_video`) and keeps the protocol's frames of its split as JPEG
(quality 95) in the cache (step `jta_frames`, one entry per video, `<frame>.jpg` with JTA's
1-based frame number). A record whose frames are not prepared raises a MissingDataError saying
so. Sizes at full scale: about 3.5 GB for the test protocol (11,520 frames) and 14 GB for
training (46,080 frames).

Named splits (LoCO's loaders, datasets.md 6.5), records sorted by sequence number then frame:
- `train`: the `train` folder (seq_0 .. seq_255), frames 1, 6, 11, ..., 896;
- `test`: the `test` folder (even numbers seq_256, seq_258, ..., seq_510), frames 10, 20, ...,
  900;
- `val`: the `val` folder (odd numbers seq_257, ..., seq_511), frame 123.
On a synthetic root (sequences may be much shorter than 900 frames) each list is intersected
with the frames the sequence has, and a sequence too short for any of them contributes its last
frame (`protocol_frames`); on a real root a protocol frame beyond a sequence's end is a problem
`check()` reports.

Annotation rows: frame (1-based), person id, joint type (0..21, `jta_22`), x2D, y2D (pixels),
x3D, y3D, z3D (camera metres, y down), occluded, self_occluded. Records:
- K: the fixed camera fx = fy = 1158, cx = 960, cy = 540 (`has_camera`); no distortion.
- people: the person ids with rows in the frame, in id order (track_id = the id); a person none
  of whose joints is on screen (0 <= x <= 1920, 0 <= y <= 1080, JTA's rule) is dropped and
  counted (`dropped_people`), as LoCO's ground truth only holds on-screen joints.
- keypoints2d / keypoints3d: the 22 joints as stored (2D kept as floats; JTA's own `Joint`
  class rounds them), confidence 1 for every annotated joint (JTA annotates occluded joints
  too); `meta["occluded"]` and `meta["self_occluded"]` hold the flags, one (22,) bool array
  per person, and `meta["on_screen"]` the on-screen test. LoCO's 14 joints are the
  `loco_14` joint set of `body.joint_sets`.
- box: the tight box of the on-screen joints widened by `BOX_MARGIN` of its larger side.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from datamodules.base import DatasetReader, ReaderOptions, register_reader
from datamodules.cache import (
    PrepareContext,
    build_entry,
    entry_dir,
    is_complete,
    register_step,
    source_key,
)
from datamodules.io import (
    DataError,
    MissingDataError,
    iter_video,
    missing,
    read_image,
    read_json,
    write_image,
)
from datamodules.records import (
    PersonRecord,
    SceneRecord,
    canonical_keypoints,
    image_flags,
    joint_box,
    person_flags,
)

K = np.array([[1158.0, 0.0, 960.0], [0.0, 1158.0, 540.0], [0.0, 0.0, 1.0]])
IMAGE_SIZE = (1080, 1920)
NUM_JOINTS = 22
MAX_FRAME = 900
PROTOCOL_FRAMES = {
    "train": tuple(range(1, 897, 5)),
    "test": tuple(range(10, 901, 10)),
    "val": (123,),
}
SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "val"}
BOX_MARGIN = 0.1
FRAMES_STEP, FRAMES_CACHE_VERSION = "jta_frames", 1
SEQUENCE_FILE = re.compile(r"seq_(\d+)\.json")
LAYOUT = "jta/annotations/{train,val,test}/seq_<N>.json, jta/videos/{train,val,test}/seq_<N>.mp4"


def protocol_frames(split: str, last: int) -> list[int]:
    """The protocol frames of `split` that a synthetic sequence of frames 1..last has; its last
    frame when it is too short for any (module docstring)."""
    frames = [f for f in PROTOCOL_FRAMES[split] if f <= last]
    return frames or [last]


def on_screen(points2d: np.ndarray) -> np.ndarray:
    """JTA's on-screen test of (..., 2) pixels."""
    x, y = points2d[..., 0], points2d[..., 1]
    return (x >= 0) & (x <= IMAGE_SIZE[1]) & (y >= 0) & (y <= IMAGE_SIZE[0])


def read_annotation(path: Path) -> np.ndarray:
    """(N, 10) float64 rows of a sequence file; DataError naming the file."""
    data = read_json(path, list)
    try:
        rows = np.asarray(data, dtype=np.float64)
    except (ValueError, TypeError) as error:
        raise DataError(f"{path}: rows of 10 numbers expected ({error})") from error
    if rows.ndim != 2 or rows.shape[1] != 10:
        raise DataError(f"{path}: rows must have 10 columns, array is {rows.shape}")
    if not np.isfinite(rows).all():
        raise DataError(f"{path}: NaN/inf in the rows")
    types = rows[:, 2]
    if ((types < 0) | (types >= NUM_JOINTS) | (types != np.round(types))).any():
        raise DataError(f"{path}: joint types (column 2) outside 0..21")
    return rows


@register_reader
class JTAReader(DatasetReader):
    """JTA sequences through the prepared frame cache (module docstring)."""

    dataset_id = "jta"
    folder = "jta"
    joint_set = "jta_22"
    splits = ("train", "test", "val")
    layout = LAYOUT

    def _open(self) -> None:
        folder = self.root / "annotations" / SPLIT_FOLDERS[self.split]
        if not folder.is_dir():
            raise missing(folder, f"JTA annotations of split {self.split!r}", LAYOUT)
        numbers = sorted(
            int(m.group(1)) for f in folder.iterdir() if (m := SEQUENCE_FILE.fullmatch(f.name))
        )
        if not numbers:
            raise missing(
                folder, f"JTA sequence files (seq_<N>.json) of split {self.split!r}", LAYOUT
            )
        self.sequences = numbers
        self.items: list[tuple[int, int]] = []
        self.late_frames: list[tuple[int, int]] = []
        self._dropped: set[tuple[int, int, int]] = set()
        for number in numbers:
            last = int(self._rows(number)[:, 0].max())
            self._rows.cache_clear()  # keep memory to the sequences in use
            if self.synthetic:
                self.items += [(number, f) for f in protocol_frames(self.split, last)]
            else:
                frames = PROTOCOL_FRAMES[self.split]
                self.items += [(number, f) for f in frames if f <= last]
                self.late_frames += [(number, f) for f in frames if f > last]

    def annotation_path(self, number: int) -> Path:
        return self.root / "annotations" / SPLIT_FOLDERS[self.split] / f"seq_{number}.json"

    def video_path(self, number: int) -> Path:
        return self.root / "videos" / SPLIT_FOLDERS[self.split] / f"seq_{number}.mp4"

    @functools.lru_cache(maxsize=4)  # noqa: B019  (a sequence's rows, per reader)
    def _rows(self, number: int) -> np.ndarray:
        return read_annotation(self.annotation_path(number))

    def __len__(self) -> int:
        return len(self.items)

    @functools.lru_cache(maxsize=64)  # noqa: B019
    def _frame_people(self, number: int, frame: int) -> list[tuple[int, np.ndarray]]:
        """[(person id, (22, 10) rows by joint type)] of the kept people of a frame."""
        rows = self._rows(number)
        rows = rows[rows[:, 0] == frame]
        people = []
        for person_id in np.unique(rows[:, 1]).astype(int):
            mine = rows[rows[:, 1] == person_id]
            types = mine[:, 2].astype(int)
            if len(types) != NUM_JOINTS or set(types) != set(range(NUM_JOINTS)):
                raise DataError(
                    f"{self.annotation_path(number)} (frame {frame}, person {person_id}): "
                    f"{len(types)} rows, expected one per joint type 0..21"
                )
            joints = mine[np.argsort(types)]
            if not on_screen(joints[:, 3:5]).any():
                self._dropped.add((number, frame, person_id))
                continue
            people.append((person_id, joints))
        return people

    @property
    def dropped_people(self) -> int:
        """People dropped so far (no joint on screen) in the frames read."""
        return len(self._dropped)

    def num_people(self, index: int) -> int:
        self._check_index(index)
        return len(self._frame_people(*self.items[index]))

    def frames_entry(self, number: int) -> Path:
        video = self.video_path(number)
        if not video.is_file():
            raise missing(video, f"JTA video of seq_{number}", LAYOUT)
        key = source_key(video, self.data_root, split=self.split)
        return entry_dir(self.cache_root, FRAMES_STEP, FRAMES_CACHE_VERSION, key)

    def extract_frames(self, number: int) -> Path:
        """Decode a video once and keep this split's protocol frames (module docstring)."""
        entry = self.frames_entry(number)
        if is_complete(entry):
            return entry
        wanted = {f for n, f in self.items if n == number}
        found = 0
        with build_entry(entry) as tmp:
            for frame, image in enumerate(iter_video(self.video_path(number), f"seq_{number}"), 1):
                if frame in wanted:
                    if image.shape[:2] != IMAGE_SIZE:
                        raise DataError(f"{self.video_path(number)}: frames are {image.shape[:2]}, "
                                        f"JTA's are {IMAGE_SIZE}")  # fmt: skip
                    write_image(tmp / f"{frame}.jpg", image, quality=95)
                    found += 1
                if found == len(wanted):
                    break
            if found < len(wanted):
                raise DataError(f"{self.video_path(number)}: ends before frame {max(wanted)} "
                                "that the annotations have (truncated video)")  # fmt: skip
        return entry

    def record(self, index: int, load_image: bool = True) -> SceneRecord:
        self._check_index(index)
        number, frame = self.items[index]
        sample_id = f"{SPLIT_FOLDERS[self.split]}/seq_{number}/{frame}"
        image, path = None, self.video_path(number)
        if load_image:
            entry = self.frames_entry(number)
            if not is_complete(entry):
                raise MissingDataError(
                    f"{path} (sample {sample_id}): frames not prepared; run "
                    f"`python -m experiments prepare jta --data-root {self.data_root}` "
                    "(records never decode video)"
                )
            path = entry / f"{frame}.jpg"
            image = read_image(path, sample_id)
        people = self._frame_people(number, frame)
        return SceneRecord(
            dataset=self.dataset_id, split=self.split, index=index, sample_id=sample_id,
            image_path=path, image_size=IMAGE_SIZE, K=K.copy(), joint_set=self.joint_set,
            people=[self._person(person_id, joints) for person_id, joints in people],
            flags=image_flags(has_camera=True), image=image,
            meta={"sequence": number, "frame": frame, "video": str(self.video_path(number)),
                  "occluded": [j[:, 8] > 0 for _, j in people],
                  "self_occluded": [j[:, 9] > 0 for _, j in people],
                  "on_screen": [on_screen(j[:, 3:5]) for _, j in people]},
        )  # fmt: skip

    def _person(self, person_id: int, joints: np.ndarray) -> PersonRecord:
        ones = np.ones((NUM_JOINTS, 1))
        keypoints2d = canonical_keypoints(np.hstack([joints[:, 3:5], ones]), self.joint_set)
        keypoints3d = canonical_keypoints(np.hstack([joints[:, 5:8], ones]), self.joint_set)
        visible = canonical_keypoints(
            np.hstack([joints[:, 3:5], on_screen(joints[:, 3:5])[:, None]]), self.joint_set
        )
        return PersonRecord(
            keypoints2d=keypoints2d, keypoints3d=keypoints3d, box=joint_box(visible, BOX_MARGIN),
            flags=person_flags(has_keypoints2d=True, has_keypoints3d=True), track_id=person_id,
        )  # fmt: skip

    def check(self) -> list[str]:
        problems = super().check()
        if not self.synthetic:
            problems += [f"{self.annotation_path(n)}: protocol frame {f} is past the last frame"
                         for n, f in self.late_frames]  # fmt: skip
        for number in self.sequences:
            if not self.video_path(number).is_file():
                problems.append(f"{self.video_path(number)}: video not found")
        return problems


def prepare_frames(ctx: PrepareContext) -> str:
    """Prepare step `frames`: extract the protocol frames of every present split."""
    from tqdm import tqdm

    done, cached = 0, 0
    for split in JTAReader.present_splits(ctx.data_root):
        reader = JTAReader(ctx.data_root, split, ReaderOptions(cache_root=ctx.cache_root))
        for number in tqdm(reader.sequences, desc=f"jta frames {split}", unit="video",
                           disable=not ctx.progress):  # fmt: skip
            if not reader.video_path(number).is_file():
                continue
            cached += is_complete(reader.frames_entry(number))
            reader.extract_frames(number)
            done += 1
    return f"{done} videos ({done - cached} extracted, {cached} cached)"


register_step("jta", "frames", prepare_frames)
