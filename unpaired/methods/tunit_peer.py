"""TUNIT + ``recon_peer`` (not in the paper): |G(x, E_s(x')) - x|_1, x' a random other image of x's pseudo domain
in the batch (x itself when alone there). E_s, trained by instance contrast, carries what tells images apart (on
digits, the digit), so rebuilt from its own style x can be drawn from the style alone and translations take the
reference's digit; with a peer's style only the content code knows x's digit. Preset: ``tunit_digits``. Evidence
(MNIST -> inverted MNIST digit kept 0.68 -> 0.917): bench/results/probes/tunit_digits_config/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from unpaired.methods.base import METHODS, Step
from unpaired.methods.tunit import TUNIT, TUNITWeights


@dataclass
class TUNITPeerWeights(TUNITWeights):
    recon_peer: float = 10.0
    """|G(x, E_s(x')) - x|_1, x' a same-pseudo-domain peer of x (our choice, as tunit_digits sets it)."""


@METHODS.register("tunit_peer")
class TUNITPeer(TUNIT):
    name = "tunit_peer"
    Weights = TUNITPeerWeights
    reconstructions: ClassVar[dict[str, str]] = {**TUNIT.reconstructions, "recon_peer": "rec_peer"}

    def styles_to_decode(self, step: Step, order: Tensor) -> dict[str, Tensor]:
        """TUNIT's, and ``rec_peer`` G(x, E_s(x')): the peers' styles (``step['peers']``, their indices)."""
        styles = super().styles_to_decode(step, order)
        if self.active("recon_peer"):
            step["peers"] = same_domain_peers(step["domains"])
            styles["rec_peer"] = step["style"][step["peers"]]
        return styles


def same_domain_peers(domains: Tensor) -> Tensor:
    """For each image of a batch, the index of a random other image of its (pseudo) domain; its own index when
    no other image of the batch shares its domain."""
    same = domains[:, None] == domains[None, :]
    scores = torch.rand(same.shape, device=domains.device).masked_fill(~same, -1.0)
    scores.fill_diagonal_(-0.5)  # below any other same-domain image (scores >= 0), above other domains (-1)
    return scores.argmax(1)
