"""Training order for the Trainer: length-grouped batches that pad little and still reshuffle every epoch.

Each batch pads to its longest row, so rows of similar length should share a batch; shuffling must
still change what meets what from one epoch to the next. Every epoch: a fresh random permutation,
cut into megabatches of `MEGABATCH` batches; each megabatch sorted by length and cut into batches;
the batches shuffled, the longest one first (an out-of-memory error shows at step 1, not hours in).

transformers' own LengthGroupedSampler sorts megabatches of min(rows / (4 x batch), 50) *effective*
batches (batch x grad_accum) and never shuffles the batches inside one: on the public files at batch
16 (1,872 rows), 0.94 of the computed tokens were real. Here, megabatches of 50 micro-batches (what is
actually padded) read 0.957; 100 read 0.972 and 200 read 0.986, but pairs of rows batched together
in one epoch met again in the next 19% / 32% / 43% of the time (transformers': 14%), so 50 it is.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler

MEGABATCH = 50  # batches per sorted megabatch: padding efficiency 0.957 at batch 16, shuffling kept (above)


class TightLengthSampler(Sampler[int]):
    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        megabatch: int = MEGABATCH,
        generator: torch.Generator | None = None,
    ) -> None:
        self.lengths = [int(n) for n in lengths]
        self.batch_size = max(1, int(batch_size))
        self.megabatch = max(1, int(megabatch))
        self.generator = generator  # None: torch's global RNG, which the Trainer seeds and which moves each epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        """One epoch's batches (lists of row indices), in training order."""
        n, bs = len(self.lengths), self.batch_size
        perm = torch.randperm(n, generator=self.generator).tolist()
        size = bs * self.megabatch
        full: list[list[int]] = []
        tail: list[list[int]] = []
        for start in range(0, n, size):
            chunk = sorted(perm[start : start + size], key=lambda i: -self.lengths[i])
            for k in range(0, len(chunk), bs):
                (full if k + bs <= len(chunk) else tail).append(chunk[k : k + bs])
        order = torch.randperm(len(full), generator=self.generator).tolist()
        full = [full[o] for o in order]
        if full:
            longest = max(range(len(full)), key=lambda b: self.lengths[full[b][0]])
            full[0], full[longest] = full[longest], full[0]
        # A short batch goes last: the DataLoader cuts the index stream into batch_size pieces, so a
        # short one in the middle would shift every later batch off its length group.
        return full + tail

    def __iter__(self) -> Iterator[int]:
        return iter([i for b in self.batches() for i in b])


def padding_efficiency(lengths: Sequence[int], order: Sequence[int], batch_size: int) -> float:
    """Real tokens over computed tokens when `order` is cut into batches of batch_size, each padded to its longest."""
    lens = [lengths[i] for i in order]
    padded = sum(len(c) * max(c) for c in (lens[k : k + batch_size] for k in range(0, len(lens), batch_size)))
    return sum(lens) / padded if padded else float("nan")
