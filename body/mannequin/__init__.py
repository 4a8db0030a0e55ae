"""The mannequin: an SMPL-format body model the suite generates itself (see build.py)."""

from body.mannequin.build import build_mannequin, make_mannequin

__all__ = ["build_mannequin", "make_mannequin"]
