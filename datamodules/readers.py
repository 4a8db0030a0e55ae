"""Imports every reader module so that each registers its dataset id, and registers the
method-agnostic prepare steps that are not a reader's own (rendered part labels)."""

from datamodules import coco, h36m, jta, mupots, panoptic, pw3d, surreal, up3d
from datamodules.cache import register_step
from datamodules.part_labels import part_label_step

for _reader in (coco.COCOReader, h36m.H36MReader, pw3d.PW3DReader):
    register_step(_reader.dataset_id, "part_labels", part_label_step(_reader))

__all__ = ["coco", "h36m", "jta", "mupots", "panoptic", "pw3d", "surreal", "up3d"]
