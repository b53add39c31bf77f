"""jigsaw-kit: an offline kit for Kaggle's Jigsaw - Agile Community Rules Classification."""

__version__ = "0.1.0"
