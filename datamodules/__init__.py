"""Dataset readers (native files -> canonical scene records), the crop and scene samples, the
augmentation, the cache of derived files, the DataModules, and the synthetic world's writers.

Layers (DESIGN.md): imports `body` and `geometry`, never a method. Every reader exposes named
splits and returns `SceneRecord`s at native resolution; `crop_from_scene` (one affine warp from
the original image) and `scene_sample` turn them into what the methods consume.
"""
