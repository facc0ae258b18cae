"""TUNIT: truly unsupervised image-to-image translation, from one mixed collection without domain labels.

K. Baek, Y. Choi, Y. Uh, J. Yoo, H. Shim. "Rethinking the Truly Unsupervised Image-to-Image Translation".
ICCV 2021. https://arxiv.org/abs/2006.06500 (official code: github.com/clovaai/tunit).

Three networks (paper Sec. 3, Fig. 2):

- the guiding network E, one trunk (VGG11 with batch norm) and two heads: the domain head E_c gives K logits,
  the pseudo domain of an image, trained by maximising the mutual information between the assignments of an
  image and of a randomly augmented copy (IIC, eq. 1); the style head E_s gives a style code, trained with a
  contrastive loss (eq. 2): the code of x must match the code of its augmented copy x+ given by a momentum
  copy of E (MoCo's key encoder) against a queue of keys of earlier batches;
- the generator G: a content encoder (instance norm, down to a 16 x 16 map) and an AdaIN decoder driven by a
  style code s through an MLP (MUNIT's design); G(x, s) keeps the content of x and takes the style s;
- a multi-task discriminator D with one real/fake output per pseudo domain; for an image of (pseudo) domain y
  only output y is used (eq. 3), so D learns K domains from E's assignments.

Per step, for a batch x, its augmented copy x+ and references x~ (the batch shuffled; y, y~ their pseudo
domains, argmax of E_c; s~ = E_s(x~)):

- ``mi``      (5, lambda_MI): -I(p(x), p(x+)), the negative mutual information (eq. 1);
- ``style_e`` (1, lambda_style^E): InfoNCE(E_s(x), E'_s(x+), queue) (eq. 2), E' the momentum encoder; with
  ``style_key_tiles`` n > 0 (not in TUNIT, off by default) the key is E'_s of x+ cut into n x n tiles shuffled.
  Why: the code must then match a view that shares only local appearance with x, so it cannot carry the digit
  (the shape), which on digits is exactly what instance contrast otherwise puts into the style;
- ``mi_over`` (5, IIC's auxiliary over-clustering, not in TUNIT): with ``over_k`` > 0, a second domain head with
  ``over_k`` outputs (more than K) on the same trunk, trained by the same -I. Off by default (``over_k`` 0).
  Why: IIC (Ji et al., Sec. 3.3) trains such a head beside the main one so that the trunk learns features for
  finer splits than K, which helps the main head's clustering; here E alone sometimes settles on the one split
  it finds first (inverted digits or not) and never separates MNIST from USPS. Only E's trunk sees this head;
  pseudo domains, D and G use the main head.
- ``ce``      (5): semi-supervised and supervised modes: cross-entropy of E_c on the known labels, for x and
  x+ (official ``train_semisupervised.py``: ``5.0 * ce_loss``);
- ``gan``     (1, lambda_adv): hinge loss of D_{y~} on real x~ against G(x, s~), and for G also D_y(G(x, s_x))
  (the official code judges the reconstruction too); R1 penalty ``r1`` (10) on the real images;
- ``recon``   (0.1, lambda_rec): |G(x, E_s(x)) - x|_1 (eq. 5);
- ``style_g`` (0.01, lambda_style^G): InfoNCE(E_s(G(x, s~)), E'_s(x~), queue): the translation carries the
  reference's style (eq. 4);
- ``cycle``   (0, not in the paper): |G(G(x, s~), E_s(x)) - x|_1, the translation taken back with x's own
  style. Off by default, as in the paper and the official code; an addition for content that must survive
  the translation (digits keeping their class), the role MUNIT's optional explicit cycle term plays there;
- ``recon_peer`` (0, not in the paper): |G(x, E_s(x')) - x|_1, x' another image of the batch that E puts in
  x's pseudo domain (x itself when it is alone there). Off by default. Why: E_s is trained by instance
  contrast, so on digits it carries the digit itself (what tells one image from another); rebuilt from its
  own style, x can be drawn from the style alone, and the decoder learns to take the shape from the style
  (a translation then draws the reference's digit, and a domain's average style draws a blur). With a peer's
  style, only the content code knows which digit x is, so the decoder must take the shape from it, and the
  style is left to say what the domain looks like.
- ``cycle_peer`` (0, not in the paper): |G(G(x, s~), E_s(x')) - x|_1, the cycle term taken back with a peer's
  style (x' as for ``recon_peer``). Off by default. Why: with x's own style the way back can draw x from the
  style alone (it carries the digit), so ``cycle`` does not ask the translation to keep x's content; with a
  peer's style only the translation's content code can say which digit x was, the role MUNIT's cycle term plays
  where the style code is too short to carry it.

L_D = gan + r1; L_G = gan + recon + style_g (+ cycle + recon_peer + cycle_peer); L_E = L_G + mi + style_e (+ ce)
(paper eq. 6-8, weights as above): E is trained by its own terms and, through the style codes it gives G, by G's. E
is trained alone for the first ``warmup_steps`` (the official unsupervised schedule: 65 of 200 epochs of 1000
iterations), then jointly, with E's own terms scaled by ``joint_guide_scale`` (official: ``c_loss = 0.1 * c_loss``).
EMA copies of G and E (``train.ema_decay`` 0.999, official ``update_average``) serve inference.

In this package's terms: the ``gen`` group holds G and E (``nets.gen.generator``, ``nets.gen.guide``), so L_E
reaches E through G's terms and the trainer's EMA covers both; the momentum encoder, the queue, the step count
and the running average style of every pseudo domain are extra state (buffers) updated in ``after_step``.
Modes (``model.mode``): ``unsupervised`` reads no label at all; ``semi`` reads the labels (sub-folder names)
of the first ``label_fraction`` of each class (official ``--p_semi``) and trains E_c with ``ce`` on them and
``mi`` on every image, D taking the known label where there is one; ``supervised`` reads every label and
replaces ``mi`` by ``ce``.

Departures from the official code, all for one trainer shared by every method: one forward pass per step
serves the D and the G/E updates (the official code updates E on its own terms first, then D, then G and E
with G's loss); Adam for every network (official: Adam for E, RMSprop for G and D; ``optim.beta1 = 0`` makes
Adam momentum-free like RMSprop), E with its own weight decay (official 0.001) and optionally its own
learning rate; the momentum encoder copies E's batch-norm statistics every step (official: once per epoch);
the queue starts with the keys of 32 images of the collection (official: one batch of 32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired.images import crop_and_flip, to_float
from unpaired.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from unpaired.losses.clustering import info_nce, mutual_information
from unpaired.losses.reconstruction import l1
from unpaired.methods.base import METHODS, Batch, Method, Step, cat_batches, split_like
from unpaired.nn.augment import Augmentation, shuffle_tiles
from unpaired.nn.blocks import ConvBlock, init_weights
from unpaired.nn.generators import AdaINGenerator

MODES = ("unsupervised", "semi", "supervised")
GUIDE_TERMS = ("mi", "mi_over", "style_e", "ce")
"""E's own terms: scaled by ``joint_guide_scale`` once joint training starts."""
QUEUE_SEED_IMAGES = 32
"""Images whose keys fill the queue before the first step (official: one batch of 32)."""
VGG11_CONVS = (1, 1, 2, 2, 2)
"""3x3 convs per stage of VGG11 (each stage ends with a 2x2 max pooling); widths dim x 1, 2, 4, 8, 8."""


@dataclass
class TUNITConfig:
    """Defaults: the official code (clovaai/tunit main.py and models/) at 128 px; see the module docstring."""

    mode: str = "unsupervised"
    """'unsupervised' (no label is read), 'semi' (labels of ``label_fraction`` of the images) or 'supervised'."""
    label_fraction: float = 0.1
    """Semi-supervised mode: share of each class whose labels (sub-folder names) are read (official --p_semi)."""
    k: int = 10
    """Number of pseudo domains K, the outputs of E's domain head and of D (official --output_k 10)."""
    over_k: int = 0
    """Outputs of E's auxiliary over-clustering head (IIC; trained by ``mi_over``); 0: no such head (TUNIT)."""
    style_dim: int = 128
    """Style code size (official --sty_dim 128)."""
    style_key_tiles: int = 0
    """With n > 0, the style head's positive key is the augmented copy cut into n x n tiles put back in a random
    order (not in TUNIT; 0: the augmented copy itself, as the paper): the style code can then only hold what the
    tiles share, local appearance, not the global shape. The domain head keeps the plain augmented copy."""
    temperature: float = 0.07
    """InfoNCE temperature (official calc_contrastive_loss temp=0.07, as MoCo)."""
    queue_size: int = 1024
    """Negative style keys kept from earlier batches (official dequeue_data K=1024)."""
    style_normalize: bool = False
    """Compare unit-length style codes in InfoNCE (MoCo); the official code compares raw codes."""
    key_momentum: float = 0.999
    """Momentum of the key encoder E' (official update_average beta=0.999)."""
    warmup_steps: int = 65_000
    """Steps E trains alone before G and D start (official unsupervised: 65 epochs x 1000 iterations; semi: 35;
    supervised: 0)."""
    joint_guide_scale: float = 0.1
    """Factor on E's own terms (mi, style_e, ce) after the warm-up (official: c_loss = 0.1 * c_loss)."""
    guide_weight_decay: float = 0.001
    """Weight decay of E (official: Adam(C, 1e-4, weight_decay=0.001)); G and D use optim.weight_decay."""
    guide_lr_scale: float = 1.0
    """E's learning rate is optim.lr times this (official: 1, the same 1e-4 as G and D)."""
    guide_dim: int = 64
    """Width of E's first stage (VGG11: 64)."""
    guide_stages: int = 5
    """VGG11 stages of E (5: all; each halves the image); images need >= 2**guide_stages pixels."""
    dim: int = 64
    """Generator width (official nf 64 below 256 px, 32 from 256 px)."""
    content_size: int = 16
    """Side of the content code: G downsamples log2(image_size / content_size) times (official s0 = 16)."""
    n_res: int = 2
    """Residual blocks of the content encoder and of the decoder (official n_res 2)."""
    mlp_dim: int = 256
    """Width of the style MLP (official nf_mlp 256, 3 layers)."""
    mlp_layers: int = 3
    dis_dim: int = 64
    """Width of D's first conv (official 64 below 256 px); doubles at every downsampling."""
    dis_max_dim: int = 1024
    """Cap on D's width (official max_conv_dim 1024)."""
    domain_style_momentum: float = 0.99
    """Running average of each pseudo domain's style codes (for translate --domain): new = m old + (1-m) batch;
    codes and domains from the momentum encoder, an EMA of E as the one inference uses."""
    aug_rotate: float = 20.0
    """Augmentation of the positive pair (official RandomAffine(20, translate=(0.1, 0.1), shear=10),
    RandomResizedCrop(scale=(0.9, 1.1), ratio=(0.9, 1.1)), ColorJitter(0.4, 0.4, 0.4, 0.125), flips)."""
    aug_translate: float = 0.1
    aug_shear: float = 10.0
    aug_scale: float = 0.1
    aug_ratio: float = 0.1
    aug_brightness: float = 0.4
    aug_contrast: float = 0.4
    aug_saturation: float = 0.4
    aug_hue: float = 0.125
    aug_flip: bool = True


@dataclass
class TUNITWeights:
    gan: float = 1.0
    r1: float = 10.0
    recon: float = 0.1
    style_g: float = 0.01
    mi: float = 5.0
    mi_over: float = 5.0
    style_e: float = 1.0
    ce: float = 5.0
    cycle: float = 0.0
    recon_peer: float = 0.0
    cycle_peer: float = 0.0


class GuidingNetwork(nn.Module):
    """E: a VGG11-BN trunk (``stages`` of 3x3 conv-BN-ReLU blocks, each ended by 2x2 max pooling), global
    average pooling, and two linear heads: ``domain`` (K logits) and ``style`` (the style code). Initialised as
    the official GuidingNet: kaiming (fan out) convs, N(0, 0.01) linear weights, zero biases. With ``over_k`` > 0
    a third linear head, ``over``, gives ``over_k`` logits for IIC's auxiliary over-clustering."""

    def __init__(self, in_channels: int, dim: int, stages: int, k: int, style_dim: int, over_k: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = in_channels
        for stage, convs in enumerate(VGG11_CONVS[:stages]):
            out = dim * min(2**stage, 8)
            for _ in range(convs):
                layers.append(ConvBlock(width, out, 3, 1, 1, "bn", "relu", "zero"))
                width = out
            layers.append(nn.MaxPool2d(2))
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.trunk = nn.Sequential(*layers)
        self.domain = nn.Linear(width, k)
        self.style = nn.Linear(width, style_dim)
        self.over = nn.Linear(width, over_k) if over_k else None
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(domain logits N x K, style codes N x style_dim)."""
        outputs = self.heads(x)
        return outputs["domain"], outputs["style"]

    def heads(self, x: Tensor) -> dict[str, Tensor]:
        """Every head's output from one pass of the trunk: 'domain', 'style' and, if there is one, 'over'."""
        features = self.trunk(x)
        outputs = {"domain": self.domain(features), "style": self.style(features)}
        if self.over is not None:
            outputs["over"] = self.over(features)
        return outputs

    def encode_style(self, x: Tensor) -> Tensor:
        return self.style(self.trunk(x))


def style_generator(channels: int, cfg: TUNITConfig, n_down: int) -> AdaINGenerator:
    """G: ``content`` encoder (instance norm) and ``decoder`` whose residual and upsampling blocks are AdaIN,
    with the ``mlp`` that turns a style code into their parameters (official TUNIT Generator; MUNIT's design,
    the shared ``AdaINGenerator``, without a style encoder: the styles come from E)."""
    return AdaINGenerator(channels, cfg.dim, n_down, cfg.n_res, cfg.style_dim, cfg.mlp_dim, cfg.mlp_layers, "relu",
                          "reflect", up_norm="adain")


class PreActivationResBlock(nn.Module):
    """(x [-> 1x1 conv] [-> avg pool]) + (LReLU -> 3x3 conv [-> avg pool] -> LReLU -> 3x3 conv), over sqrt(2):
    the residual block of the StarGAN v2 discriminator that TUNIT uses."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool) -> None:
        super().__init__()
        self.downsample = downsample
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1, bias=False) if in_channels != out_channels else None
        self.act = nn.LeakyReLU(0.2)  # not in place: x is also the shortcut

    def forward(self, x: Tensor) -> Tensor:
        skip = self.shortcut(x) if self.shortcut is not None else x
        h = self.conv1(self.act(x))
        if self.downsample:
            skip, h = F.avg_pool2d(skip, 2), F.avg_pool2d(h, 2)
        return (skip + self.conv2(self.act(h))) / math.sqrt(2)


class MultiTaskDiscriminator(nn.Sequential):
    """D: one real/fake logit per pseudo domain (N x K). A 3x3 conv, then per halving of the image a plain and
    a downsampling residual block (down to 4 x 4), LReLU, a 4x4 conv to 1 x 1, LReLU, a 1x1 conv to K outputs
    (StarGAN v2's discriminator, which TUNIT's official code uses)."""

    def __init__(self, in_channels: int, image_size: int, k: int, dim: int, max_dim: int) -> None:
        layers: list[nn.Module] = [nn.Conv2d(in_channels, dim, 3, 1, 1)]
        for _ in range(int(math.log2(image_size)) - 2):
            out = min(dim * 2, max_dim)
            layers += [PreActivationResBlock(dim, dim, False), PreActivationResBlock(dim, out, True)]
            dim = out
        layers += [nn.LeakyReLU(0.2), nn.Conv2d(dim, dim, 4), nn.LeakyReLU(0.2), nn.Conv2d(dim, k, 1), nn.Flatten()]
        super().__init__(*layers)

    def judge(self, x: Tensor, domains: Tensor) -> Tensor:
        """Logit of output ``domains[n]`` for image n (N)."""
        return self(x).gather(1, domains[:, None])[:, 0]


class KeyQueue(nn.Module):
    """The last ``size`` style keys, oldest first (MoCo's queue of negatives), in checkpointed buffers."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", torch.zeros(size, dim))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    def negatives(self) -> Tensor:
        return self.keys[:int(self.count)]

    @torch.no_grad()
    def push(self, keys: Tensor) -> None:
        """Append ``keys`` (N x dim); beyond ``size`` the oldest are dropped."""
        kept = torch.cat([self.negatives(), keys.detach().to(self.keys.dtype)])[-len(self.keys):]
        self.keys[:len(kept)] = kept
        self.count.fill_(len(kept))


@METHODS.register("tunit")
class TUNIT(Method):
    name = "tunit"
    Config = TUNITConfig
    Weights = TUNITWeights
    single_domain = True
    directions = ("a2b",)
    translate_options = frozenset({"reference", "domain", "style"})
    visual_domains = 4
    """Rows of translations into the first pseudo domains (average styles) in the training grid."""

    def __init__(self, cfg: TUNITConfig, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> None:
        check_config(cfg, image_size)
        # one collection: a translation stays in it, so 'b' (the target of direction a2b) is the same space
        channels = {"a": channels["a"], "b": channels["a"]}
        super().__init__(cfg, weights, channels, image_size)
        n_down = int(math.log2(image_size // cfg.content_size))
        self.size_multiple = 2**n_down
        c = channels["a"]
        generator = style_generator(c, cfg, n_down)
        init_weights(generator, "kaiming")
        guide = GuidingNetwork(c, cfg.guide_dim, cfg.guide_stages, cfg.k, cfg.style_dim, cfg.over_k)
        dis = MultiTaskDiscriminator(c, image_size, cfg.k, cfg.dis_dim, cfg.dis_max_dim)
        init_weights(dis, "kaiming")
        self.nets["dis"] = dis
        self.nets["gen"] = nn.ModuleDict({"generator": generator, "guide": guide})
        self.key_encoder = GuidingNetwork(c, cfg.guide_dim, cfg.guide_stages, cfg.k, cfg.style_dim, cfg.over_k)
        self.key_encoder.load_state_dict(guide.state_dict())
        self.key_encoder.requires_grad_(False)
        self.queue = KeyQueue(cfg.queue_size, cfg.style_dim)
        self.register_buffer("completed_steps", torch.zeros((), dtype=torch.long))
        self.register_buffer("domain_styles", torch.zeros(cfg.k, cfg.style_dim))
        self.register_buffer("domain_counts", torch.zeros(cfg.k, dtype=torch.long))
        self.augment = Augmentation(cfg.aug_rotate, cfg.aug_translate, cfg.aug_shear, cfg.aug_scale, cfg.aug_ratio,
                                    cfg.aug_brightness, cfg.aug_contrast, cfg.aug_saturation, cfg.aug_hue,
                                    cfg.aug_flip)
        self._pending: dict[str, Tensor] = {}  # forward_step -> after_step, within one training step

    # -- hooks -------------------------------------------------------------------------------------
    @classmethod
    def label_fraction(cls, cfg: TUNITConfig) -> float:
        if cfg.mode not in MODES:  # asked before the networks are built: name the bad mode here already
            raise ValueError(f"model.mode must be one of {', '.join(MODES)}, got '{cfg.mode}'")
        return {"unsupervised": 0.0, "semi": cfg.label_fraction, "supervised": 1.0}[cfg.mode]

    def parameter_groups(self, group: str) -> list[dict[str, Any]]:
        if group != "gen":
            return super().parameter_groups(group)
        return [{"params": list(self.generator.parameters())},
                {"params": list(self.guide.parameters()), "lr_scale": self.cfg.guide_lr_scale,
                 "weight_decay": self.cfg.guide_weight_decay}]

    @property
    def generator(self) -> AdaINGenerator:
        return self.nets["gen"]["generator"]

    @property
    def guide(self) -> GuidingNetwork:
        return self.nets["gen"]["guide"]

    @property
    def joint(self) -> bool:
        """Whether G and D train (after E's warm-up)."""
        return int(self.completed_steps) >= self.cfg.warmup_steps

    def weight_of(self, term: str) -> float:
        weight = super().weight_of(term)
        if self.joint and term.split("/")[0] in GUIDE_TERMS:
            weight *= self.cfg.joint_guide_scale
        return weight

    @torch.no_grad()
    def prepare(self, sources: dict[str, Any]) -> None:
        """Fill the queue with the keys of ``QUEUE_SEED_IMAGES`` augmented images spread over the collection, so
        the first steps already have negatives (official: initialize_queue, one batch)."""
        source = sources["a"]
        picks = torch.linspace(0, len(source) - 1, min(len(source), QUEUE_SEED_IMAGES)).round().long().unique()
        device = self.queue.keys.device
        images = torch.stack([crop_and_flip(source[int(i)], self.image_size, None, False) for i in picks])
        self.queue.push(self.key_encoder.encode_style(self.style_key_view(self.augment(to_float(images).to(device)))))

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        """Move the key encoder towards E, push this step's keys into the queue, update the domain styles."""
        self.completed_steps.fill_(step)
        momentum = self.cfg.key_momentum
        for key_p, p in zip(self.key_encoder.parameters(), self.guide.parameters(), strict=True):
            key_p.lerp_(p.detach(), 1.0 - momentum)
        for key_b, b in zip(self.key_encoder.buffers(), self.guide.buffers(), strict=True):
            key_b.copy_(b)
        pending, self._pending = self._pending, {}
        if pending:
            self.queue.push(pending["keys"])
            self._update_domain_styles(pending["styles"], pending["domains"])

    def style_key_view(self, x_aug: Tensor) -> Tensor:
        """The augmented copy as the style head's key sees it: its tiles shuffled when ``style_key_tiles`` > 0."""
        return shuffle_tiles(x_aug, self.cfg.style_key_tiles) if self.cfg.style_key_tiles else x_aug

    @torch.no_grad()
    def refresh_ema_statistics(self, ema: nn.Module, batch: Batch) -> bool:
        """E's batch norm in the EMA copy: its running statistics follow its own (averaged) weights on the
        training batches, as the live E's follow the live weights (G has no batch norm)."""
        guide = ema["guide"]
        guide.train()
        guide.trunk(batch["a"])
        guide.eval()
        return True

    def _update_domain_styles(self, styles: Tensor, domains: Tensor) -> None:
        styles = styles.float()
        for j in domains.unique().tolist():
            mean = styles[domains == j].mean(0)
            if int(self.domain_counts[j]) == 0:
                self.domain_styles[j] = mean
            else:
                self.domain_styles[j].lerp_(mean, 1.0 - self.cfg.domain_style_momentum)
            self.domain_counts[j] += int((domains == j).sum())

    # -- training ----------------------------------------------------------------------------------
    def forward_step(self, batch: Batch) -> Step:
        x = batch["a"]
        labels = batch.get("a_labels")  # present only in the semi-supervised and supervised modes
        x_aug = self.augment(x)  # always: the keys of the queue are taken from it
        heads = self.guide.heads(x)
        # E on the augmented copy serves only the clustering and ce terms: skipped when their weights are 0
        clustering = self.cfg.mode != "supervised" and (
            self.active("mi") or ("over" in heads and self.active("mi_over")))
        heads_aug = self.guide.heads(x_aug) if clustering or (
            self.cfg.mode != "unsupervised" and self.active("ce")) else {}
        logits, style, logits_aug = heads["domain"], heads["style"], heads_aug.get("domain")
        with torch.no_grad():
            keys = self.key_encoder.encode_style(self.style_key_view(x_aug))
            key_logits, key_style = self.key_encoder(x)
        domains = _with_known_labels(logits.detach().argmax(1), labels)
        step: Step = {"x": x, "x_aug": x_aug, "logits": logits, "logits_aug": logits_aug, "style": style,
                      "keys": keys, "domains": domains, "labels": labels}
        if "over" in heads:
            step.update(over=heads["over"], over_aug=heads_aug.get("over"))
        # the domain averages are kept in the momentum encoder's terms: an EMA of E like the one inference uses
        self._pending = {"keys": keys, "styles": key_style,
                         "domains": _with_known_labels(key_logits.argmax(1), labels)}
        if not self.joint:
            return step
        order = torch.randperm(len(x), device=x.device)  # references: the batch shuffled
        step.update(x_ref=x[order], domains_ref=domains[order])
        styles = {}  # each decoded only when a term with a weight above 0 reads it
        if self.active("gan") or self.active("style_g") or self.active("cycle") or self.active("cycle_peer"):
            styles["fake"] = style[order]
        if self.active("gan") or self.active("recon"):
            styles["rec"] = style
        if self.active("recon_peer") or self.active("cycle_peer"):
            step["peers"] = same_domain_peers(domains)
        if self.active("recon_peer"):
            styles["rec_peer"] = style[step["peers"]]
        if styles:
            step.update(self._decode_with_each(self.generator.content(x), styles))
        back = {}  # the translation's content decoded back: with x's own style, with a peer's
        if self.active("cycle"):
            back["cyc"] = style
        if self.active("cycle_peer"):
            back["cyc_peer"] = style[step["peers"]]
        if back:
            step.update(self._decode_with_each(self.generator.content(step["fake"]), back))
        if self.active("style_g"):
            step["keys_ref"] = key_style[order]
            step["style_fake"] = self.guide.encode_style(step["fake"])
        return step

    def _decode_with_each(self, content: Tensor, styles: dict[str, Tensor]) -> dict[str, Tensor]:
        """``content`` decoded with each named batch of style codes, in one decoder call."""
        decoded = self.generator.decode(cat_batches(*[content] * len(styles)), cat_batches(*styles.values()))
        return dict(zip(styles, split_like(decoded, [content] * len(styles)), strict=True))

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        if group == "dis":
            return self._discriminator_terms(step) if self.joint else {}
        terms = self._guide_terms(step)
        if not self.joint:
            return terms
        dis: MultiTaskDiscriminator = self.nets["dis"]
        if self.active("gan"):
            judged = dis.judge(cat_batches(step["fake"], step["rec"]),
                               cat_batches(step["domains_ref"], step["domains"]))
            on_fake, on_rec = split_like(judged, [step["fake"], step["rec"]])
            terms["gan/ref"] = generator_loss(on_fake, "hinge")
            terms["gan/rec"] = generator_loss(on_rec, "hinge")
        for term, rebuilt in RECONSTRUCTIONS.items():
            if self.active(term):
                terms[term] = l1(step[rebuilt], step["x"])
        if self.active("style_g"):
            terms["style_g"] = self._contrast(step["style_fake"], step["keys_ref"])
        return terms

    def _contrast(self, query: Tensor, key: Tensor) -> Tensor:
        return info_nce(query, key, self.queue.negatives(), self.cfg.temperature, self.cfg.style_normalize)

    def _guide_terms(self, step: Step) -> dict[str, Tensor]:
        terms: dict[str, Tensor] = {}
        logits, logits_aug, labels = step["logits"], step["logits_aug"], step["labels"]
        for term, (head, head_aug) in CLUSTERINGS.items():
            if self.cfg.mode != "supervised" and head in step and self.active(term):
                terms[term] = -mutual_information(step[head].float().softmax(1), step[head_aug].float().softmax(1))
        if self.cfg.mode != "unsupervised" and self.active("ce"):
            known = labels >= 0
            if known.any():
                terms["ce"] = (F.cross_entropy(logits[known].float(), labels[known])
                               + F.cross_entropy(logits_aug[known].float(), labels[known]))
            else:  # no labelled image in this batch: a zero that keeps the term in the logs
                terms["ce"] = logits.sum() * 0.0
        if self.active("style_e"):
            terms["style_e"] = self._contrast(step["style"], step["keys"])
        return terms

    def _discriminator_terms(self, step: Step) -> dict[str, Tensor]:
        dis: MultiTaskDiscriminator = self.nets["dis"]
        adversarial, penalty = self.active("gan"), self.active("r1")
        terms: dict[str, Tensor] = {}
        if not (adversarial or penalty):  # D has no term this run: no forward at all
            return terms
        real = step["x_ref"].detach().requires_grad_(penalty)
        on_real = dis.judge(real, step["domains_ref"])  # the R1 penalty needs D on the reals only
        if adversarial:
            on_fake = dis.judge(step["fake"].detach(), step["domains_ref"])
            terms["gan"] = discriminator_loss(on_real, on_fake, "hinge")
        if penalty:
            terms["r1"] = r1_penalty(on_real, real)
        return terms

    # -- inference ---------------------------------------------------------------------------------
    def domain_probabilities_and_styles(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """E's soft assignment to the K pseudo domains (N x K) and style codes (N x style_dim) of images x."""
        logits, style = self.guide(x)
        return logits.float().softmax(1), style

    def domain_style(self, domain: int) -> Tensor:
        """The running average style code of pseudo domain ``domain`` over training (1 x style_dim)."""
        k = self.cfg.k
        if not 0 <= domain < k:
            raise ValueError(f"domain must be within 0..{k - 1} (this model has K = {k} pseudo domains), got {domain}")
        if int(self.domain_counts[domain]) == 0:
            seen = [j for j in range(k) if int(self.domain_counts[j]) > 0]
            raise ValueError(f"pseudo domain {domain} was never assigned a training image, so it has no average "
                             f"style; domains with images: {', '.join(map(str, seen)) or 'none yet'}")
        return self.domain_styles[domain][None]

    def encode_style(self, domain: str, x: Tensor) -> Tensor:
        """E_s(x): the style codes (N x style_dim) of images of the collection (``domain`` 'a' or 'b', the same
        space: a translation stays in the collection)."""
        if domain not in ("a", "b"):
            raise ValueError(f"domain must be 'a' or 'b' (tunit has one collection), got '{domain}'")
        return self.guide.encode_style(x)

    def translate_with_styles(self, x: Tensor, direction: str, styles: Tensor, paired: bool = False) -> Tensor:
        """Every input with every style code (K x style_dim): N*K images, input-major (``out[i * K + k]``); with
        ``paired``, input i with code i only (N codes, N images). ``direction``: a2b, the only one."""
        self._check_direction(direction)
        return self.generator.decode_with_styles(self.generator.content(x), styles, paired)

    def _check_direction(self, direction: str) -> None:
        if direction != "a2b":
            raise ValueError(f"tunit translates within its one collection (direction a2b; the target is given by "
                             f"a reference or a domain), not {direction}")

    def translate(self, x: Tensor, direction: str = "a2b", reference: Tensor | None = None,
                  domain: int | None = None, style: Tensor | None = None) -> Tensor:
        """x (N x C x H x W, from the collection) -> translations, input-major. The target style (one of):

        - ``reference``: R example images; out[i * R + r] is input i in the style of reference r (E_s);
        - ``domain``: pseudo domain j: its average style code over training (one output per input);
        - ``style``: explicit codes, K x style_dim.
        """
        self._check_direction(direction)
        chosen = [name for name, given in (("reference", reference), ("domain", domain), ("style", style))
                  if given is not None]
        if len(chosen) != 1:
            raise ValueError("tunit.translate: give exactly one of reference (an example image), domain (a pseudo "
                             f"domain index) or style; got {', '.join(chosen) or 'none'}")
        if reference is not None:
            if reference.dim() == 3:
                reference = reference[None]
            if reference.shape[1] != self.channels["a"]:
                raise ValueError(f"reference images must have {self.channels['a']} channels, got {reference.shape[1]}")
            codes = self.encode_style("b", reference.to(x.device))
        elif domain is not None:
            codes = self.domain_style(int(domain))
        else:
            codes = style
        return self.translate_with_styles(x, direction, codes)

    @torch.no_grad()
    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Rows: x; references (x shifted by one); x in each reference's style; x reconstructed from its own
        style; x in the average style of each of the first ``visual_domains`` pseudo domains seen so far."""
        x = batch["a"]
        reference = x.roll(1, 0)
        _, styles = self.guide(torch.cat([x, reference]))
        own, referenced = styles.split(len(x))
        content = self.generator.content(x)
        rows = {"x": x, "reference": reference, "x->ref": self.generator.decode(content, referenced),
                "x rebuilt": self.generator.decode(content, own)}
        for j in range(min(self.cfg.k, self.visual_domains)):
            if int(self.domain_counts[j]) > 0:
                code = self.domain_styles[j][None].expand(len(x), -1).to(content.dtype)
                rows[f"domain {j}"] = self.generator.decode(content, code)
        return rows


# IIC terms: loss term -> the step entries of a head's logits for x and for x+ (the over head only with over_k > 0)
CLUSTERINGS = {"mi": ("logits", "logits_aug"), "mi_over": ("over", "over_aug")}
# L1 terms against x: loss term -> the step entry that rebuilds x
RECONSTRUCTIONS = {"recon": "rec", "cycle": "cyc", "recon_peer": "rec_peer", "cycle_peer": "cyc_peer"}


def same_domain_peers(domains: Tensor) -> Tensor:
    """For each image of a batch, the index of a random other image of its (pseudo) domain; its own index when
    no other image of the batch shares its domain."""
    same = domains[:, None] == domains[None, :]
    scores = torch.rand(same.shape, device=domains.device).masked_fill(~same, -1.0)
    scores.fill_diagonal_(-0.5)  # below any other same-domain image (scores >= 0), above other domains (-1)
    return scores.argmax(1)


def _with_known_labels(assigned: Tensor, labels: Tensor | None) -> Tensor:
    """Pseudo domains, replaced by the label where one is known (semi-supervised and supervised modes)."""
    return assigned if labels is None else torch.where(labels >= 0, labels, assigned)


def check_config(cfg: TUNITConfig, image_size: int) -> None:
    """Mode, K and the image size suit the networks; a bad value is named in a ValueError."""
    if cfg.mode not in MODES:
        raise ValueError(f"model.mode must be one of {', '.join(MODES)}, got '{cfg.mode}'")
    if cfg.mode == "semi" and not 0.0 < cfg.label_fraction < 1.0:
        raise ValueError(f"model.label_fraction must be within (0, 1) in semi mode, got {cfg.label_fraction}")
    if cfg.k < 1 or cfg.style_dim < 1 or cfg.queue_size < 1:
        raise ValueError("model.k, model.style_dim and model.queue_size must be >= 1")
    if cfg.over_k < 0:
        raise ValueError(f"model.over_k must be >= 0 (0: no over-clustering head), got {cfg.over_k}")
    if cfg.style_key_tiles < 0 or (cfg.style_key_tiles and image_size % cfg.style_key_tiles):
        raise ValueError(f"model.style_key_tiles must be 0 (off) or divide data.image_size={image_size} into equal "
                         f"tiles, got {cfg.style_key_tiles}")
    if not 1 <= cfg.guide_stages <= len(VGG11_CONVS):
        raise ValueError(f"model.guide_stages must be within 1..{len(VGG11_CONVS)}, got {cfg.guide_stages}")
    if image_size < 2**cfg.guide_stages:
        raise ValueError(f"data.image_size={image_size} is too small for model.guide_stages={cfg.guide_stages} "
                         f"(needs >= {2**cfg.guide_stages})")
    ratio = image_size / cfg.content_size
    if image_size < 8 or ratio < 1 or ratio != 2 ** round(math.log2(ratio)):
        raise ValueError(f"data.image_size={image_size} must be >= 8 and model.content_size={cfg.content_size} "
                         "times a power of 2 (the generator halves the image down to the content code), e.g. "
                         "32, 64 or 128 with content_size 16")
    if image_size & (image_size - 1):
        raise ValueError(f"data.image_size={image_size} must be a power of 2 (the discriminator halves it to 4x4)")
    if not 0.0 <= cfg.key_momentum < 1.0:
        raise ValueError(f"model.key_momentum must be within [0, 1), got {cfg.key_momentum}")
