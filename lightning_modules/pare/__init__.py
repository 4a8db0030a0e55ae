"""PARE (Kocabas et al. ICCV 2021): part attention regressor (issue 7)."""
