"""Scene records rendered in memory (no dataset files) for the crop and scene tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from datamodules.records import (
    PersonRecord,
    SceneRecord,
    image_flags,
    keypoint_box,
    person_flags,
)
from datamodules.synthetic.prior import sample_betas, sample_pose_sequence
from datamodules.synthetic.render import Person, SceneRenderer, place_people

K_TEST = np.array([[500.0, 0.0, 170.0], [0.0, 520.0, 115.0], [0.0, 0.0, 1.0]])
SIZE_TEST = (240, 320)


def rendered_record(
    renderer: SceneRenderer, seed: int = 0, people: int = 1, gender: str = "neutral"
) -> SceneRecord:
    """A record of `people` rendered people with every annotation, straight from the renderer."""
    rng = np.random.default_rng(seed)
    persons = [
        Person(
            sample_pose_sequence(rng, 1, still=True),
            sample_betas(rng),
            np.zeros((1, 3)),
            gender,
            renderer.random_colors(rng),
        )
        for _ in range(people)
    ]
    place_people(renderer, persons, K_TEST, SIZE_TEST, [4.0 + 1.5 * k for k in range(people)], rng)
    frames = renderer.render(persons, K_TEST, SIZE_TEST, rng)
    records = []
    for index, person in enumerate(persons):
        keypoints3d = np.concatenate([frames.posed[index].keypoints[0], np.ones((101, 1))], 1)
        keypoints2d = np.concatenate([frames.keypoints2d(index, K_TEST)[0], np.ones((101, 1))], 1)
        records.append(
            PersonRecord(
                keypoints2d=keypoints2d,
                keypoints3d=keypoints3d,
                box=keypoint_box(keypoints2d),
                pose=person.pose[0],
                betas=person.betas,
                transl=person.transl[0],
                gender=0,
                flags=person_flags(has_keypoints2d=True, has_keypoints3d=True, has_smpl=True),
            )
        )
    return SceneRecord(
        dataset="memory",
        split="test",
        index=0,
        sample_id=f"rendered_{seed}",
        image_path=Path("memory.png"),
        image_size=SIZE_TEST,
        K=K_TEST.copy(),
        joint_set="smpl_24",
        people=records,
        flags=image_flags(
            has_camera=True, has_part_segm=True, has_mask=True, has_instance_map=True
        ),
        image=frames.images[0],
        part_segm=frames.part_segm[0],
        mask=frames.instance_map[0] > 0,
        instance_map=frames.instance_map[0],
    )
