"""MUNIT: Multimodal Unsupervised Image-to-Image Translation.

X. Huang, M.-Y. Liu, S. Belongie, J. Kautz. ECCV 2018. https://arxiv.org/abs/1804.04732

Each domain i has an auto-encoder: a content encoder E_i^c, a style encoder E_i^s and a decoder G_i. The
content code c = E_i^c(x) is a spatial feature map meant to be shared by both domains; the style code
s = E_i^s(x) is a small vector (style_dim 8) whose prior in each domain is N(0, I). Translation a->b keeps
the content and draws the style: x_ab = G_b(E_a^c(x_a), s_b) with s_b ~ N(0, I) (one input, many outputs),
or s_b = E_b^s(y) for an example y of domain b (reference-guided). G_i's residual blocks use AdaIN, whose
per-channel scale and shift an MLP computes from s (paper Sec. 3.2, eq. 7).

Code names (domain 1 = ``a``, 2 = ``b``; the same with a and b swapped):

- ``c_a`` = E_a^c(x_a); ``s_a_prime`` = E_a^s(x_a), the style encoded from the image (the paper's s_1)
- ``s_b`` ~ N(0, t^2 I), t = ``model.train_style_std`` (1 by default: the prior): the random style of the
  step's a->b translations; ``x_ab`` = G_b(c_a, s_b)
- ``x_aa`` = G_a(c_a, s_a_prime): the within-domain reconstruction
- ``c_ab``, ``s_ab`` = E_b^c(x_ab), E_b^s(x_ab): the translation re-encoded (the paper's c^_1, s^_2)
- ``x_aba`` = G_a(c_ab, s_a_prime): the style-augmented cycle (paper Sec. 4)

Objective (paper eq. 1-5), with the term names used as ``loss_weights`` keys; ``term/d`` is about domain d:

- ``gan``     (1): L_GAN^{x_d}: D_d against the translations into d (LSGAN in the official code)
- ``recon_x`` (10, lambda_x): L_recon^{x_d} = |G_d(E_d^c(x_d), E_d^s(x_d)) - x_d|_1
- ``recon_c`` (1, lambda_c): L_recon^{c_d} = |E_o^c(G_o(c_d, s_o)) - c_d|_1, o the other domain
- ``recon_s`` (1, lambda_s): L_recon^{s_d} = |E_d^s(G_d(c_o, s_d)) - s_d|_1
- ``cyc_x``   (0): explicit cycle |x_dod - x_d|_1 (official ``recon_x_cyc_w``: 0 in the edges2* configs, 10 in
  some others)
- ``vgg``     (0): domain-invariant perceptual loss between each translation and its source image:
  instance-normalised VGG16 features (official ``vgg_w``; the paper uses it for high-resolution data).
  VGG16 weights are read from ``model.vgg_weights`` (see ``unpaired.nn.vgg``), never downloaded
- ``gp``      WGAN-GP penalty weight, used only with ``gan_type: wgan-gp``

Defaults are the official implementation's (github.com/NVlabs/MUNIT, configs/edges2handbags_folder.yaml and
networks.py): gen dim 64, style_dim 8, mlp_dim 256 (3 layers), content encoder with 2 downsamplings and 4
residual blocks (instance norm), style encoder with 4 downsamplings and no normalisation, reflect padding,
ReLU, kaiming init; discriminators 3 scales x 4 layers, dim 64, LeakyReLU, LSGAN, gaussian init.

``model.shared_blocks`` (0 = the official MUNIT, which shares nothing) makes the last residual blocks of the two
content encoders and the first AdaIN residual blocks of the two decoders one set of weights, UNIT's
weight-sharing of high-level layers (Liu, Breuel, Kautz, NeurIPS 2017, Sec. 2) applied to MUNIT's content path:
the shared layers read both domains' content codes alike, which ties the two content spaces together (each
decoder's AdaIN parameters still come from its own MLP and style code). An addition of this package.

One departure from the official trainer: each step decodes every translation once, for both the
discriminator and the generator update (the official code draws new styles and decodes again for the
discriminator). Terms with weight 0 skip their work: the style encoders run on real images only for
``recon_x``/``cyc_x``, the translations are re-encoded only for ``recon_c``/``recon_s``/``cyc_x``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from unpaired.losses.perceptual import domain_invariant_perceptual
from unpaired.losses.reconstruction import l1
from unpaired.methods.base import (
    DOMAINS,
    METHODS,
    Batch,
    Method,
    MultiScaleGANConfig,
    Step,
    adversarial_terms,
    cat_batches,
    check_gan_setup,
    domain_discriminators,
    split_like,
)
from unpaired.nn.blocks import ConvBlock, init_weights
from unpaired.nn.generators import AdaINGenerator
from unpaired.nn.vgg import LAYERS, layer_stride, load_vgg16_features

PAIRS = (("a", "b"), ("b", "a"))  # (source, target) of the two translations


@dataclass
class MUNITConfig(MultiScaleGANConfig):
    """``n_down``/``n_res``: downsamplings and residual blocks of the content encoder (the decoder mirrors
    them, with AdaIN in its residual blocks)."""

    style_dim: int = 8
    mlp_dim: int = 256
    mlp_layers: int = 3
    style_n_down: int = 4
    """Stride-2 convs of the style encoder: the first 2 double the width, the rest keep it (official: 4)."""
    shared_blocks: int = 0
    """Residual blocks shared by the two domains at the end of the content encoders and at the start of the
    decoders (UNIT's weight sharing; 0 = none, the official MUNIT)."""
    vgg_weights: str | None = None
    """A VGG16 state_dict file (torchvision layout) for the ``vgg`` term; needed only when its weight is > 0."""
    vgg_layer: str = "relu5_3"
    """VGG16 layer the perceptual term compares (official: relu5_3)."""
    train_style_std: float = 1.0
    """Standard deviation of the random styles the translations are trained with (official: 1, the prior
    N(0, I)); above 1 the decoder also meets codes from the prior's tails, which sampling at test time draws."""


@dataclass
class MUNITWeights:
    gan: float = 1.0
    recon_x: float = 10.0
    recon_s: float = 1.0
    recon_c: float = 1.0
    cyc_x: float = 0.0
    vgg: float = 0.0
    gp: float = 10.0


class StyleEncoder(nn.Sequential):
    """x -> style code (N x style_dim): a 7x7 conv, ``n_down`` 4x4 stride-2 convs (the first two double the
    width, the others keep it), global average pooling and a 1x1 conv. No normalisation: the feature
    statistics it would remove are what style is made of (NVlabs/MUNIT networks.py, StyleEncoder)."""

    def __init__(self, in_channels: int, dim: int, style_dim: int, n_down: int = 4, activation: str = "relu",
                 pad_type: str = "reflect") -> None:
        layers: list[nn.Module] = [ConvBlock(in_channels, dim, 7, 1, 3, "none", activation, pad_type)]
        for i in range(n_down):
            out = dim * 2 if i < 2 else dim
            layers.append(ConvBlock(dim, out, 4, 2, 1, "none", activation, pad_type))
            dim = out
        layers += [nn.AdaptiveAvgPool2d(1), nn.Conv2d(dim, style_dim, 1)]
        super().__init__(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return super().forward(x).flatten(1)


def domain_generator(channels: int, cfg: MUNITConfig) -> AdaINGenerator:
    """One domain's auto-encoder: ``content`` (E^c), ``style`` (E^s), ``decoder`` (G) and the ``mlp`` that
    turns a style code into the decoder's AdaIN parameters (the content + AdaIN generator TUNIT shares)."""
    act, pad = cfg.activation, cfg.pad_type
    return AdaINGenerator(channels, cfg.dim, cfg.n_down, cfg.n_res, cfg.style_dim, cfg.mlp_dim, cfg.mlp_layers, act,
                          pad, style_encoder=lambda: StyleEncoder(channels, cfg.dim, cfg.style_dim, cfg.style_n_down,
                                                                  act, pad))


def share_residual_blocks(first: AdaINGenerator, second: AdaINGenerator, count: int) -> None:
    """Make ``second`` use ``first``'s last ``count`` content-encoder residual blocks and first ``count``
    decoder residual blocks (the same modules: one set of weights, counted once by ``parameters()``)."""
    encoder_blocks, decoder_blocks = first.content[-1], first.decoder[0]
    n = len(encoder_blocks)
    for i in range(n - count, n):
        second.content[-1][i] = encoder_blocks[i]
    for i in range(count):
        second.decoder[0][i] = decoder_blocks[i]


@METHODS.register("munit")
class MUNIT(Method):
    name = "munit"
    Config = MUNITConfig
    Weights = MUNITWeights
    visual_styles = 3
    """Random-style rows per direction in the training grid."""
    visual_names = ("x_a", *(f"x_ab_s{k}" for k in range(visual_styles)), "x_ab_ref",
                    "x_b", *(f"x_ba_s{k}" for k in range(visual_styles)), "x_ba_ref")
    translate_options = frozenset({"styles", "reference", "style", "interpolate", "seed"})

    def __init__(self, cfg: MUNITConfig, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> None:
        super().__init__(cfg, weights, channels, image_size)
        check_gan_setup(cfg, image_size)
        if image_size < 2**cfg.style_n_down:
            raise ValueError(f"data.image_size={image_size} is too small for model.style_n_down={cfg.style_n_down} "
                             f"(needs >= {2**cfg.style_n_down})")
        if cfg.style_dim < 1 or cfg.mlp_layers < 1:
            raise ValueError("model.style_dim and model.mlp_layers must be >= 1")
        if not 0 <= cfg.shared_blocks <= cfg.n_res:
            raise ValueError(f"model.shared_blocks must be within 0..n_res={cfg.n_res}, got {cfg.shared_blocks}")
        if not cfg.train_style_std > 0:
            raise ValueError(f"model.train_style_std must be > 0, got {cfg.train_style_std}")
        if self.active("vgg"):
            if not cfg.vgg_weights:
                raise ValueError("loss_weights.vgg > 0 needs model.vgg_weights: a VGG16 state_dict file "
                                 "(torchvision layout); weights are never downloaded")
            if cfg.vgg_layer not in LAYERS:
                raise ValueError(f"model.vgg_layer must be one of {', '.join(LAYERS)}, got '{cfg.vgg_layer}'")
            if image_size // layer_stride(cfg.vgg_layer) < 2:
                raise ValueError(f"data.image_size={image_size} is too small for model.vgg_layer={cfg.vgg_layer} "
                                 f"(its feature maps need >= 2x2 for instance norm: image_size >= "
                                 f"{2 * layer_stride(cfg.vgg_layer)})")
        self.size_multiple = 2**cfg.n_down
        gen = nn.ModuleDict({d: domain_generator(channels[d], cfg) for d in DOMAINS})
        share_residual_blocks(gen["a"], gen["b"], cfg.shared_blocks)
        dis = domain_discriminators(cfg, {d: channels[d] for d in DOMAINS})
        init_weights(gen, cfg.init)
        init_weights(dis, "gaussian")  # as the official trainer does for its discriminators
        self.nets["dis"] = dis
        self.nets["gen"] = gen
        object.__setattr__(self, "_vgg", None)  # frozen, loaded on demand: not a submodule, not checkpointed

    # -- networks ----------------------------------------------------------------------------------
    def encode_content(self, domain: str, x: Tensor) -> Tensor:
        """E_domain^c(x): N x dim*2**n_down x H/2**n_down x W/2**n_down."""
        return self.nets["gen"][domain].content(x)

    def encode_style(self, domain: str, x: Tensor) -> Tensor:
        """E_domain^s(x): N x style_dim."""
        return self.nets["gen"][domain].style(x)

    def decode(self, domain: str, pairs: list[tuple[Tensor, Tensor]]) -> list[Tensor]:
        """[(c, s)] -> [G_domain(c, s)], in one decoder call on all pairs concatenated."""
        contents = [c for c, _ in pairs]
        out = self.nets["gen"][domain].decode(cat_batches(*contents), cat_batches(*(s for _, s in pairs)))
        return split_like(out, contents)

    def sample_styles(self, count: int, seed: int | None = None, device: torch.device | str = "cpu") -> Tensor:
        """``count`` style codes from the prior N(0, I); from a private generator when ``seed`` is given
        (drawn on the CPU, so a seed gives the same codes on every device)."""
        if seed is None:
            return torch.randn(count, self.cfg.style_dim, device=device)
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(count, self.cfg.style_dim, generator=gen).to(device)

    def _perceptual_features(self, device: torch.device) -> Any:
        if self._vgg is None:
            object.__setattr__(self, "_vgg", load_vgg16_features(self.cfg.vgg_weights, (self.cfg.vgg_layer,)))
        if self._vgg.mean.device != device:
            self._vgg.to(device)
        return self._vgg

    def prepare(self, sources: dict[str, Any]) -> None:
        """Load the VGG weights of the perceptual term now, so a bad path fails before the run starts."""
        if self.active("vgg"):
            self._perceptual_features(next(self.parameters()).device)

    # -- training ----------------------------------------------------------------------------------
    def forward_step(self, batch: Batch) -> Step:
        gen = self.nets["gen"]
        x = {"a": batch["a"], "b": batch["b"]}
        step: Step = {"x_a": x["a"], "x_b": x["b"]}
        recon_x, cyc_x = self.active("recon_x"), self.active("cyc_x")
        for d in DOMAINS:
            step[f"c_{d}"] = gen[d].content(x[d])
            if recon_x or cyc_x:
                step[f"s_{d}_prime"] = gen[d].style(x[d])
        # the styles of the translations, the prior's draws scaled by train_style_std: s_b for x_ab (one per x_a)
        for source, target in PAIRS:
            step[f"s_{target}"] = self.cfg.train_style_std * self.sample_styles(len(x[source]), device=x[source].device)
        for source, target in PAIRS:  # decode into `target`: the translation, and the reconstruction
            pairs = [(step[f"c_{source}"], step[f"s_{target}"])]
            if recon_x:
                pairs.append((step[f"c_{target}"], step[f"s_{target}_prime"]))
            decoded = self.decode(target, pairs)
            step[f"x_{source}{target}"] = decoded[0]
            if recon_x:
                step[f"x_{target}{target}"] = decoded[1]
        recon_c, recon_s = self.active("recon_c"), self.active("recon_s")
        for source, target in PAIRS:  # re-encode the translations
            x_st = step[f"x_{source}{target}"]
            if recon_c or cyc_x:
                step[f"c_{source}{target}"] = gen[target].content(x_st)
            if recon_s:
                step[f"s_{source}{target}"] = gen[target].style(x_st)
        if cyc_x:
            for source, target in PAIRS:
                step[f"x_{source}{target}{source}"] = gen[source].decode(step[f"c_{source}{target}"],
                                                                         step[f"s_{source}_prime"])
        return step

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        real = {"a": step["x_a"], "b": step["x_b"]}
        fake = {"a": step["x_ba"], "b": step["x_ab"]}  # translations into each domain
        kind = self.cfg.gan_type
        if group == "dis":
            return adversarial_terms(group, self.nets["dis"], real, fake, kind,
                                     penalty=kind == "wgan-gp" and self.active("gp"), adversarial=self.active("gan"))
        terms: dict[str, Tensor] = {}
        if self.active("gan"):
            terms.update(adversarial_terms(group, self.nets["dis"], real, fake, kind))
        for source, target in PAIRS:
            s, t = source, target
            if self.active("recon_x"):
                terms[f"recon_x/{s}"] = l1(step[f"x_{s}{s}"], step[f"x_{s}"])
            if self.active("recon_c"):
                terms[f"recon_c/{s}"] = l1(step[f"c_{s}{t}"], step[f"c_{s}"])
            if self.active("recon_s"):
                terms[f"recon_s/{t}"] = l1(step[f"s_{s}{t}"], step[f"s_{t}"])
            if self.active("cyc_x"):
                terms[f"cyc_x/{s}"] = l1(step[f"x_{s}{t}{s}"], step[f"x_{s}"])
            if self.active("vgg"):
                x_st = step[f"x_{s}{t}"]
                terms[f"vgg/{t}"] = domain_invariant_perceptual(self._perceptual_features(x_st.device), x_st,
                                                                step[f"x_{s}"])
        return terms

    # -- inference ---------------------------------------------------------------------------------
    def translate_with_styles(self, x: Tensor, direction: str, styles: Tensor, paired: bool = False) -> Tensor:
        """Every input decoded with every style code (K x style_dim): N*K images, input-major
        (``out[i * K + k]`` is input i in style k; ``out.unflatten(0, (N, K))`` gives N x K x C x H x W); with
        ``paired``, input i with code i only (N codes, N images)."""
        source, target = self.check_direction(direction).split("2")
        return self.nets["gen"][target].decode_with_styles(self.encode_content(source, x), styles, paired)

    def translate(self, x: Tensor, direction: str, styles: int = 1, reference: Tensor | None = None,
                  style: Tensor | None = None, interpolate: int | None = None, seed: int | None = None) -> Tensor:
        """x (N x C x H x W, source domain) -> N*K translations, input-major: ``out[i * K + k]`` is input i in
        style k. The styles (one choice at most):

        - ``styles=K`` (default 1): K codes drawn from the prior N(0, I), the same K for every input; from
          ``seed`` when given (reproducible), else from torch's global generator;
        - ``reference``: R example images of the target domain; K = R, style k = E_target^s(reference[k]);
        - ``style``: explicit codes, K x style_dim (or style_dim);
        - ``interpolate=K``: K codes evenly spaced on the line between two prior samples (from ``seed``).
        """
        target = self.check_direction(direction)[-1]
        chosen = [name for name, given in (("styles", styles != 1), ("reference", reference is not None),
                                           ("style", style is not None), ("interpolate", interpolate is not None))
                  if given]
        if len(chosen) > 1:
            raise ValueError(f"munit.translate: give one of styles, reference, style, interpolate; got "
                             f"{', '.join(chosen)}")
        if styles < 1:
            raise ValueError(f"styles must be >= 1, got {styles}")
        if reference is not None:
            if reference.dim() == 3:
                reference = reference[None]
            if reference.shape[1] != self.channels[target]:
                raise ValueError(f"reference images must be of domain '{target}' ({self.channels[target]} "
                                 f"channels), got {reference.shape[1]}")
            codes = self.encode_style(target, reference.to(x.device))
        elif style is not None:
            codes = style
        elif interpolate is not None:
            s0, s1 = self.sample_styles(2, seed, x.device)
            return self.interpolate(x, direction, s0, s1, interpolate)
        else:
            codes = self.sample_styles(styles, seed, x.device)
        return self.translate_with_styles(x, direction, codes)

    def interpolate(self, x: Tensor, direction: str, s0: Tensor, s1: Tensor, steps: int) -> Tensor:
        """Each input decoded with ``steps`` codes linearly spaced from s0 to s1 (both included): N*steps
        images, input-major."""
        if steps < 2:
            raise ValueError(f"interpolation needs >= 2 steps, got {steps}")
        s0, s1 = s0.reshape(-1), s1.reshape(-1)
        t = torch.linspace(0, 1, steps, device=s0.device)[:, None]
        return self.translate_with_styles(x, direction, (1 - t) * s0 + t * s1)

    @torch.no_grad()
    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Rows: x_a; x_ab in ``visual_styles`` random styles (one style per row, the same codes at every
        step: a fixed generator); x_ab_ref with the style of x_b (column i takes b image i); then the same
        for b."""
        images = {"a": batch["a"], "b": batch["b"]}
        fixed = torch.Generator().manual_seed(0)
        rows: dict[str, Tensor] = {}
        for source, target in PAIRS:
            x, ref = images[source], images[target]
            rows[f"x_{source}"] = x
            codes = torch.randn(self.visual_styles, self.cfg.style_dim, generator=fixed)
            outs = self.translate_with_styles(x, f"{source}2{target}", codes).unflatten(0, (len(x), -1))
            for k in range(self.visual_styles):
                rows[f"x_{source}{target}_s{k}"] = outs[:, k]
            picks = torch.arange(len(x), device=ref.device) % len(ref)
            rows[f"x_{source}{target}_ref"] = self.nets["gen"][target].decode(
                self.encode_content(source, x), self.encode_style(target, ref[picks]))
        return rows
