"""TUNIT: truly unsupervised image-to-image translation, from one mixed collection without domain labels.

K. Baek, Y. Choi, Y. Uh, J. Yoo, H. Shim. "Rethinking the Truly Unsupervised Image-to-Image Translation".
ICCV 2021. https://arxiv.org/abs/2006.06500 (official code: github.com/clovaai/tunit).

Networks (Sec. 3, Fig. 2), in ``unpaired.nn``: the guiding network E (``nets.gen.guide``, ``GuidingNetwork``),
a VGG11-BN trunk with a domain head E_c (K logits; the pseudo domain y = argmax) and a style head E_s (the style
code s); the generator G (``nets.gen.generator``, ``AdaINGenerator``), a content encoder and an AdaIN decoder:
G(x, s) keeps the content of x and takes the style s; the discriminator D (``nets.dis``,
``MultiTaskDiscriminator``), one real/fake output per pseudo domain, of which an image of domain y uses output y.

Per step: a batch x, its augmented copy x+ (``Augmentation``), the references x~ (the batch shuffled), their
pseudo domains y and y~, s~ = E_s(x~); E' is the momentum copy of E (MoCo's key encoder) and the queue holds
its keys of earlier batches. Objective, paper symbol -> ``loss_weights`` key (default, the official value):

    lambda_MI       mi       5     -I(E_c(x), E_c(x+)), IIC's mutual information                    eq. 1
    lambda_style^E  style_e  1     InfoNCE(E_s(x), E'_s(x+), queue)                                eq. 2
    lambda_adv      gan      1     hinge: D_y~(x~) against D_y~(G(x, s~)); G also D_y(G(x, E_s(x)))  eq. 3
    (R1, w_gp)      r1       10    R1 penalty of D on the real images
    lambda_style^G  style_g  0.01  InfoNCE(E_s(G(x, s~)), E'_s(x~), queue)                         eq. 4
    lambda_rec      recon    0.1   |G(x, E_s(x)) - x|_1                                            eq. 5
    (semi, sup.)    ce       5     cross-entropy of E_c on the known labels, for x and x+ (official 5.0 * ce_loss)

L_D = gan + r1; L_G = gan + style_g + recon; L_E = L_G + mi + style_e (+ ce) (eq. 6-8). The ``gen`` group holds G
and E, so L_E reaches E through G's terms and the trainer's EMA (``train.ema_decay`` 0.999, official
``update_average``) covers both. Other symbols -> ``model`` keys: K ``k``, the InfoNCE temperature tau
``temperature``, the queue length ``queue_size``, the momentum of E' ``key_momentum``. E trains alone for the first
``warmup_steps`` (official unsupervised: 65 of 200 epochs of 1000 iterations), then jointly, with E's own terms
scaled by ``joint_guide_scale`` (official ``c_loss = 0.1 * c_loss``). E', the queue, the step count and the running
average style of each pseudo domain are buffers, updated in ``after_step``. ``model.mode``: ``unsupervised`` reads
no label; ``semi`` reads the labels of the first ``label_fraction`` of each class (official ``--p_semi``), trains
E_c with ``ce`` on them and ``mi`` on every image, and D takes the known label where there is one; ``supervised``
reads every label and replaces ``mi`` by ``ce``.

Departures from the official code, all for one trainer shared by every method: one forward pass per step
serves the D and the G/E updates (the official code updates E on its own terms first, then D, then G and E
with G's loss); Adam for every network (official: Adam for E, RMSprop for G and D; ``optim.beta1 = 0`` makes
Adam momentum-free like RMSprop), E with its own weight decay (official 0.001) and optionally its own
learning rate; the momentum encoder copies E's batch-norm statistics every step (official: once per epoch);
the queue starts with the keys of 32 images of the collection (official: one batch of 32).

An extension kept: ``tunit_peer`` (tunit_peer.py). Those measured and left out:
bench/results/probes/tunit_digits_config/README.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired.images import crop_and_flip, to_float
from unpaired.losses.adversarial import discriminator_loss, generator_loss, r1_penalty
from unpaired.losses.clustering import info_nce, mutual_information
from unpaired.losses.reconstruction import l1
from unpaired.methods.base import METHODS, Batch, Method, Step, cat_batches, split_like
from unpaired.nn.augment import Augmentation
from unpaired.nn.blocks import init_weights
from unpaired.nn.discriminators import MultiTaskDiscriminator
from unpaired.nn.generators import AdaINGenerator
from unpaired.nn.guiding import VGG11_CONVS, GuidingNetwork, KeyQueue

MODES = ("unsupervised", "semi", "supervised")
GUIDE_TERMS = ("mi", "style_e", "ce")
"""E's own terms: scaled by ``joint_guide_scale`` once joint training starts."""
QUEUE_SEED_IMAGES = 32
"""Images whose keys fill the queue before the first step (official: one batch of 32)."""


@dataclass
class TUNITConfig:
    """Defaults: the official code (clovaai/tunit main.py and models/) at 128 px; see the module docstring."""

    mode: str = "unsupervised"
    """'unsupervised' (no label is read), 'semi' (labels of ``label_fraction`` of the images) or 'supervised'."""
    label_fraction: float = 0.1
    """Semi-supervised mode: share of each class whose labels (sub-folder names) are read (official --p_semi)."""
    k: int = 10
    """Number of pseudo domains K, the outputs of E's domain head and of D (official --output_k 10)."""
    style_dim: int = 128
    """Style code size (official --sty_dim 128)."""
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
    style_e: float = 1.0
    ce: float = 5.0


def style_generator(channels: int, cfg: TUNITConfig, n_down: int) -> AdaINGenerator:
    """G: ``content`` encoder (instance norm) and ``decoder`` whose residual and upsampling blocks are AdaIN,
    with the ``mlp`` that turns a style code into their parameters (official TUNIT Generator; MUNIT's design,
    the shared ``AdaINGenerator``, without a style encoder: the styles come from E)."""
    return AdaINGenerator(channels, cfg.dim, n_down, cfg.n_res, cfg.style_dim, cfg.mlp_dim, cfg.mlp_layers, "relu",
                          "reflect", up_norm="adain")


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
    reconstructions: ClassVar[dict[str, str]] = {"recon": "rec"}
    """L1 terms against x: loss term -> the step entry that rebuilds x (``styles_to_decode`` names them)."""

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
        guide = GuidingNetwork(c, cfg.guide_dim, cfg.guide_stages, cfg.k, cfg.style_dim)
        dis = MultiTaskDiscriminator(c, image_size, cfg.k, cfg.dis_dim, cfg.dis_max_dim)
        init_weights(dis, "kaiming")
        self.nets["dis"] = dis
        self.nets["gen"] = nn.ModuleDict({"generator": generator, "guide": guide})
        self.key_encoder = GuidingNetwork(c, cfg.guide_dim, cfg.guide_stages, cfg.k, cfg.style_dim)
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
        self.queue.push(self.key_encoder.encode_style(self.augment(to_float(images).to(device))))

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
        logits, style = self.guide(x)
        # E on the augmented copy serves only the mi and ce terms: skipped when neither is active
        pairs = (self.cfg.mode != "supervised" and self.active("mi")) or (
            self.cfg.mode != "unsupervised" and self.active("ce"))
        logits_aug = self.guide(x_aug)[0] if pairs else None
        with torch.no_grad():
            keys = self.key_encoder.encode_style(x_aug)
            key_logits, key_style = self.key_encoder(x)
        domains = _with_known_labels(logits.detach().argmax(1), labels)
        step: Step = {"x": x, "x_aug": x_aug, "logits": logits, "logits_aug": logits_aug, "style": style,
                      "keys": keys, "domains": domains, "labels": labels}
        # the domain averages are kept in the momentum encoder's terms: an EMA of E like the one inference uses
        self._pending = {"keys": keys, "styles": key_style,
                         "domains": _with_known_labels(key_logits.argmax(1), labels)}
        if not self.joint:
            return step
        order = torch.randperm(len(x), device=x.device)  # references: the batch shuffled
        step.update(x_ref=x[order], domains_ref=domains[order])
        styles = self.styles_to_decode(step, order)
        if styles:
            decoded = self.generator.decode(cat_batches(*[self.generator.content(x)] * len(styles)),
                                            cat_batches(*styles.values()))
            step.update(zip(styles, split_like(decoded, list(styles.values())), strict=True))
        if self.active("style_g"):
            step["keys_ref"] = key_style[order]
            step["style_fake"] = self.guide.encode_style(step["fake"])
        return step

    def styles_to_decode(self, step: Step, order: Tensor) -> dict[str, Tensor]:
        """The style codes G decodes x's content with, by step entry, all in one decoder call; each only when a
        term with a weight above 0 reads it: ``fake`` G(x, s~), ``rec`` G(x, E_s(x))."""
        styles = {}
        if self.active("gan") or self.active("style_g"):
            styles["fake"] = step["style"][order]
        if self.active("gan") or self.active("recon"):
            styles["rec"] = step["style"]
        return styles

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
        for term, rebuilt in self.reconstructions.items():
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
        if self.cfg.mode != "supervised" and self.active("mi"):
            terms["mi"] = -mutual_information(logits.float().softmax(1), logits_aug.float().softmax(1))
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
