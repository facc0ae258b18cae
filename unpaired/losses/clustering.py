"""Losses that discover domains and styles without labels: IIC's mutual information and InfoNCE.

Both are the guiding network's objectives in TUNIT (K. Baek, Y. Choi, Y. Uh, J. Yoo, H. Shim, "Rethinking the
Truly Unsupervised Image-to-Image Translation", ICCV 2021, https://arxiv.org/abs/2006.06500, Sec. 3.1):

- ``mutual_information``: Invariant Information Clustering (X. Ji, J. F. Henriques, A. Vedaldi, ICCV 2019).
  For an image x and a randomly augmented copy x+, the domain head gives soft assignments p(x), p(x+) over K
  domains; their K x K joint distribution over a batch is P = (1/N) sum_n p(x_n) p(x+_n)^T, made symmetric,
  and I(P) = sum_ij P_ij ln(P_ij / (P_i P_j)) with the marginals P_i = sum_j P_ij, P_j = sum_i P_ij. It is
  largest, ln K, when every image is assigned with confidence to the same domain as its augmented copy and the
  K domains are equally used; TUNIT maximises it (the loss is -I).
- ``info_nce``: the contrastive loss of MoCo (K. He et al., CVPR 2020), with which TUNIT trains the style head
  (L_style^E: query E_s(x), positive key E_s(x+) of the momentum encoder, negatives: a queue of keys of
  earlier batches) and the generator (L_style^G: query E_s(G(x, s~)), positive key the reference's code s~).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

EPS = 1e-10
"""Floor on probabilities before the logarithm (as IIC's code): P_ij = 0 terms then add 0, not NaN."""


def joint_distribution(p: Tensor, q: Tensor) -> Tensor:
    """K x K joint distribution of two soft assignments (N x K each, rows summing to 1) of the same images:
    the mean of the outer products p_n q_n^T, symmetrised ((P + P^T) / 2, the pair is unordered) and
    normalised to sum 1 (IIC eq. 3)."""
    if p.shape != q.shape or p.dim() != 2:
        raise ValueError(f"assignments must be two N x K tensors of one shape, got {tuple(p.shape)} and "
                         f"{tuple(q.shape)}")
    joint = p.float().t() @ q.float() / p.shape[0]
    joint = (joint + joint.t()) / 2
    return joint / joint.sum()


def mutual_information_of_joint(joint: Tensor, eps: float = EPS) -> Tensor:
    """I(P) = sum_ij P_ij (ln P_ij - ln P_i - ln P_j) for a K x K joint distribution P (nats)."""
    row = joint.sum(1, keepdim=True)
    column = joint.sum(0, keepdim=True)
    floor = joint.new_tensor(eps)
    return (joint * (joint.clamp_min(floor).log() - row.clamp_min(floor).log()
                     - column.clamp_min(floor).log())).sum()


def mutual_information(p: Tensor, q: Tensor) -> Tensor:
    """I between the domain assignments ``p`` of images and ``q`` of their augmented copies (N x K softmax
    outputs): TUNIT's L_MI (eq. 1), to be maximised."""
    return mutual_information_of_joint(joint_distribution(p, q))


def info_nce(query: Tensor, key: Tensor, negatives: Tensor, temperature: float = 0.07,
             normalize: bool = False) -> Tensor:
    """-log( exp(q.k+ / t) / (exp(q.k+ / t) + sum_j exp(q.k-_j / t)) ), averaged over the batch.

    ``query``, ``key``: N x D (row n of ``key`` is the positive of row n of ``query``; it is detached: keys come
    from the momentum encoder); ``negatives``: M x D (M may be 0). ``normalize`` puts every code on the unit
    sphere first, as MoCo does; TUNIT's official code (clovaai/tunit, tools/ops.py calc_contrastive_loss)
    compares raw codes, which is the default here.
    """
    if query.dim() != 2 or key.shape != query.shape or negatives.dim() != 2 or negatives.shape[1] != query.shape[1]:
        raise ValueError(f"info_nce needs query and key N x D and negatives M x D, got {tuple(query.shape)}, "
                         f"{tuple(key.shape)}, {tuple(negatives.shape)}")
    query, key, negatives = query.float(), key.detach().float(), negatives.detach().float()
    if normalize:
        query, key, negatives = F.normalize(query, dim=1), F.normalize(key, dim=1), F.normalize(negatives, dim=1)
    positive = (query * key).sum(1, keepdim=True)
    logits = torch.cat([positive, query @ negatives.t()], 1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(query), dtype=torch.long, device=query.device))
