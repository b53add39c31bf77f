"""Facts about the competition that several layers use, each stated once here.

Plain constants, no imports: `jigsaw-kit --help` and the pure budget arithmetic read them for free.
"""

from __future__ import annotations

# The hidden test's size (competition data page): the rehearsal folder (data/hidden_test.py), the bench's
# synthetic test set and the Kaggle time projections (kaggle/budget.py) all scale to it.
HIDDEN_TEST_ROWS = 54_059
