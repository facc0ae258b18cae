"""TransGaGa: Geometry-Aware Unsupervised Image-to-Image Translation.

W. Wu, K. Cao, C. Li, C. Qian, C. C. Loy. CVPR 2019. https://arxiv.org/abs/1904.09571. No official code was
released; this module follows the paper's equations, and every choice the paper leaves open is named below.

Each domain's image x is split into a **geometry** and an **appearance**, translated separately, then decoded
together. Symbols of the paper -> names here (domain x = ``a``, y = ``b``; the same with a and b swapped):

- E^g_x (geometry encoder) -> ``nets.gen.geometry.a``: K = ``model.landmarks`` heatmaps g (softmax over space, at
  1/2**``model.geo_n_down`` of the image side); the landmarks p are their first moments (``unpaired.nn.landmarks``).
  The paper has one per domain; ``model.shared_geometry`` makes it one network for both (our option), so that
  landmark k can mark the same part in each domain
- E^c (geometry code from heatmaps) -> the landmarks rendered as K Gaussian maps of width ``model.render_sigma``
  (normalised units) at the image size; parameter-free here, so a translated geometry (points) is drawn alike
- E^a_x (appearance encoder) -> ``nets.gen.appearance.a``: the posterior q(a | x) = N(mu, diag exp(logvar)) of a
  ``model.style_dim`` code (MUNIT's style encoder, twice as wide to give mu and logvar); the prior p(a) is N(0, I)
- D_x (decoder) -> ``nets.gen.decoder.a``: an AdaIN generator whose content encoder reads the rendered landmark
  maps and whose AdaIN parameters come from the appearance code (``unpaired.nn.generators.AdaINGenerator``)
- PCA embedding of landmark coordinates -> ``nets.gen.pca.a``: a running PCA of the 2K coordinates
  (``model.pca_dims`` directions, momentum ``model.pca_momentum``); points are projected on it before and after
  the geometry transformer, which removes what lies outside the principal directions (the noise)
- Phi^g_{x->y} (geometry transformer) -> ``nets.gen.geometry_transformer.a2b``: a residual MLP on the 2K
  denoised coordinates; Phi^a_{x->y} (appearance transformer) -> ``nets.gen.appearance_transformer.a2b``: an MLP
- the image discriminators D^img_y -> ``nets.dis.image.b`` (UNIT/MUNIT multi-scale); the discriminators on
  geometry codes -> ``nets.dis.geometry.b``: MLPs on the 2K landmark coordinates
- zeta (appearance features for the Gram matrices) -> VGG16 read from ``model.gram_weights`` (never downloaded)

Objective, with the ``loss_weights`` keys (``term/d``: about domain d; the paper gives no weights: every value
in the shipped configs is our choice and says so):

- ``kl``: the conditional VAE's KL(q(a | x) || N(0, I)) per domain (L_CVAE, first part)
- ``recon_x``: |x - D_x(E^c(E^g(x)), a)|_1 with a drawn from q(a | x) (L_CVAE, second part)
- ``separation``, ``concentration``: L_prior = sum_{i != j} exp(-|p_i - p_j|^2 / 2 sigma^2) + Var(g), as two
  terms (sigma = ``model.separation_sigma``); ``unpaired.losses.landmarks``
- ``cyc_g``, ``cyc_a``: cycle consistency in the geometry and appearance spaces: the translation
  x_ab = D_b(Phi^g(p_a), Phi^a(a_a)) is encoded again in b and mapped back, |Phi^g_{b->a}(E^g_b(x_ab)) - p_a|_1
  and |Phi^a_{b->a}(mu_b(x_ab)) - mu_a(x_a)|_1 (our reading of "cycle consistency in both spaces": through the
  image, so the decoder must honour the geometry it is given)
- ``gan``: adversarial loss on images (D^img_b against x_ab); ``gan_g``: adversarial loss on geometry codes
  (D^geo_b: real landmarks of b images against Phi^g_{a->b}(p_a)); LSGAN by default (``model.gan_type``)
- ``equivariance``: |E^g(T x) - T E^g(x)|_1 for a random similarity T (rotation, scale, shift within
  ``model.equivariance_*``): not in TransGaGa's paper but in the landmark work its L_prior comes from (Zhang et al.,
  "Unsupervised Discovery of Object Landmarks as Structural Representations", CVPR 2018; Thewlis et al., ICCV
  2017). Our addition: without it the landmarks need not move with the image (on the warped digits they sit in a
  ring around the digit and code its shape in small offsets), and a warp of the image is then no smooth map of
  the landmarks for Phi^g to learn
- ``gram``: appearance consistency L_con^a = |zeta(x) - zeta(x_ab)|_1 on Gram matrices of VGG16 features at
  ``model.gram_layers`` (needs ``model.gram_weights``)
- ``gp``: WGAN-GP penalty of the image discriminators, used only with ``gan_type: wgan-gp``

Inference: a2b keeps the input's geometry (transformed by Phi^g) and takes its appearance from Phi^a(mu_a(x))
(default), from K draws of the prior N(0, I) (``styles=K``: multimodal output), from an example of the target
domain (``reference``: the reference's appearance, the input's geometry) or from explicit codes (``style``);
``interpolate=K`` gives strips of K appearances between two prior draws, ``interpolate_geometry=K`` strips of K
geometries from the input's own landmarks to their translation. The ``LandmarkGeometry`` capability gives the
landmarks (``unpaired translate --show-landmarks``).

Limits: with several processes (torchrun) each process folds its own batches into its PCA statistics, so the
processes' PCA buffers drift apart slowly (checkpoints keep process 0's). On the warped-digits benchmark
(``bench/results/transgaga.md``) the translations keep the digit less often than CycleGAN's: Phi^g, an MLP on the
stacked coordinates, finds the landmarks' correspondence only slowly (``bench/results/probes/
transgaga_geometry_correspondence/README.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from unpaired.losses.landmarks import concentration, separation
from unpaired.losses.perceptual import gram_distance
from unpaired.losses.reconstruction import kl_standard_normal, l1
from unpaired.methods.base import (
    DOMAINS,
    METHODS,
    Batch,
    Method,
    MultiScaleGANConfig,
    Step,
    adversarial_terms,
    check_gan_setup,
    domain_discriminators,
)
from unpaired.methods.munit import StyleEncoder
from unpaired.nn.blocks import MLP, init_weights
from unpaired.nn.generators import AdaINGenerator
from unpaired.nn.landmarks import (
    GeometryEncoder,
    LandmarkPCA,
    colour_heatmaps,
    move_images,
    move_points,
    overlay_landmarks,
    random_similarity,
    render_landmarks,
)
from unpaired.nn.vgg import LAYERS, load_vgg16_features

PAIRS = (("a", "b"), ("b", "a"))  # (source, target) of the two translations


@dataclass
class TransGaGaConfig(MultiScaleGANConfig):
    """``dim``/``n_down``/``n_res``: the decoders' landmark-map encoders and AdaIN decoders (MUNIT's generator);
    ``dis_*``: the image discriminators."""

    landmarks: int = 30
    """K, the number of landmark heatmaps (the paper's 30)."""
    shared_geometry: bool = False
    """One geometry encoder for both domains (E^g_x = E^g_y), so landmark k can mark the same part in each; the
    paper has one per domain (our option; a gray domain is read as RGB)."""
    geo_n_down: int = 2
    """Stride-2 convs of the geometry encoder: heatmaps at 1/2**geo_n_down of the image side (our choice)."""
    render_sigma: float = 0.1
    """Width (normalised units, the frame is 2 wide) of the Gaussian maps the decoder reads (our choice)."""
    separation_sigma: float = 0.1
    """sigma of the separation prior, in normalised units (our choice; the paper does not give it)."""
    pca_dims: int = 20
    """Principal directions kept of the 2K landmark coordinates (our choice; at most 2K)."""
    pca_momentum: float = 0.05
    """Weight of each training batch in the running PCA statistics (our choice)."""
    style_dim: int = 8
    """Size of the appearance code a (MUNIT's style size; our choice)."""
    style_n_down: int = 4
    mlp_dim: int = 256
    mlp_layers: int = 3
    transformer_dim: int = 256
    """Width of the geometry and appearance transformers (MLPs) and of the geometry discriminators."""
    transformer_layers: int = 3
    equivariance_degrees: float = 45.0
    """The ``equivariance`` term's random maps: rotations within +- this many degrees (our choice) ..."""
    equivariance_scale: float = 0.1
    """... scales within 1 +- this (our choice) ..."""
    equivariance_shift: float = 0.1
    """... and shifts within +- this, in normalised units (our choice)."""
    gram_weights: str | None = None
    """A VGG16 state_dict file (torchvision layout) for the ``gram`` term; needed only when its weight is > 0."""
    gram_layers: str = "relu1_2,relu2_2,relu3_3"
    """Comma-separated VGG16 layers whose Gram matrices the ``gram`` term compares (style layers of Gatys et al.)."""


@dataclass
class TransGaGaWeights:
    gan: float = 1.0
    gan_g: float = 1.0
    recon_x: float = 10.0
    kl: float = 0.01
    separation: float = 0.1
    concentration: float = 1.0
    cyc_g: float = 10.0
    cyc_a: float = 1.0
    equivariance: float = 100.0
    gram: float = 0.0
    gp: float = 10.0


def domain_networks(channels: int, cfg: TransGaGaConfig) -> dict[str, nn.Module]:
    """One domain's E^g, E^a (mu and logvar), decoder D and landmark PCA."""
    act, pad = cfg.activation, cfg.pad_type
    return {
        "geometry": GeometryEncoder(channels, cfg.landmarks, cfg.dim, cfg.geo_n_down, cfg.n_res, act, pad),
        "appearance": StyleEncoder(channels, cfg.dim, 2 * cfg.style_dim, cfg.style_n_down, act, pad),
        "decoder": AdaINGenerator(channels, cfg.dim, cfg.n_down, cfg.n_res, cfg.style_dim, cfg.mlp_dim,
                                  cfg.mlp_layers, act, pad, content_channels=cfg.landmarks),
        "pca": LandmarkPCA(cfg.landmarks, cfg.pca_dims, cfg.pca_momentum),
    }


class GeometryTransformer(MLP):
    """Phi^g: denoised landmarks (N x K x 2) -> landmarks of the other domain, p + MLP(p) (a residual MLP, so
    it starts near the identity; our choice)."""

    def forward(self, points: Tensor) -> Tensor:
        return points + super().forward(points).view_as(points)


class GeometryDiscriminator(MLP):
    """D^geo: 2K landmark coordinates -> one logit, as a one-scale list (the form ``adversarial_terms`` takes)."""

    def forward(self, points: Tensor) -> list[Tensor]:  # type: ignore[override]
        return [super().forward(points)]


@METHODS.register("transgaga")
class TransGaGa(Method):
    name = "transgaga"
    Config = TransGaGaConfig
    Weights = TransGaGaWeights
    visual_names = tuple(row for s, t in PAIRS for row in (
        f"x_{s}", f"heat_{s}", f"x_{s}_marks", f"x_{s}{s}", f"x_{s}{t}", f"x_{s}{t}_marks", f"x_{s}{t}_prior",
        f"x_{s}{t}_ref"))
    translate_options = frozenset({"styles", "reference", "style", "interpolate", "interpolate_geometry", "seed"})

    def __init__(self, cfg: TransGaGaConfig, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> None:
        super().__init__(cfg, weights, channels, image_size)
        check_gan_setup(cfg, image_size)
        if cfg.landmarks < 1 or cfg.style_dim < 1:
            raise ValueError("model.landmarks and model.style_dim must be >= 1")
        if not 1 <= cfg.pca_dims <= 2 * cfg.landmarks:
            raise ValueError(f"model.pca_dims must be within 1..2*landmarks={2 * cfg.landmarks}, got {cfg.pca_dims}")
        if image_size < 2**cfg.style_n_down or image_size % 2**cfg.geo_n_down:
            raise ValueError(f"data.image_size={image_size} must be >= 2**model.style_n_down and divisible by "
                             "2**model.geo_n_down")
        if not (cfg.render_sigma > 0 and cfg.separation_sigma > 0):
            raise ValueError("model.render_sigma and model.separation_sigma must be > 0")
        self.gram_layers = tuple(name.strip() for name in cfg.gram_layers.split(",") if name.strip())
        if self.active("gram"):
            if not cfg.gram_weights:
                raise ValueError("loss_weights.gram > 0 needs model.gram_weights: a VGG16 state_dict file "
                                 "(torchvision layout); weights are never downloaded")
            unknown = [name for name in self.gram_layers if name not in LAYERS]
            if unknown or not self.gram_layers:
                raise ValueError(f"model.gram_layers: unknown VGG16 layer(s) {', '.join(unknown) or '(none)'}; "
                                 f"valid: {', '.join(LAYERS)}")
        self.size_multiple = 2 ** max(cfg.n_down, cfg.geo_n_down)
        parts = {d: domain_networks(channels[d], cfg) for d in DOMAINS}
        if cfg.shared_geometry:
            if len(set(channels.values())) > 1 and min(channels.values()) != 1:
                raise ValueError(f"model.shared_geometry needs domains with equal channels (or one gray), "
                                 f"got {channels}")
            widest = max(DOMAINS, key=lambda d: channels[d])
            for d in DOMAINS:  # one module under both names: one set of weights; gray images are read as RGB
                parts[d]["geometry"] = parts[widest]["geometry"]
        self.geometry_channels = max(channels.values()) if cfg.shared_geometry else None
        coordinates = 2 * cfg.landmarks

        def transformers(make: Any) -> nn.ModuleDict:
            return nn.ModuleDict({f"{s}2{t}": make() for s, t in PAIRS})

        gen = nn.ModuleDict({role: nn.ModuleDict({d: parts[d][role] for d in DOMAINS}) for role in parts["a"]})
        gen["geometry_transformer"] = transformers(lambda: GeometryTransformer(
            coordinates, coordinates, cfg.transformer_dim, cfg.transformer_layers, cfg.activation))
        gen["appearance_transformer"] = transformers(lambda: MLP(
            cfg.style_dim, cfg.style_dim, cfg.transformer_dim, cfg.transformer_layers, cfg.activation))
        dis = nn.ModuleDict({
            "image": domain_discriminators(cfg, {d: channels[d] for d in DOMAINS}),
            "geometry": nn.ModuleDict({d: GeometryDiscriminator(coordinates, 1, cfg.transformer_dim,
                                                                 cfg.transformer_layers, "lrelu") for d in DOMAINS}),
        })
        init_weights(gen, cfg.init)
        init_weights(dis, "gaussian")  # as UNIT/MUNIT's trainers do for their discriminators
        for transformer in gen["geometry_transformer"].values():  # start at the identity map
            nn.init.zeros_(transformer[-1].weight)
        self.nets["dis"] = dis
        self.nets["gen"] = gen
        object.__setattr__(self, "_vgg", None)  # frozen, loaded on demand: not a submodule, not checkpointed

    # -- networks ----------------------------------------------------------------------------------
    def encode_geometry(self, domain: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """E^g_domain(x): (heatmaps N x K x h x w, landmarks N x K x 2)."""
        if self.geometry_channels is not None:
            x = x.expand(-1, self.geometry_channels, -1, -1)  # a gray domain into the shared (RGB) encoder
        return self.nets["gen"]["geometry"][domain](x)

    def encode_appearance(self, domain: str, x: Tensor) -> tuple[Tensor, Tensor]:
        """E^a_domain(x): the posterior's mean and log-variance, N x style_dim each."""
        mu, logvar = self.nets["gen"]["appearance"][domain](x).chunk(2, dim=1)
        return mu, logvar

    def transform_geometry(self, direction: str, points: Tensor) -> Tensor:
        """Phi^g_direction on the PCA-denoised points of the source, denoised again in the target's PCA."""
        pca = self.nets["gen"]["pca"]
        moved = self.nets["gen"]["geometry_transformer"][direction](pca[direction[0]].denoise(points))
        return pca[direction[-1]].denoise(moved)

    def transform_appearance(self, direction: str, code: Tensor) -> Tensor:
        """Phi^a_direction: an appearance code of the source -> one of the target."""
        return self.nets["gen"]["appearance_transformer"][direction](code)

    def landmark_content(self, domain: str, points: Tensor, like: Tensor) -> Tensor:
        """The decoder's content code of landmarks: E^c (Gaussian maps at ``like``'s size), then its encoder."""
        maps = render_landmarks(points, like, self.cfg.render_sigma)
        return self.nets["gen"]["decoder"][domain].content(maps)

    def decode(self, domain: str, points: Tensor, codes: Tensor, like: Tensor, paired: bool = True) -> Tensor:
        """D_domain(points, appearance codes) at ``like``'s size; ``paired``: point set i with code i, else every
        point set with every code (input-major)."""
        decoder = self.nets["gen"]["decoder"][domain]
        return decoder.decode_with_styles(self.landmark_content(domain, points, like), codes, paired)

    # -- capabilities: style space, style prior, landmark geometry ----------------------------------
    def encode_style(self, domain: str, x: Tensor) -> Tensor:
        """The appearance code of images ``x`` of ``domain``: the posterior mean, N x style_dim."""
        return self.encode_appearance(domain, x)[0]

    def sample_styles(self, count: int, seed: int | None = None, device: torch.device | str = "cpu") -> Tensor:
        """``count`` appearance codes from the prior N(0, I); reproducible (drawn on the CPU) with ``seed``."""
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        return torch.randn(count, self.cfg.style_dim, generator=gen).to(device)

    def landmarks(self, domain: str, x: Tensor) -> Tensor:
        return self.encode_geometry(domain, x)[1]

    def translated_landmarks(self, x: Tensor, direction: str) -> Tensor:
        return self.transform_geometry(self.check_direction(direction), self.landmarks(direction[0], x))

    # -- training ----------------------------------------------------------------------------------
    def prepare(self, sources: dict[str, Any]) -> None:
        """Load the VGG weights of the Gram term now, so a bad path fails before the run starts."""
        if self.active("gram"):
            self._gram_features(next(self.parameters()).device)

    def _gram_features(self, device: torch.device) -> Any:
        if self._vgg is None:
            object.__setattr__(self, "_vgg", load_vgg16_features(self.cfg.gram_weights, self.gram_layers))
        if self._vgg.mean.device != device:
            self._vgg.to(device)
        return self._vgg

    def forward_step(self, batch: Batch) -> Step:
        x = {"a": batch["a"], "b": batch["b"]}
        step: Step = {"x_a": x["a"], "x_b": x["b"]}
        for d in DOMAINS:
            mu, logvar = self.encode_appearance(d, x[d])
            step[f"mu_{d}"], step[f"logvar_{d}"] = mu, logvar
            step[f"app_{d}"] = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)  # a ~ q(a | x), reparameterised
            n, cfg = len(x[d]), self.cfg
            motion = (random_similarity(n, cfg.equivariance_degrees, cfg.equivariance_scale, cfg.equivariance_shift,
                                        x[d].device) if self.active("equivariance") else None)
            images = x[d] if motion is None else torch.cat([x[d], move_images(x[d], *motion)])  # one E^g pass
            heatmaps, points = self.encode_geometry(d, images)
            step[f"heat_{d}"], step[f"p_{d}"] = heatmaps[:n], points[:n]
            if motion is not None:  # the landmarks of a moved image are the moved landmarks
                step[f"moved_p_{d}"], step[f"p_of_moved_{d}"] = move_points(points[:n], *motion), points[n:]
            if self.training:
                self.nets["gen"]["pca"][d].update(step[f"p_{d}"])
        for source, target in PAIRS:
            s, t = source, target
            step[f"p_{s}{t}"] = self.transform_geometry(f"{s}2{t}", step[f"p_{s}"])
            step[f"app_{s}{t}"] = self.transform_appearance(f"{s}2{t}", step[f"app_{s}"])
        for source, target in PAIRS:  # decode into `target`: its reconstruction and the translation, in one call
            s, t = source, target
            points = [step[f"p_{s}{t}"]] + ([step[f"p_{t}"]] if self.active("recon_x") else [])
            codes = [step[f"app_{s}{t}"]] + ([step[f"app_{t}"]] if self.active("recon_x") else [])
            decoded = self.decode(t, torch.cat(points), torch.cat(codes), x[t]).split(len(x[t]))
            step[f"x_{s}{t}"] = decoded[0]
            if self.active("recon_x"):
                step[f"x_{t}{t}"] = decoded[1]
        for source, target in PAIRS:  # the cycles through the translation, in geometry and appearance spaces
            s, t = source, target
            x_st = step[f"x_{s}{t}"]
            if self.active("cyc_g"):
                step[f"p_{s}{t}{s}"] = self.transform_geometry(f"{t}2{s}", self.landmarks(t, x_st))
            if self.active("cyc_a"):
                step[f"app_{s}{t}{s}"] = self.transform_appearance(f"{t}2{s}", self.encode_style(t, x_st))
        return step

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        real = {"a": step["x_a"], "b": step["x_b"]}
        fake = {"a": step["x_ba"], "b": step["x_ab"]}  # translations into each domain
        real_points = {d: step[f"p_{d}"].detach().flatten(1) for d in DOMAINS}
        fake_points = {"a": step["p_ba"].flatten(1), "b": step["p_ab"].flatten(1)}
        kind = self.cfg.gan_type
        terms: dict[str, Tensor] = {}
        if group == "dis" or self.active("gan"):
            terms.update(adversarial_terms(group, self.nets["dis"]["image"], real, fake, kind,
                                           penalty=group == "dis" and kind == "wgan-gp" and self.active("gp"),
                                           adversarial=self.active("gan")))
        if self.active("gan_g"):
            geometry = adversarial_terms(group, self.nets["dis"]["geometry"], real_points, fake_points, kind)
            terms.update({name.replace("gan/", "gan_g/"): value for name, value in geometry.items()})
        if group == "dis":
            return terms
        sigma = self.cfg.separation_sigma
        # each term of source domain s (translated into t): its value, and the domain the term is about
        per_pair = {
            "recon_x": lambda s, t: (l1(step[f"x_{s}{s}"], step[f"x_{s}"]), s),
            "kl": lambda s, t: (kl_standard_normal(step[f"mu_{s}"], step[f"logvar_{s}"]), s),
            "separation": lambda s, t: (separation(step[f"p_{s}"], sigma), s),
            "concentration": lambda s, t: (concentration(step[f"heat_{s}"], step[f"p_{s}"]), s),
            "cyc_g": lambda s, t: (l1(step[f"p_{s}{t}{s}"], step[f"p_{s}"]), s),
            "cyc_a": lambda s, t: (l1(step[f"app_{s}{t}{s}"], step[f"mu_{s}"]), s),
            "equivariance": lambda s, t: (l1(step[f"p_of_moved_{s}"], step[f"moved_p_{s}"]), s),
            "gram": lambda s, t: (gram_distance(self._gram_features(step["x_a"].device), step[f"x_{s}{t}"],
                                                step[f"x_{s}"]), t),
        }
        for name, term in per_pair.items():
            if self.active(name):
                for source, target in PAIRS:
                    value, domain = term(source, target)
                    terms[f"{name}/{domain}"] = value
        return terms

    # -- inference ---------------------------------------------------------------------------------
    def translate_with_styles(self, x: Tensor, direction: str, styles: Tensor, paired: bool = False) -> Tensor:
        """The input's geometry (through Phi^g) decoded with every appearance code (K x style_dim): N*K images,
        input-major; with ``paired``, input i with code i only."""
        points = self.translated_landmarks(x, direction)
        return self.decode(direction[-1], points, styles, x, paired)

    def translate(self, x: Tensor, direction: str, styles: int | None = None, reference: Tensor | None = None,
                  style: Tensor | None = None, interpolate: int | None = None,
                  interpolate_geometry: int | None = None, seed: int | None = None) -> Tensor:
        """x (N x C x H x W, source domain) -> translations with the input's geometry, input-major. The
        appearance (one choice at most): by default Phi^a of the input's own (one output per input);
        ``styles=K``: K prior draws (from ``seed`` when given); ``reference``: R example images of the target
        domain, their appearance codes; ``style``: explicit codes (K x style_dim); ``interpolate=K``: K codes
        evenly spaced between two prior draws; ``interpolate_geometry=K``: K geometries evenly spaced from the
        input's own landmarks to the translated ones, with the default appearance."""
        direction = self.check_direction(direction)
        source, target = direction[0], direction[-1]
        chosen = [name for name, value in (("styles", styles), ("reference", reference), ("style", style),
                                           ("interpolate", interpolate),
                                           ("interpolate_geometry", interpolate_geometry)) if value is not None]
        if len(chosen) > 1:
            raise ValueError(f"transgaga.translate: give one of styles, reference, style, interpolate, "
                             f"interpolate_geometry; got {', '.join(chosen)}")
        if styles is not None:
            if styles < 1:
                raise ValueError(f"styles must be >= 1, got {styles}")
            return self.translate_with_styles(x, direction, self.sample_styles(styles, seed, x.device))
        if reference is not None:
            reference = reference[None] if reference.dim() == 3 else reference
            if reference.shape[1] != self.channels[target]:
                raise ValueError(f"reference images must be of domain '{target}' ({self.channels[target]} "
                                 f"channels), got {reference.shape[1]}")
            return self.translate_with_styles(x, direction, self.encode_style(target, reference.to(x.device)))
        if style is not None:
            return self.translate_with_styles(x, direction, style)
        if interpolate is not None:
            ends = self.sample_styles(2, seed, x.device)
            return self.translate_with_styles(x, direction, self._between(ends[0], ends[1], interpolate))
        own = self.transform_appearance(direction, self.encode_style(source, x))
        if interpolate_geometry is not None:
            start = self.landmarks(source, x)
            path = self._between(start, self.transform_geometry(direction, start), interpolate_geometry)
            steps = path.shape[0]
            points = path.transpose(0, 1).flatten(0, 1)  # input-major: input i at every step
            return self.decode(target, points, own.repeat_interleave(steps, 0), x)
        return self.decode(target, self.transform_geometry(direction, self.landmarks(source, x)), own, x)

    @staticmethod
    def _between(start: Tensor, end: Tensor, steps: int) -> Tensor:
        """``steps`` tensors evenly spaced from ``start`` to ``end`` (both included), stacked on a new first axis."""
        if steps < 2:
            raise ValueError(f"interpolation needs >= 2 steps, got {steps}")
        t = torch.linspace(0, 1, steps, device=start.device).view(-1, *([1] * start.dim()))
        return (1 - t) * start + t * end

    @torch.no_grad()
    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Per direction: the inputs, their heatmaps (one colour per landmark) and landmarks, the reconstruction
        (posterior mean), the translation and its landmarks, one prior appearance (fixed) and the appearance of
        the target batch's images (column i takes target image i)."""
        images = {"a": batch["a"], "b": batch["b"]}
        fixed = self.sample_styles(1, seed=0, device=batch["a"].device)
        rows: dict[str, Tensor] = {}
        for source, target in PAIRS:
            s, t = source, target
            x, ref = images[s], images[t]
            heat, points = self.encode_geometry(s, x)
            rows[f"x_{s}"] = x
            rows[f"heat_{s}"] = colour_heatmaps(heat, tuple(x.shape[-2:]))
            rows[f"x_{s}_marks"] = overlay_landmarks(x, points)
            rows[f"x_{s}{s}"] = self.decode(s, points, self.encode_style(s, x), x)
            moved = self.transform_geometry(f"{s}2{t}", points)
            translated = self.translate(x, f"{s}2{t}")
            rows[f"x_{s}{t}"] = translated
            rows[f"x_{s}{t}_marks"] = overlay_landmarks(translated, moved)
            rows[f"x_{s}{t}_prior"] = self.decode(t, moved, fixed.expand(len(x), -1), x)
            picks = torch.arange(len(x), device=ref.device) % len(ref)
            rows[f"x_{s}{t}_ref"] = self.decode(t, moved, self.encode_style(t, ref[picks]), x)
        return rows
