"""Competition data, one way: locate + read + validate (competition.py) -> melt + dedup + template
(prep.py) -> processed datasets (dataset.py); leak-free CV folds (folds.py); the checked submission
(submission.py)."""
