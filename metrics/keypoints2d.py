"""2D keypoint metrics: PCKh (BodyNet table A.1) and COCO keypoint AP through pycocotools.

**PCKh**: a visible joint is correct when its 2D error divided by the sample's normaliser is
below the threshold (``<``; BodyNet's SURREAL evaluator counts ``<=``: ``inclusive=True``).
The caller passes the whole normaliser: 0.6 x the head-box diagonal for MPII (the head
segment length), heatmap size / 10 (6.4 px on a 64 x 64 heatmap) for BodyNet's SURREAL
variant, which has no head boxes. Pooled over all visible joints, percent.

**KeypointAP**: object keypoint similarity AP, AP at OKS 0.5 and AR at OKS 0.5 (ROMP's crowd
evaluation) computed by pycocotools' ``COCOeval`` itself, never a re-implementation (metrics.md).
The metric keeps every prediction and ground-truth person (states concatenated across
processes) and builds the COCO ground truth and results in memory at ``compute()``.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchmetrics.utilities.data import dim_zero_cat

from metrics._checks import Inputs, check_positive
from metrics.base import SuiteMetric, safe_ratio

# COCO's per-keypoint OKS sigmas (pycocotools' COCOeval Params, the 17 coco_17 joints).
COCO_KEYPOINT_SIGMAS = tuple(
    s / 10.0
    for s in (
        0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87,
        0.89, 0.89,
    )
)  # fmt: skip

# ----------------------------------------------------------------------------- PCKh


def normalised_errors(preds: Tensor, target: Tensor, normaliser: Tensor) -> Tensor:
    """(B, J) 2D errors of (B, J, 2) keypoints divided by the per-sample normaliser (B,)."""
    return torch.linalg.vector_norm(preds - target, dim=-1) / normaliser[:, None]


class PCKh(SuiteMetric):
    """Percentage of visible 2D joints within ``threshold`` x the normaliser (module docstring).

    Args:
        threshold: fraction of the normaliser (0.5 for PCKh@0.5).
        inclusive: count ``error / normaliser <= threshold`` (BodyNet's SURREAL evaluator).

    ``update(preds (B, J, 2), target (B, J, 2), visible (B, J) bool or None, normaliser (B,))``,
    pixels; the normaliser must be positive.
    """

    default_name = "pckh_pct"
    higher_is_better = True
    correct: Tensor
    total: Tensor

    def __init__(
        self,
        threshold: float = 0.5,
        inclusive: bool = False,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_positive(type(self).__name__, "threshold", threshold)
        super().__init__(name, **kwargs)
        self.threshold = float(threshold)
        self.inclusive = bool(inclusive)
        self._add_sum_state("correct", integer=True)
        self._add_sum_state("total", integer=True)

    def update(
        self,
        preds: Tensor,
        target: Tensor,
        visible: Tensor | None = None,
        normaliser: Tensor | None = None,
    ) -> None:
        inputs = Inputs(self.where)
        inputs.check(preds, "preds", ("B", "J", 2))
        inputs.check(target, "target", ("B", "J", 2))
        mask = inputs.optional_mask(visible, "visible", ("B", "J"))
        if normaliser is None:
            raise inputs.fail("normaliser (B,) is required (the whole PCKh normaliser, in pixels)")
        inputs.check(normaliser, "normaliser", ("B",))
        if not bool((normaliser > 0).all()):
            raise inputs.fail("normaliser must be positive")
        ratio = normalised_errors(preds.double(), target.double(), normaliser.double())
        correct = ratio <= self.threshold if self.inclusive else ratio < self.threshold
        if mask is None:
            mask = torch.ones_like(correct)
        self.correct += (correct & mask).sum().to(self.correct)
        self.total += mask.sum().to(self.total)

    def compute(self) -> Tensor:
        return 100.0 * safe_ratio(self.correct, self.total)


# ----------------------------------------------------------------------------- COCO keypoint AP


def coco_keypoint_stats(
    preds: Sequence[Mapping[str, np.ndarray]],
    target: Sequence[Mapping[str, np.ndarray]],
    sigmas: Sequence[float],
) -> np.ndarray:
    """pycocotools' 10 keypoint statistics (AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm, ARl).

    One entry per image in both lists: ``preds[i]`` has ``keypoints`` (N, K, 3) and ``scores``
    (N,); ``target[i]`` has ``keypoints`` (M, K, 3) with COCO visibility flags, ``area`` (M,),
    ``bbox`` (M, 4) xywh and ``iscrowd`` (M,). Values are fractions; -1 where COCOeval has no
    ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images: list[dict] = []
    annotations: list[dict] = []
    results: list[dict] = []
    for image_id, (pred, truth) in enumerate(zip(preds, target, strict=True)):
        images.append({"id": image_id})
        for keypoints, area, box, crowd in zip(
            truth["keypoints"], truth["area"], truth["bbox"], truth["iscrowd"], strict=True
        ):
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": keypoints.reshape(-1).tolist(),
                    "num_keypoints": int((keypoints[:, 2] > 0).sum()),
                    "area": float(area),
                    "bbox": box.tolist(),
                    "iscrowd": int(crowd),
                }
            )
        for keypoints, score in zip(pred["keypoints"], pred["scores"], strict=True):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "keypoints": keypoints.reshape(-1).tolist(),
                    "score": float(score),
                }
            )
    if not results:
        return np.full(10, 0.0 if annotations else -1.0)
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress
        ground_truth = COCO()
        ground_truth.dataset = {
            "images": images,
            "annotations": annotations,
            "categories": [{"id": 1, "name": "person"}],
        }
        ground_truth.createIndex()
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(results), "keypoints")
        evaluator.params.kpt_oks_sigmas = np.asarray(sigmas, dtype=np.float64)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return np.asarray(evaluator.stats, dtype=np.float64)


class KeypointAP(SuiteMetric):
    """COCO keypoint AP, AP@0.5 and AR@0.5 through pycocotools' COCOeval, percent.

    Args:
        sigmas: per-keypoint OKS sigmas; COCO's 17 by default (their count fixes K).

    ``update(preds, target)``, one entry per image in each list (the COCO keypoint format as
    tensors, pixels):

    - ``preds[i]``: ``{"keypoints": (N, K, 3) x, y, score (the third value is not used by OKS),
      "scores": (N,) person scores}``;
    - ``target[i]``: ``{"keypoints": (M, K, 3) x, y, visibility (0 unlabelled, 1 occluded,
      2 visible), "area": (M,) segment areas, "bbox": (M, 4) COCO xywh boxes, "iscrowd": (M,)
      optional}``.

    Or, as pycocotools reads them, COCO records: ``preds`` the results list (``image_id``,
    ``keypoints`` flat [x1, y1, v1, ...], ``score``) and ``target`` the ``annotations`` list
    (``image_id``, ``keypoints``, ``area``, ``bbox``, ``iscrowd``) of the images of this update;
    an image is every ``image_id`` of either list.

    ``compute()``: ``{"ap": AP over OKS 0.5:0.95, "ap@0.5": AP at OKS 0.5, "ar@0.5": AR at OKS
    0.5}``, NaN when there is no ground-truth person, 0 when nothing was predicted.
    """

    default_name = "keypoint"
    higher_is_better = True
    pred_rows: list[Tensor]
    pred_counts: list[Tensor]
    target_rows: list[Tensor]
    target_counts: list[Tensor]

    def __init__(
        self, sigmas: Sequence[float] = COCO_KEYPOINT_SIGMAS, name: str | None = None, **kwargs: Any
    ) -> None:
        sigmas = tuple(float(s) for s in sigmas)
        if not sigmas or any(s <= 0 for s in sigmas):
            raise ValueError(f"KeypointAP: sigmas must be positive, got {sigmas}")
        super().__init__(name, **kwargs)
        self.sigmas = sigmas
        # Packed float64 rows, so that empty ranks and uneven sizes gather as 1-D tensors.
        for state in ("pred_rows", "pred_counts", "target_rows", "target_counts"):
            self.add_state(state, default=[], dist_reduce_fx="cat")
        self.set_dtype(torch.float64)  # the dtype of the empty stand-in of a rank without data

    @property
    def num_keypoints(self) -> int:
        return len(self.sigmas)

    def update(
        self, preds: Sequence[Mapping[str, Any]], target: Sequence[Mapping[str, Any]]
    ) -> None:
        if _are_coco_records(preds) or _are_coco_records(target):
            preds, target = coco_records_to_images(preds, target, self.num_keypoints, self.where)
        if len(preds) != len(target):
            raise ValueError(
                f"{self.where}: preds and target must list the same images, "
                f"got {len(preds)} and {len(target)}"
            )
        for index, (pred, truth) in enumerate(zip(preds, target, strict=True)):
            pred_rows = self._pred_rows(pred, f"preds[{index}]")
            target_rows = self._target_rows(truth, f"target[{index}]")
            self.pred_rows.append(pred_rows.flatten())
            self.target_rows.append(target_rows.flatten())
            self.pred_counts.append(self._count(len(pred_rows)))
            self.target_counts.append(self._count(len(target_rows)))

    def _count(self, count: int) -> Tensor:
        return torch.tensor([count], dtype=torch.float64, device=self.device)

    def _pred_rows(self, pred: Mapping[str, Tensor], where: str) -> Tensor:
        """(N, 3K + 1) rows: keypoints, score."""
        inputs = Inputs(f"{self.where}: {where}")
        keypoints = inputs.check(
            _get(inputs, pred, "keypoints"), "keypoints", ("N", self.num_keypoints, 3)
        )
        scores = inputs.check(_get(inputs, pred, "scores"), "scores", ("N",))
        return torch.cat([keypoints.flatten(1), scores[:, None]], dim=1).double().to(self.device)

    def _target_rows(self, truth: Mapping[str, Tensor], where: str) -> Tensor:
        """(M, 3K + 6) rows: keypoints, area, bbox (4), iscrowd."""
        inputs = Inputs(f"{self.where}: {where}")
        keypoints = inputs.check(
            _get(inputs, truth, "keypoints"), "keypoints", ("M", self.num_keypoints, 3)
        )
        area = inputs.check(_get(inputs, truth, "area"), "area", ("M",))
        box = inputs.check(_get(inputs, truth, "bbox"), "bbox", ("M", 4))
        crowd = truth.get("iscrowd")
        if crowd is None:
            crowd = torch.zeros(len(keypoints), dtype=torch.bool, device=keypoints.device)
        inputs.check(crowd, "iscrowd", ("M",), kind="any")
        columns = [keypoints.flatten(1), area[:, None], box, crowd[:, None]]
        return torch.cat([c.double() for c in columns], dim=1).to(self.device)

    def key_units(self) -> dict[str, str]:
        return dict.fromkeys(("ap", "ap@0.5", "ar@0.5"), "pct")

    def compute(self) -> dict[str, Tensor]:
        width = 3 * self.num_keypoints
        preds = _split_images(self.pred_rows, self.pred_counts, width + 1)
        target = _split_images(self.target_rows, self.target_counts, width + 6)
        stats = coco_keypoint_stats(
            [
                {
                    "keypoints": p[:, :width].reshape(-1, self.num_keypoints, 3),
                    "scores": p[:, width],
                }
                for p in preds
            ],
            [
                {
                    "keypoints": t[:, :width].reshape(-1, self.num_keypoints, 3),
                    "area": t[:, width],
                    "bbox": t[:, width + 1 : width + 5],
                    "iscrowd": t[:, width + 5],
                }
                for t in target
            ],
            self.sigmas,
        )
        values = torch.tensor(stats[[0, 1, 6]], dtype=torch.float64)
        values = torch.where(values < 0, torch.full_like(values, float("nan")), 100.0 * values)
        return dict(zip(("ap", "ap@0.5", "ar@0.5"), values, strict=True))


def _are_coco_records(entries: Sequence[Any]) -> bool:
    return len(entries) > 0 and isinstance(entries[0], Mapping) and "image_id" in entries[0]


def coco_records_to_images(
    results: Sequence[Mapping[str, Any]],
    annotations: Sequence[Mapping[str, Any]],
    num_keypoints: int,
    where: str = "coco_records_to_images",
) -> tuple[list[dict[str, Tensor]], list[dict[str, Tensor]]]:
    """COCO results and annotation records -> per-image tensor dicts (KeypointAP's layout).

    Images are the sorted ``image_id`` values of both lists; records keep their order.
    """
    images = sorted({r["image_id"] for r in results} | {a["image_id"] for a in annotations})
    preds, target = [], []
    for image_id in images:
        own_results = [r for r in results if r["image_id"] == image_id]
        own_annotations = [a for a in annotations if a["image_id"] == image_id]
        try:
            preds.append(
                {
                    "keypoints": _record_keypoints(own_results, num_keypoints, where),
                    "scores": torch.tensor([float(r["score"]) for r in own_results]),
                }
            )
            target.append(
                {
                    "keypoints": _record_keypoints(own_annotations, num_keypoints, where),
                    "area": torch.tensor([float(a["area"]) for a in own_annotations]),
                    "bbox": torch.tensor([list(a["bbox"]) for a in own_annotations]).reshape(-1, 4),
                    "iscrowd": torch.tensor([int(a.get("iscrowd", 0)) for a in own_annotations]),
                }
            )
        except KeyError as error:
            raise ValueError(f"{where}: a record of image {image_id} has no {error}") from None
    return preds, target


def _record_keypoints(
    records: Sequence[Mapping[str, Any]], num_keypoints: int, where: str
) -> Tensor:
    rows = [list(r["keypoints"]) for r in records]
    for row in rows:
        if len(row) != 3 * num_keypoints:
            raise ValueError(
                f"{where}: keypoints must hold 3 x {num_keypoints} values, got {len(row)}"
            )
    return torch.tensor(rows, dtype=torch.float64).reshape(len(records), num_keypoints, 3)


def _get(inputs: Inputs, entry: Mapping[str, Tensor], key: str) -> Tensor:
    if not isinstance(entry, Mapping) or key not in entry:
        raise inputs.fail(f"missing key {key!r}")
    return entry[key]


def _split_images(rows: Any, counts: Any, width: int) -> list[np.ndarray]:
    """Packed rows and per-image counts (concatenated in the same order) -> one array per image."""
    flat = dim_zero_cat(rows).cpu().numpy() if len(rows) else np.zeros(0)
    sizes = dim_zero_cat(counts).cpu().long().tolist() if len(counts) else []
    table = flat.reshape(-1, width)
    return np.split(table, np.cumsum(sizes)[:-1]) if sizes else []
