"""The kit's training order: every row once per epoch, tight batches, reshuffled between epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from jigsaw_kit.methods.transformer.sampler import TightLengthSampler, padding_efficiency


def _lengths(n: int = 1900, seed: int = 0) -> list[int]:
    rng = np.random.default_rng(seed)
    return [int(x) for x in np.clip(rng.lognormal(3.8, 0.6, n), 5, 256)]


def test_each_row_once_and_only_the_last_batch_short():
    lengths = _lengths(1000)
    s = TightLengthSampler(lengths, 16, megabatch=7, generator=torch.Generator().manual_seed(1))
    batches = s.batches()
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) == 16 for b in batches[:-1]) and 0 < len(batches[-1]) <= 16
    # the index stream the DataLoader cuts into batch_size pieces gives back exactly these batches
    order = list(TightLengthSampler(lengths, 16, megabatch=7, generator=torch.Generator().manual_seed(1)))
    assert [order[k : k + 16] for k in range(0, 1000, 16)] == batches
    # longest batch first: an out-of-memory error shows at the first step
    assert max(lengths[i] for i in batches[0]) == max(lengths)


def test_tighter_than_transformers_and_still_shuffled():
    lengths = _lengths()
    g = torch.Generator().manual_seed(0)
    ours = [padding_efficiency(lengths, list(TightLengthSampler(lengths, 16, generator=g)), 16) for _ in range(3)]
    g = torch.Generator().manual_seed(0)
    hf = [
        padding_efficiency(lengths, list(LengthGroupedSampler(16, lengths=lengths, generator=g)), 16) for _ in range(3)
    ]
    assert min(ours) > max(hf) + 0.01
    g = torch.Generator().manual_seed(0)
    sampler = TightLengthSampler(lengths, 16, generator=g)
    first, second = sampler.batches(), sampler.batches()
    assert first != second  # a new epoch draws new batches
    pairs = [{(a, b) for bt in bs for a in bt for b in bt if a < b} for bs in (first, second)]
    assert len(pairs[0] & pairs[1]) / len(pairs[0]) < 0.5


def test_padding_efficiency_counts_padded_tokens():
    assert padding_efficiency([2, 4, 4, 4], [0, 1, 2, 3], 2) == 14 / 16
    assert padding_efficiency([3, 3], [0, 1], 2) == 1.0


@pytest.mark.realdata
def test_at_least_095_on_the_public_files(real_dir):
    # jigsaw-kit bench's figure for cpu-minilm (batch 16), without training anything
    from jigsaw_kit import pipeline
    from jigsaw_kit.core.checkpoints import load_tokenizer, resolve_model
    from jigsaw_kit.core.config import load_config
    from jigsaw_kit.methods.transformer.trainer import tokenize_rows

    cfg = load_config("cpu-minilm")
    rows = pipeline.build(cfg, real_dir).train
    o = cfg.options
    lengths = tokenize_rows(load_tokenizer(resolve_model(o.model)), rows, o.max_length, True)["length"]
    g = torch.Generator().manual_seed(cfg.seed)
    assert padding_efficiency(lengths, list(TightLengthSampler(lengths, o.batch_size, generator=g)), 16) >= 0.95
