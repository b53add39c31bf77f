"""The embedding recipe (methods `hybrid` and `contrastive`) from parts, each with one job:

encoders.py    FrozenEncoder: a checkpoint and how it embeds (max_length, batch budget, backend)
tune.py        EncoderTune: the contrastive tune of the first encoder (pairs or triplets), its own options
tune_cache.py  finished tunes on disk, keyed by content, beside the embedding cache
heads.py       per-rule heads: TF-IDF LR; embedding LR (fixed C or a grid), kNN, centroid features
lookup.py      the exact lookup of texts labelled under their rule at fit
pseudo.py      the pseudo-label round, at fit, on the rows to be predicted
recipe.py      EmbeddingRecipe: the parts in sequence (fit, predict)
saved.py       a saved run: recipe.json, heads.joblib, lookup.json, encoder/
"""
