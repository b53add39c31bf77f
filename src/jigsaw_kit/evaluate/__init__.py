"""Judging methods honestly: leak-free cross-validation (cv.py), per-rule rank blends (blend.py),
the markdown report with figures (report.py)."""
