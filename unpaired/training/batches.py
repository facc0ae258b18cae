"""Deterministic unpaired batches: the batch of step t is a pure function of (seed, t).

Each domain is walked through epoch by epoch in a seeded random order, independently of the other
domain (the images are unpaired); with ``aligned`` (a method trained on pairs) both domains follow the first
domain's order and take the same crop and flip, so item i of every domain stays one pair. Crop offsets and
flips come from a generator seeded by (seed, step, slot). Nothing depends on worker processes or on earlier
steps, so a run resumed at step t sees exactly the batches the uninterrupted run would have seen, and the
checkpoint needs no sampler state.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from unpaired.data.sources import ImageSource
from unpaired.images import crop_and_flip, to_float

_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: spreads consecutive seeds apart


def mix_seed(*parts: int) -> int:
    state = 0
    for part in parts:
        state = (state * _MIX + part + 1) % (2**63 - 1)
    return state


def dither_if_flat(image: Tensor, gen: torch.Generator) -> Tensor:
    """``image`` (float, [-1, 1]) plus uniform noise of up to one grey level when it is a single flat colour
    (every channel constant), else ``image`` itself, untouched (and no random draw).

    Why: a flat image stays flat through reflect-padded convolutions, so each instance norm of an encoder
    (MUNIT's, the official design) normalises a zero-variance map, whose gradient is 1/sqrt(eps) ~ 316 times
    larger. Chained over the encoder and decoder this overflowed to inf within two steps (MUNIT on maps tiles
    of open sea, resized to 64 px). The true weight gradient of a flat map is zero (the norm removes whatever
    the weights do to it), so what reached Adam was round-off noise. One grey level of noise (invisible; the
    dequantisation noise of generative models) makes the first normalisation rescale noise instead, and the
    maps after it are not flat.
    """
    flat = bool((image.amax(dim=(1, 2)) == image.amin(dim=(1, 2))).all())
    if not flat:
        return image
    return (image + (torch.rand(image.shape, generator=gen) * 2 - 1) / 127.5).clamp_(-1.0, 1.0)


class StepBatches(Dataset):
    """Map-style dataset whose item ``t`` is the dict of batches ({'a': ..., 'b': ...}) for step t.

    With ``world_size`` N > 1, process ``rank`` r gets slots r*B .. r*B+B-1 of the batch that one process
    would draw with batch size N*B, so N processes together see exactly that batch. ``labels`` names the
    domains whose labels the item also holds, as ``<domain>_labels`` (int64, from ``source.labels``; ``True``:
    every domain whose source has labels); no other label is ever read. ``aligned``: the sources hold pairs (image
    i of each is one scene), drawn together with one crop and flip.
    """

    def __init__(self, sources: dict[str, ImageSource], batch_size: int, image_size: int, seed: int,
                 flip: bool, rank: int = 0, world_size: int = 1, labels: bool | tuple[str, ...] = (),
                 aligned: bool = False) -> None:
        empty = [f"{d} ({src.name})" for d, src in sources.items() if len(src) == 0]
        if empty:
            raise ValueError(f"no images in domain {', '.join(empty)}")
        if aligned and len({len(src) for src in sources.values()}) > 1:
            sizes = ", ".join(f"{d} {len(src)}" for d, src in sources.items())
            raise ValueError(f"aligned pairs need as many images in every domain, got {sizes}")
        self.aligned = aligned
        self.sources = sources
        self.batch_size = batch_size
        self.image_size = image_size
        self.seed = seed
        self.flip = flip
        self.labels = tuple(sources) if labels is True else tuple(labels or ())
        # process `rank` of `world_size` takes its slice of the global batch of batch_size * world_size
        self.first_slot, self.global_batch = rank * batch_size, batch_size * world_size
        self._orders: dict[tuple[int, int], Tensor] = {}

    def __len__(self) -> int:
        return sys.maxsize

    def _order(self, domain: int, epoch: int, n: int) -> Tensor:
        key = (domain, epoch)
        if key not in self._orders:
            self._orders.clear()  # only the current epochs are needed
            gen = torch.Generator().manual_seed(mix_seed(self.seed, domain, epoch))
            self._orders[key] = torch.randperm(n, generator=gen)
        return self._orders[key]

    def indices(self, domain: int, step: int) -> list[int]:
        domain = 0 if self.aligned else domain  # pairs: every domain walks the first one's order
        n = len(list(self.sources.values())[domain])
        out = []
        start = step * self.global_batch + self.first_slot
        for position in range(start, start + self.batch_size):
            epoch, offset = divmod(position, n)
            out.append(int(self._order(domain, epoch, n)[offset]))
        return out

    def __getitem__(self, step: int) -> dict[str, Tensor]:
        batch = {}
        for k, (name, source) in enumerate(self.sources.items()):
            images = []
            for slot, index in enumerate(self.indices(k, step), start=self.first_slot):
                stream = 0 if self.aligned else k  # pairs: the same crop and flip for both halves
                gen = torch.Generator().manual_seed(mix_seed(self.seed, stream, step, slot, 1))
                image = to_float(crop_and_flip(source[index], self.image_size, gen, self.flip))
                images.append(dither_if_flat(image, gen))
            batch[name] = torch.stack(images)
            if name in self.labels and source.labels is not None:
                batch[f"{name}_labels"] = source.labels[self.indices(k, step)]
        return batch


def iterate_steps(batches: StepBatches, start: int, stop: int, num_workers: int) -> Iterator[dict[str, Tensor]]:
    """Batches for steps start..stop-1, decoded in ``num_workers`` background processes if > 0."""
    if num_workers <= 0:
        return (batches[t] for t in range(start, stop))
    loader = DataLoader(batches, batch_size=None, sampler=range(start, stop), num_workers=num_workers,
                        persistent_workers=False, prefetch_factor=2)
    return iter(loader)


def fixed_batch(sources: dict[str, ImageSource], count: int, image_size: int) -> dict[str, Tensor]:
    """The first ``count`` images of each domain, centre-cropped: the rows of every sample grid."""
    return {
        name: to_float(torch.stack([crop_and_flip(src[i], image_size, None, False)
                                    for i in range(min(count, len(src)))]))
        for name, src in sources.items()
    }
