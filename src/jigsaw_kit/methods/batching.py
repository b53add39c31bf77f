"""Length-sorted batches filled to a token budget: what embedding and prediction both run on.

Sorting by length means each batch pads to its own longest row, not to max_length; a token
budget (rows x longest length) keeps memory flat whether a batch holds short or long comments.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def token_budget_batches(lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Indices grouped into batches of similar length, longest first, each padded size <= budget.

    A single row longer than the budget gets a batch of its own. Longest first so that an
    out-of-memory error shows up in the first batch, not after an hour.
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")  # stable: equal lengths keep file order -> deterministic
    batches, current, current_max = [], [], 0
    for i in order:
        n = int(lengths[i])
        new_max = max(current_max, n)
        if current and new_max * (len(current) + 1) > budget:
            batches.append(np.array(current))
            current, new_max = [], n
        current.append(i)
        current_max = new_max
    if current:
        batches.append(np.array(current))
    return batches


def padded_tokens(lengths: np.ndarray, batches: Sequence[np.ndarray], pad_to: int | None = None) -> int:
    """Tokens the model computes for these batches: rows x (longest row, or pad_to) per batch."""
    return int(sum(len(b) * (pad_to or int(np.max(lengths[b]))) for b in batches if len(b)))


def shard_batches(batches: Sequence[np.ndarray], lengths: np.ndarray, rank: int, world: int) -> list[np.ndarray]:
    """The contiguous run of batches rank `rank` of `world` predicts, balanced by padded tokens.

    Contiguous (not round-robin) so each shard stays length-sorted; balanced by tokens rather than
    batch count because the short tail batches hold fewer tokens than the budget.
    """
    if world <= 1:
        return list(batches)
    cost = np.array([len(b) * int(np.max(lengths[b])) for b in batches], dtype=np.float64)
    cum = np.concatenate([[0.0], np.cumsum(cost)])
    # shard k takes the batches whose token range starts in [k/world, (k+1)/world) of the total
    starts = cum[:-1]
    total = cum[-1] if len(cost) else 0.0
    owner = np.minimum((starts * world / max(total, 1.0)).astype(int), world - 1)
    return [b for b, o in zip(batches, owner) if o == rank]
