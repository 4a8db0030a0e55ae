"""Independent NumPy references for the metric tests.

Deliberately naive: one sample (image, pair, joint) at a time, float64, written from the
definitions of ../shared/metrics.md and the reference evaluators' semantics, never calling the
code under test (nor the suite's geometry). Inputs are NumPy arrays in metres; results are in
the metrics' units (mm, percent, degrees).
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from tests.geometry.test_procrustes import umeyama_reference

MM = 1000.0


def mean_or_nan(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def mpjpe(preds, target, visible=None, root=0) -> float:
    per_sample = []
    for b in range(len(preds)):
        p, t = preds[b] * MM, target[b] * MM
        if root is not None:
            p, t = p - p[root], t - t[root]
        errors = [
            np.sqrt(np.sum((p[j] - t[j]) ** 2))
            for j in range(len(p))
            if visible is None or visible[b, j]
        ]
        if errors:
            per_sample.append(np.mean(errors))
    return mean_or_nan(per_sample)


def pa_mpjpe(preds, target, visible=None) -> float:
    per_sample = []
    for b in range(len(preds)):
        keep = np.ones(preds.shape[1], bool) if visible is None else visible[b]
        if not keep.any():
            continue
        p, t = preds[b][keep] * MM, target[b][keep] * MM
        scale, rotation, translation = umeyama_reference(p, t)
        aligned = (scale * (rotation @ p.T)).T + translation
        per_sample.append(np.mean([np.linalg.norm(aligned[j] - t[j]) for j in range(len(p))]))
    return mean_or_nan(per_sample)


def joint_error_list(preds, target, visible=None, root=0) -> list[float]:
    """Root-relative errors (mm) of every visible joint, pooled."""
    errors = []
    for b in range(len(preds)):
        p, t = preds[b] * MM, target[b] * MM
        if root is not None:
            p, t = p - p[root], t - t[root]
        for j in range(len(p)):
            if visible is None or visible[b, j]:
                errors.append(float(np.linalg.norm(p[j] - t[j])))
    return errors


def pck(errors_mm: list[float], threshold: float, inclusive: bool) -> float:
    if not errors_mm:
        return math.nan
    hits = [(e <= threshold) if inclusive else (e < threshold) for e in errors_mm]
    return 100.0 * sum(hits) / len(hits)


def auc(errors_mm, max_threshold, count, inclusive, integration="mean") -> float:
    thresholds = np.linspace(0, max_threshold, count)
    curve = [pck(errors_mm, t, inclusive) for t in thresholds]
    if integration == "mean":
        return float(np.mean(curve))
    return float(np.trapezoid(curve, thresholds) / max_threshold)


def pve(preds, target, align="none", preds_root=None, target_root=None) -> float:
    per_sample = []
    for b in range(len(preds)):
        p, t = preds[b] * MM, target[b] * MM
        if align == "pelvis":
            p, t = p - preds_root[b] * MM, t - target_root[b] * MM
        elif align == "procrustes":
            scale, rotation, translation = umeyama_reference(p, t)
            p = (scale * (rotation @ p.T)).T + translation
        per_sample.append(np.mean(np.linalg.norm(p - t, axis=1)))
    return mean_or_nan(per_sample)


def angle_degrees(r1: np.ndarray, r2: np.ndarray) -> float:
    """Geodesic angle as the 3DPW evaluator computes it: |rotvec(R1 R2^T)|."""
    return math.degrees(np.linalg.norm(Rotation.from_matrix(r1 @ r2.T).as_rotvec()))


def mpjae(preds, target) -> float:
    per_sample = [
        np.mean([angle_degrees(preds[b, k], target[b, k]) for k in range(preds.shape[1])])
        for b in range(len(preds))
    ]
    return mean_or_nan(per_sample)


def pa_mpjae(preds_rot, target_rot, preds_joints, target_joints) -> float:
    per_sample = []
    for b in range(len(preds_rot)):
        _, rotation, _ = umeyama_reference(preds_joints[b], target_joints[b])
        errors = [
            angle_degrees(rotation @ preds_rot[b, k], target_rot[b, k])
            for k in range(preds_rot.shape[1])
        ]
        per_sample.append(np.mean(errors))
    return mean_or_nan(per_sample)


def voxel_iou(probabilities, target, threshold=0.5) -> float:
    per_sample = []
    for b in range(len(probabilities)):
        predicted = probabilities[b] >= threshold
        union = np.logical_or(predicted, target[b]).sum()
        if union:
            per_sample.append(np.logical_and(predicted, target[b]).sum() / union)
    return 100.0 * mean_or_nan(per_sample)


def part_voxel_iou(scores, target) -> dict[str, float]:
    labels = scores.argmax(axis=1)
    result = {}
    ious = []
    for c in range(scores.shape[1]):
        intersection = union = 0
        for b in range(len(labels)):
            intersection += np.logical_and(labels[b] == c, target[b] == c).sum()
            union += np.logical_or(labels[b] == c, target[b] == c).sum()
        iou = 100.0 * intersection / union if union else math.nan
        result[f"class_{c}"] = iou
        ious.append(iou)
    fg_i = sum(np.logical_and(labels[b] > 0, target[b] > 0).sum() for b in range(len(labels)))
    fg_u = sum(np.logical_or(labels[b] > 0, target[b] > 0).sum() for b in range(len(labels)))
    result["foreground"] = 100.0 * fg_i / fg_u if fg_u else math.nan
    result["mean"] = float(np.nanmean(ious[1:]))
    return result


def silhouette(preds, target, ignore=None) -> dict[str, float]:
    """Counts pixel by pixel over the whole set."""
    tp = fp = fn = tn = 0
    for b in range(len(preds)):
        for y in range(preds.shape[1]):
            for x in range(preds.shape[2]):
                if ignore is not None and ignore[b, y, x]:
                    continue
                p, t = bool(preds[b, y, x]), bool(target[b, y, x])
                tp += p and t
                fp += p and not t
                fn += t and not p
                tn += not p and not t
    f1_fg = 2 * tp / (2 * tp + fp + fn)
    f1_bg = 2 * tn / (2 * tn + fn + fp)
    return {
        "accuracy": 100.0 * (tp + tn) / (tp + fp + fn + tn),
        "iou_fg": 100.0 * tp / (tp + fp + fn),
        "f1_fg": 100.0 * f1_fg,
        "f1_mean": 100.0 * (f1_fg + f1_bg) / 2,
    }


def part_segmentation(preds, target, num_classes, ignore_index=255) -> dict[str, float]:
    counted = target != ignore_index
    result = {}
    ious, f1s = [], []
    for c in range(num_classes):
        tp = np.sum((preds == c) & (target == c) & counted)
        fp = np.sum((preds == c) & (target != c) & counted)
        fn = np.sum((preds != c) & (target == c) & counted)
        iou = 100.0 * tp / (tp + fp + fn) if tp + fp + fn else math.nan
        f1 = 100.0 * 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else math.nan
        result[f"iou_class_{c}"] = iou
        ious.append(iou)
        f1s.append(f1)
    result["mean_iou"] = float(np.nanmean(ious[1:]))
    result["f1_macro"] = float(np.nanmean(f1s))
    result["accuracy"] = 100.0 * np.sum((preds == target) & counted) / counted.sum()
    return result


def pckh(preds, target, visible, normaliser, threshold=0.5, inclusive=False) -> float:
    hits = []
    for b in range(len(preds)):
        for j in range(preds.shape[1]):
            if visible is None or visible[b, j]:
                ratio = np.linalg.norm(preds[b, j] - target[b, j]) / normaliser[b]
                hits.append(ratio <= threshold if inclusive else ratio < threshold)
    return 100.0 * np.mean(hits) if hits else math.nan


def depth_order(preds, target, valid, variant="sign", min_gap=0.0) -> float:
    correct = total = 0
    for b in range(len(preds)):
        people = [p for p in range(preds.shape[1]) if valid is None or valid[b, p]]
        for a_index, a in enumerate(people):
            for c in people[a_index + 1 :]:
                gt_gap, pred_gap = target[b, c] - target[b, a], preds[b, c] - preds[b, a]
                if variant == "sign":
                    if abs(gt_gap) <= min_gap:
                        continue
                    total += 1
                    correct += (gt_gap > 0 and pred_gap > 0) or (gt_gap < 0 and pred_gap < 0)
                else:

                    def relation(gap, tolerance):
                        return 0 if abs(gap) < tolerance else (1 if gap > 0 else -1)

                    total += 1
                    correct += relation(gt_gap, 0.3) == relation(pred_gap, 0.2)
    return 100.0 * correct / total if total else math.nan


def loco_image_scores(preds, target, threshold) -> tuple[float, float, float]:
    """LoCO's test_metrics.joint_det_metrics, rewritten: NaN matrix, row then column pass."""
    if len(preds) == 0 and len(target) == 0:
        return 1.0, 1.0, 1.0
    if len(preds) == 0 or len(target) == 0:
        return 0.0, 0.0, 0.0
    matrix = np.full((len(target), len(preds)), np.nan)
    for i, t in enumerate(target):
        for j, p in enumerate(preds):
            distance = np.linalg.norm(np.asarray(p[1:]) - np.asarray(t[1:]))
            if p[0] == t[0] and distance <= threshold:
                matrix[i, j] = distance

    def suppress(line):
        if np.all(np.isnan(line)):
            return np.full_like(line, np.nan)
        smallest = np.nanmin(line)
        kept, out = False, np.full_like(line, np.nan)
        for k, value in enumerate(line):
            if value == smallest and not kept:
                out[k], kept = value, True
        return out

    matrix = np.stack([suppress(row) for row in matrix])
    matrix = np.stack([suppress(col) for col in matrix.T]).T
    tp = int(sum(np.any(~np.isnan(row)) for row in matrix))
    fn = len(target) - tp
    fp = len(preds) - tp
    return tp / (tp + fp), tp / (tp + fn), 2 * tp / (2 * tp + fn + fp)


def joint_detection(preds_list, target_list, thresholds) -> dict[str, float]:
    result = {}
    for t in thresholds:
        scores = np.array(
            [loco_image_scores(p, g, t) for p, g in zip(preds_list, target_list, strict=False)]
        )
        for k, key in enumerate(("precision", "recall", "f1")):
            result[f"{key}@{t:g}"] = 100.0 * scores[:, k].mean()
    return result


# MuPoTS-3D constants written out from the MATLAB scripts (1-based there).
MUPOTS_PARENTS_1 = [2, 16, 2, 3, 4, 2, 6, 7, 15, 9, 10, 15, 12, 13, 15, 15, 2]
MUPOTS_TRAVERSAL_1 = [16, 2, 1, 17, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
MUPOTS_MATCHING_1 = list(range(2, 15))
MUPOTS_PCK_1 = list(range(1, 15))


def mupots_match(gt_2d, pred_2d, threshold=40.0) -> list[int]:
    joints = [j - 1 for j in MUPOTS_MATCHING_1]
    matched = [False] * len(pred_2d)
    matching = []
    for i in range(len(gt_2d)):
        scores = []
        for j in range(len(pred_2d)):
            if matched[j]:
                scores.append(0)
                continue
            score = 0
            for joint in joints:
                px, py = pred_2d[j][joint]
                visible = not (px == 0 and py == 0)
                dx, dy = abs(gt_2d[i][joint][0] - px), abs(gt_2d[i][joint][1] - py)
                score += visible and dx < threshold and dy < threshold
            scores.append(score)
        best = int(np.argmax(scores)) if scores else -1
        if scores and scores[best] > 0:
            matching.append(best)
            matched[best] = True
        else:
            matching.append(-1)
    return matching


def map_to_gt_bone_lengths(pred, gt) -> np.ndarray:
    mapped = pred.copy()
    for idx1 in MUPOTS_TRAVERSAL_1:
        idx, parent = idx1 - 1, MUPOTS_PARENTS_1[idx1 - 1] - 1
        gt_length = np.linalg.norm(gt[idx] - gt[parent])
        bone = pred[idx] - pred[parent]
        mapped[idx] = mapped[parent] + bone * gt_length / np.linalg.norm(bone)
    return mapped


def mupots_pck(images, threshold=150.0) -> dict[str, float]:
    """images: (pred_2d, pred_3d, gt_2d, gt_3d, sequence) with metres; official eval loop."""
    correct, annotated, matched_joints = {}, {}, {}
    pelvis = 14
    pck_joints = [j - 1 for j in MUPOTS_PCK_1]
    for pred_2d, pred_3d, gt_2d, gt_3d, seq in images:
        matching = mupots_match(gt_2d, pred_2d)
        for k, match in enumerate(matching):
            annotated[seq] = annotated.get(seq, 0) + len(pck_joints)
            if match < 0:
                continue
            gt = gt_3d[k] * MM - gt_3d[k][pelvis] * MM
            pred = pred_3d[match] * MM - pred_3d[match][pelvis] * MM
            pred = map_to_gt_bone_lengths(pred, gt)
            hits = sum(np.linalg.norm(pred[j] - gt[j]) < threshold for j in pck_joints)
            correct[seq] = correct.get(seq, 0) + hits
            matched_joints[seq] = matched_joints.get(seq, 0) + len(pck_joints)
    all_ = [100.0 * correct.get(s, 0) / annotated[s] for s in annotated]
    matched = [100.0 * correct.get(s, 0) / matched_joints[s] for s in matched_joints]
    return {"pck_all": mean_or_nan(all_), "pck_matched": mean_or_nan(matched)}


def panoptic_mpjpe(images, groups, root=0) -> dict[str, float]:
    """images: (preds (N,J,3), target (M,J,3), visible (M,J), group); CRMH's handler."""
    sums = dict.fromkeys(groups, 0.0)
    counts = dict.fromkeys(groups, 0)
    for preds, target, visible, group in images:
        if len(preds) == 0:
            continue
        shared = [
            j for j in range(target.shape[1]) if all(visible[m, j] for m in range(len(target)))
        ]
        pred_rel = [(p - p[root]) * MM for p in preds]
        for m in range(len(target)):
            gt_rel = (target[m] - target[m][root]) * MM
            distances = [np.linalg.norm((p[shared] - gt_rel[shared]).ravel()) for p in pred_rel]
            best = pred_rel[int(np.argmin(distances))]
            errors = [
                np.linalg.norm(best[j] - gt_rel[j]) * visible[m, j] for j in range(len(gt_rel))
            ]
            sums[group] += np.mean(errors)
            counts[group] += 1
    result = {g: sums[g] / counts[g] if counts[g] else math.nan for g in groups}
    result["mean"] = float(np.nanmean([result[g] for g in groups]))
    return result


def pycocotools_keypoint_stats(dataset: dict, results: list[dict]) -> list[float]:
    """COCOeval's 10 keypoint stats through pycocotools' file path: JSON annotation and results
    files written to a temporary folder and read back, as a user of pycocotools does."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with tempfile.TemporaryDirectory() as folder:
        annotation_file, results_file = Path(folder, "gt.json"), Path(folder, "dt.json")
        annotation_file.write_text(json.dumps(dataset))
        results_file.write_text(json.dumps(results))
        ground_truth = COCO(str(annotation_file))
        evaluator = COCOeval(ground_truth, ground_truth.loadRes(str(results_file)), "keypoints")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return list(evaluator.stats)
