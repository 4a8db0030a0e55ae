"""Rendering people for the synthetic world: bodies, appearance, lighting, backgrounds.

`SceneRenderer` poses people with the body model (neutral, male and female) and renders all
of a frame's people with one call of `geometry.rasterize`, from which every annotation comes:
RGB (Lambertian flat shading with a random light and ambient term over a procedural,
out-of-focus background), the 24-part label map (a face takes the part of its first vertex, the
argmax of the skinning weights, as `geometry.render_part_labels` does), the instance map (the
nearer person wins where people overlap), depth in metres (+inf in the background), and the
posed joints and canonical keypoints of each person in the camera frame.

Appearance is clothing-like: a shirt (torso and sleeves), trousers or shorts, shoes, skin and
hair, each with its own colour and a procedural texture (stripes, checks or blotches in rest-pose
coordinates, so it moves with the body); half of the people get a fresh random colour per
body part instead, and clothing colours vary by up to 20 % between parts, because variety of
appearance within the training set is what makes the world learnable (the issue's probe).
Occluders are optional (`datamodules.occluders`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from body import BodyModel
from body.joint_sets import SMPL_JOINTS
from datamodules.occluders import gradient_fill, paste_occluder, random_color
from geometry.cameras import project_points
from geometry.rasterizer import interpolate, rasterize

GENDERS = ("neutral", "male", "female")
# Fraction of people with a fresh random colour per body part instead of clothing.
RANDOM_PART_COLOURS = 0.5
# Background saturation relative to the objects drawn, and blur sigma / min(H, W).
BACKGROUND_SATURATION = 0.6
BACKGROUND_BLUR = 0.015
_SHIRT = (
    "spine1",
    "spine2",
    "spine3",
    "left_collar",
    "right_collar",
    "left_shoulder",
    "right_shoulder",
)
_FOREARMS = ("left_elbow", "right_elbow")
_PANTS_UPPER = ("pelvis", "left_hip", "right_hip")
_PANTS_LOWER = ("left_knee", "right_knee")
_SHOES = ("left_ankle", "right_ankle", "left_foot", "right_foot")
_SKIN = ("neck", "head", "left_wrist", "right_wrist", "left_hand", "right_hand")


@dataclass
class Person:
    """One person over T frames, camera frame: pose (T, 72) axis-angle, betas (10,),
    transl (T, 3) metres, gender name, per-vertex colours (V, 3) float in [0, 1]."""

    pose: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    gender: str
    colors: np.ndarray


@dataclass
class Posed:
    """A person's posed body over T frames, camera frame, metres."""

    vertices: np.ndarray  # (T, V, 3) float32
    joints: np.ndarray  # (T, 24, 3) SMPL joints
    keypoints: np.ndarray  # (T, K, 3) canonical superset


@dataclass
class Frames:
    """Rendered frames of P people: every map is (T, H, W)."""

    images: np.ndarray  # (T, H, W, 3) uint8 RGB
    part_segm: np.ndarray  # uint8, 0 background, 1..24 parts
    instance_map: np.ndarray  # uint8, 0 background, k + 1 for person k
    depth: np.ndarray  # float32 metres, +inf background
    posed: list[Posed] = field(default_factory=list)

    def keypoints2d(self, person: int, K: np.ndarray) -> np.ndarray:
        """(T, K, 2) canonical keypoints of `person` projected with K (float pixels)."""
        points = torch.as_tensor(self.posed[person].keypoints)
        return project_points(points, torch.as_tensor(K, dtype=points.dtype)).numpy()


class SceneRenderer:
    """Poses and renders people with the body model `name` under `root` (all three genders)."""

    def __init__(self, root: str | Path, name: str = "mannequin") -> None:
        self.models = {gender: BodyModel(root, name, gender) for gender in GENDERS}
        neutral = self.models["neutral"]
        self.faces = neutral.faces
        self.vertex_parts = neutral.smpl.lbs_weights.argmax(dim=1)  # (V,) 0..23
        rest = neutral(torch.zeros(1, 72))
        self.rest_vertices = rest.vertices[0].numpy()
        self.rest_joints = rest.joints[0].numpy()

    @property
    def num_vertices(self) -> int:
        return int(self.rest_vertices.shape[0])

    def pose(self, person: Person) -> Posed:
        """Posed vertices, SMPL joints and canonical keypoints of `person` for all its frames."""
        model = self.models[person.gender]
        frames = person.pose.shape[0]
        with torch.no_grad():
            out = model(
                torch.as_tensor(person.pose, dtype=torch.float32),
                torch.as_tensor(np.tile(person.betas, (frames, 1)), dtype=torch.float32),
                torch.as_tensor(person.transl, dtype=torch.float32),
            )
        return Posed(
            out.vertices.numpy(), out.joints.double().numpy(), out.keypoints.double().numpy()
        )

    def root_offset(self, person: Person) -> np.ndarray:
        """(T, 3) pelvis position of `person` with zero translation (to place people)."""
        posed = self.pose(
            Person(person.pose, person.betas, 0 * person.transl, person.gender, person.colors)
        )
        return posed.joints[:, 0]

    def render(
        self,
        people: list[Person],
        K: np.ndarray,
        image_size: tuple[int, int],
        rng: np.random.Generator,
        background: np.ndarray | None = None,
        occluders: int = 0,
        lighting: tuple[np.ndarray, float] | None = None,
    ) -> Frames:
        """Render T frames of `people` seen by a camera K (3, 3) at `image_size` (H, W).

        `background` is (H, W, 3) uint8 (a procedural one if None) shared by all frames;
        `occluders` objects are pasted over each frame's people (the maps are not changed: they
        describe the bodies, as a real dataset's do). `lighting` is (direction (3,), ambient)
        from `random_lighting`, to keep one light over a sequence rendered in chunks (a new
        random one if None).
        """
        posed = [self.pose(person) for person in people]
        height, width = image_size
        frames = posed[0].vertices.shape[0]
        if background is None:
            background = procedural_background(rng, image_size)
        direction, ambient = lighting if lighting is not None else random_lighting(rng)
        light = torch.as_tensor(direction, dtype=torch.float32)
        num_faces = self.faces.shape[0]
        scene_faces = torch.cat([self.faces + k * self.num_vertices for k in range(len(people))])
        vertices = torch.as_tensor(np.concatenate([p.vertices for p in posed], axis=1))
        colors = torch.as_tensor(np.concatenate([p.colors for p in people]), dtype=torch.float32)
        Ks = torch.as_tensor(K, dtype=torch.float32).expand(frames, 3, 3)
        fragments = rasterize(vertices, scene_faces, Ks, (height, width))
        covered = fragments.face_index >= 0
        face = fragments.face_index.clamp(min=0)
        albedo = interpolate(fragments, scene_faces, colors.expand(frames, -1, -1))
        shade = _lambert(vertices, scene_faces, light, ambient)  # (T, F_all)
        shade = torch.gather(shade, 1, face.flatten(1)).view_as(face)
        rgb = (albedo * shade[..., None]).clamp(0, 1).numpy()
        mask = covered.numpy()
        part_of_face = self.vertex_parts[self.faces[:, 0]]
        parts = torch.where(covered, part_of_face[face % num_faces] + 1, 0).numpy()
        instances = torch.where(covered, face // num_faces + 1, 0).numpy()
        images = np.where(mask[..., None], rgb * 255.0, background[None].astype(np.float32))
        images = _camera_noise(rng, images)
        for frame in range(frames):
            for _ in range(occluders):
                box = _people_box(instances[frame])
                if box is not None:
                    images[frame] = paste_occluder(images[frame], box, rng)
        return Frames(
            images=images,
            part_segm=parts.astype(np.uint8),
            instance_map=instances.astype(np.uint8),
            depth=fragments.depth.numpy().astype(np.float32),
            posed=posed,
        )

    def random_colors(self, rng: np.random.Generator) -> np.ndarray:
        """(V, 3) per-vertex colours of a clothed person (module docstring)."""
        parts = self.vertex_parts.numpy()
        if rng.uniform() < RANDOM_PART_COLOURS:
            palette = np.stack([random_color(rng) for _ in SMPL_JOINTS])
            base = palette[parts]
        else:
            base = self._clothing(rng, parts)
        pattern = _texture(rng, self.rest_vertices)
        return np.clip(base * pattern[:, None], 0.0, 1.0).astype(np.float32)

    def _clothing(self, rng: np.random.Generator, parts: np.ndarray) -> np.ndarray:
        skin = _skin_tone(rng)
        shirt, pants, shoes = random_color(rng), random_color(rng), random_color(rng) * 0.6
        region = {name: skin for name in _SKIN}
        region.update({name: shirt for name in _SHIRT})
        region.update({name: pants for name in _PANTS_UPPER})
        long_sleeves, long_pants = rng.uniform() < 0.5, rng.uniform() < 0.7
        region.update({name: shirt if long_sleeves else skin for name in _FOREARMS})
        region.update({name: pants if long_pants else skin for name in _PANTS_LOWER})
        region.update({name: shoes for name in _SHOES})
        palette = np.stack([region[name] for name in SMPL_JOINTS])
        palette = palette * rng.uniform(0.8, 1.2, size=(len(SMPL_JOINTS), 1))
        colors = palette[parts]
        hair = self._hair_vertices(rng, parts)
        colors[hair] = random_color(rng) * rng.uniform(0.2, 0.7)
        return colors

    def _hair_vertices(self, rng: np.random.Generator, parts: np.ndarray) -> np.ndarray:
        """Head vertices on the back and top of the head (the face stays skin coloured)."""
        head = SMPL_JOINTS.index("head")
        centre = self.rest_joints[head]
        offset = self.rest_vertices - centre
        top = offset[:, 1] > rng.uniform(0.06, 0.1)
        back = offset[:, 2] < rng.uniform(-0.03, 0.02)
        return (parts == head) & (top | back)


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    light, dark = np.array([0.96, 0.80, 0.69]), np.array([0.36, 0.22, 0.14])
    blend = rng.uniform()
    return light * (1 - blend) + dark * blend


def _texture(rng: np.random.Generator, rest_vertices: np.ndarray) -> np.ndarray:
    """(V,) multiplicative brightness pattern in rest-pose coordinates."""
    kind = rng.integers(4)
    direction = rng.normal(size=3)
    direction /= np.linalg.norm(direction)
    coordinate = rest_vertices @ direction
    frequency = rng.uniform(8, 40)
    amplitude = rng.uniform(0.1, 0.35)
    if kind == 0:
        pattern = np.sin(2 * np.pi * frequency * coordinate)
    elif kind == 1:
        other = np.cross(direction, [0.0, 1.0, 0.0])
        other /= max(np.linalg.norm(other), 1e-6)
        pattern = np.sign(np.sin(2 * np.pi * frequency * coordinate)) * np.sign(
            np.sin(2 * np.pi * frequency * (rest_vertices @ other))
        )
    elif kind == 2:
        waves = rng.normal(size=(4, 3)) * frequency / 3
        pattern = np.sin(rest_vertices @ waves.T + rng.uniform(0, 6, 4)).mean(axis=1) * 2
    else:
        pattern = np.zeros(len(rest_vertices))
    return 1.0 + amplitude * np.clip(pattern, -1, 1)


def random_lighting(rng: np.random.Generator) -> tuple[np.ndarray, float]:
    """(unit direction from the light into the scene, camera frame, from the front half;
    ambient fraction in [0.25, 0.5])."""
    direction = np.array([rng.uniform(-1, 1), rng.uniform(-0.2, 1.0), rng.uniform(0.3, 1.5)])
    return direction / np.linalg.norm(direction), float(rng.uniform(0.25, 0.5))


def _lambert(vertices: torch.Tensor, faces: torch.Tensor, light: torch.Tensor, ambient: float):
    corners = vertices[:, faces]  # (T, F, 3, 3)
    normals = torch.linalg.cross(
        corners[:, :, 1] - corners[:, :, 0], corners[:, :, 2] - corners[:, :, 0]
    )
    normals = torch.nn.functional.normalize(normals, dim=-1)
    return ambient + (1.0 - ambient) * (-normals @ light).clamp(min=0.0)


def _camera_noise(rng: np.random.Generator, images: np.ndarray) -> np.ndarray:
    """Sensor noise and a slight blur, then uint8."""
    sigma = rng.uniform(1.0, 5.0)
    noisy = images + rng.normal(0.0, sigma, size=images.shape).astype(np.float32)
    blurred = np.stack([cv2.GaussianBlur(frame, (3, 3), rng.uniform(0.3, 0.8)) for frame in noisy])
    return np.clip(blurred, 0, 255).round().astype(np.uint8)


def hidden_by_others(uv: np.ndarray, instance_map: np.ndarray, person: int) -> np.ndarray:
    """(T, J) whether each projected joint (T, J, 2) of `person` (0-based) falls inside the
    image on a pixel of another person in the (T, H, W) instance map."""
    frames, height, width = instance_map.shape
    pixel = np.rint(uv).astype(int)
    inside = (pixel[..., 0] >= 0) & (pixel[..., 0] < width)
    inside &= (pixel[..., 1] >= 0) & (pixel[..., 1] < height)
    x, y = np.clip(pixel[..., 0], 0, width - 1), np.clip(pixel[..., 1], 0, height - 1)
    owner = instance_map[np.arange(frames)[:, None], y, x]
    return inside & (owner > 0) & (owner != person + 1)


def _people_box(instance_map: np.ndarray) -> np.ndarray | None:
    rows, cols = np.nonzero(instance_map)
    if rows.size == 0:
        return None
    return np.array([cols.min(), rows.min(), cols.max(), rows.max()], dtype=np.float64)


def procedural_background(rng: np.random.Generator, image_size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8: an out-of-focus room behind the people.

    A wall and a floor (each a two-colour gradient with coarse blotches) and one to four large
    objects (boxes and ellipses: furniture, windows, posters), muted to `BACKGROUND_SATURATION`
    of their saturation and blurred with a Gaussian of `BACKGROUND_BLUR` x min(H, W) (depth of
    field: the camera focuses on the people). Thin lines and fine stripes are left out on
    purpose: at crop resolution they look like limbs, and with them a small CNN trained on the
    `ci` world did not beat the mean pose (issue 5's learnability probe: 0.84 x the mean-pose
    MPJPE with sharp, saturated clutter, 0.77 x with this background, 3,000 renders each).
    """
    height, width = image_size
    image = _blotched_gradient(rng, (height, width))
    horizon = int(height * rng.uniform(0.4, 0.75))
    image[horizon:] = _blotched_gradient(rng, (height - horizon, width))
    canvas = (image * 255).astype(np.uint8)
    side = max(height, width)
    for _ in range(rng.integers(1, 5)):
        color = tuple(float(c) for c in random_color(rng) * 255)
        x, y = int(rng.uniform(0, width)), int(rng.uniform(0, height))
        size = int(rng.uniform(0.15, 0.5) * side)
        if rng.uniform() < 0.5:
            corner = (x + size, y + int(size * rng.uniform(0.3, 1.5)))
            cv2.rectangle(canvas, (x, y), corner, color, -1)
        else:
            axes = (max(size // 2, 1), max(size // 3, 1))
            cv2.ellipse(canvas, (x, y), axes, rng.uniform(0, 180), 0, 360, color, -1)
    muted = canvas.astype(np.float32)
    grey = muted.mean(axis=-1, keepdims=True)
    muted = grey + (muted - grey) * BACKGROUND_SATURATION
    blurred = cv2.GaussianBlur(muted, (0, 0), BACKGROUND_BLUR * min(height, width))
    return np.clip(blurred, 0, 255).round().astype(np.uint8)


def _blotched_gradient(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) float RGB: a two-colour gradient times coarse random blotches (1/16 scale)."""
    height, width = shape
    image, _ = gradient_fill(rng, shape)
    coarse = rng.uniform(0.7, 1.0, size=(max(2, height // 16), max(2, width // 16), 1))
    image = image * cv2.resize(coarse.astype(np.float32), (width, height))[..., None]
    return np.clip(image, 0, 1).astype(np.float32)


def place_people(
    renderer: SceneRenderer,
    people: list[Person],
    K: np.ndarray,
    image_size: tuple[int, int],
    depths: list[float],
    rng: np.random.Generator,
    spread: float = 0.3,
    drift: float = 0.0,
) -> None:
    """Set each person's `transl` so its pelvis sits at `depths[k]` metres in front of the
    camera, near the image centre (offset by up to `spread` of the field of view, people spaced
    apart horizontally), moving by up to `drift` metres over the sequence."""
    height, width = image_size
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    count = len(people)
    for k, (person, depth) in enumerate(zip(people, depths, strict=True)):
        slot = (k - (count - 1) / 2) * (0.7 if count > 1 else 0.0)
        u = cx + (slot * width * 0.5 + rng.uniform(-spread, spread) * width * 0.5) / max(count, 1)
        v = cy + rng.uniform(-spread, spread) * height * 0.25
        target = np.array([(u - cx) / fx * depth, (v - cy) / fy * depth, depth])
        frames = person.pose.shape[0]
        motion = np.linspace(0, 1, frames)[:, None] * rng.uniform(-drift, drift, size=3)
        root = renderer.root_offset(person)
        person.transl = target[None] + motion - root
