"""UNIT: Unsupervised Image-to-Image Translation Networks.

M.-Y. Liu, T. Breuel, J. Kautz. NeurIPS 2017. https://arxiv.org/abs/1703.00848

Shared-latent-space assumption: a pair of corresponding images x_1, x_2 maps to one code z. Each domain
has a VAE (encoder E_i, generator G_i) and a discriminator D_i. The last layers of E_1, E_2 and the first
layers of G_1, G_2 are shared, which ties both VAEs to one latent space; translation is
x_1->2 = G_2(E_1(x_1)). Code names: domain 1 = ``a``, domain 2 = ``b``; ``h_a`` = E_1(x_1) is the mean of
q_1(z|x_1) = N(h_a, I), and ``z_a = h_a + eps``.

Objective (paper eq. 6-9), with the term names used as ``loss_weights`` keys:

- ``gan``     lambda_0: L_GAN_i, adversarial loss of D_i against translations into domain i
- ``kl``      lambda_1: KL(q_i(z|x_i) || N(0, I)) of the VAE
- ``recon_x`` lambda_2: -log p_{G_i}(x_i | z_i), an L1 image reconstruction (Laplacian likelihood)
- ``cyc_kl``  lambda_3: KL of the re-encoded translation, KL(q_j(z|x_i->j) || N(0, I)); the paper's CC term
  also repeats KL(q_i(z|x_i)), which is the ``kl`` term already
- ``cyc_x``   lambda_4: -log p_{G_i}(x_i | z_j), z_j ~ q_j(z|x_i->j): cycle reconstruction, L1
- ``gp``      WGAN-GP penalty weight, used only with ``gan_type: wgan-gp``
- ``cls``     with ``classes`` > 0, UNIT's domain-adaptation classifier (paper Sec. 5): a linear head on the
  globally pooled features of the finest discriminator scale, trained jointly with the discriminators on
  domain-a labels, for x_a through D_a and for its translation x_ab through D_b. With the discriminators'
  high-level layers shared (``dis_shared_layers``), the head then classifies real domain-b images through D_b
  (``classify``), although it never saw a domain-b label.
- ``semantic`` (0 by default; not in the UNIT paper): CyCADA's semantic consistency (Hoffman et al., "CyCADA:
  Cycle-Consistent Adversarial Domain Adaptation", ICML 2018, eq. 4), for domain adaptation: a frozen digit
  classifier trained on domain-a labels (``semantic_classifier``, a file of
  ``unpaired.nn.classifiers.save_digit_network``) must read in each translation x_ab, x_ba the class it reads in
  its input x_a, x_b. It needs no label (pseudo-labels of the frozen classifier), and it keeps the translations'
  classes where UNIT alone lets the cycle be met through detail hidden in a translation of another digit.

Defaults are the official implementation's (github.com/mingyuliutw/UNIT, configs/unit_*_folder.yaml):
gen dim 64, 2 downsamplings, 4 residual blocks, reflect padding, ReLU; discriminators 3 scales x 4
layers, dim 64, LeakyReLU, LSGAN; gan 1, recon_x 10, kl 0.01, cyc_x 10, cyc_kl 0.01. The PyTorch release
of the official code no longer shares layers; the paper does, and ``shared_blocks`` (residual blocks
shared at the end of the encoders and the start of the generators; 0 = none) restores it, for the
paper's weight-sharing ablation. Setting ``cyc_x``/``cyc_kl`` to 0 skips the cycle branch entirely.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired.losses.consistency import semantic_consistency
from unpaired.losses.reconstruction import kl_standard_normal, l1
from unpaired.methods.base import (
    DOMAINS,
    METHODS,
    AuxiliaryClassifier,
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
from unpaired.nn.blocks import ResBlocks, init_weights
from unpaired.nn.classifiers import DigitClassifier, load_digit_network
from unpaired.nn.decoders import UpsamplingDecoder
from unpaired.nn.encoders import DownsamplingEncoder


@dataclass
class UNITConfig(MultiScaleGANConfig):
    shared_blocks: int = 1
    """Residual blocks shared by the ends of E_a/E_b and the starts of G_a/G_b (0: no sharing)."""
    latent_noise: float = 1.0
    """Std of eps in z = h + eps while training (the posterior's fixed standard deviation)."""
    classes: int = 0
    """Classes of the domain-adaptation classifier head on the discriminators (0: none); needs domain-a labels."""
    semantic_classifier: str = ""
    """File of the frozen classifier of the ``semantic`` term (``save_digit_network``, kind digit_classifier);
    read once, when a fresh run starts, and then kept in the run's checkpoints."""


@dataclass
class UNITWeights:
    gan: float = 1.0
    recon_x: float = 10.0
    kl: float = 0.01
    cyc_x: float = 10.0
    cyc_kl: float = 0.01
    gp: float = 10.0
    cls: float = 1.0
    semantic: float = 0.0


@METHODS.register("unit")
class UNIT(Method):
    name = "unit"
    Config = UNITConfig
    Weights = UNITWeights
    visual_names = ("x_a", "x_ab", "x_aba", "x_b", "x_ba", "x_bab")

    def __init__(self, cfg: UNITConfig, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> None:
        super().__init__(cfg, weights, channels, image_size)
        if not 0 <= cfg.shared_blocks <= cfg.n_res:
            raise ValueError(f"model.shared_blocks must be within 0..n_res={cfg.n_res}, got {cfg.shared_blocks}")
        check_gan_setup(cfg, image_size)
        self.size_multiple = 2**cfg.n_down
        private = cfg.n_res - cfg.shared_blocks
        latent = cfg.dim * 2**cfg.n_down
        gen = nn.ModuleDict()
        for d in DOMAINS:
            gen[f"enc_{d}"] = DownsamplingEncoder(channels[d], cfg.dim, cfg.n_down, private, "in",
                                                  cfg.activation, cfg.pad_type)
            gen[f"dec_{d}"] = UpsamplingDecoder(latent, channels[d], cfg.n_down, private, "in",
                                                cfg.activation, cfg.pad_type)
        gen["enc_shared"] = ResBlocks(cfg.shared_blocks, latent, "in", cfg.activation, cfg.pad_type)
        gen["dec_shared"] = ResBlocks(cfg.shared_blocks, latent, "in", cfg.activation, cfg.pad_type)
        dis = domain_discriminators(cfg, {d: channels[d] for d in DOMAINS})
        if cfg.classes < 0:
            raise ValueError(f"model.classes must be >= 0, got {cfg.classes}")
        if cfg.classes:
            features = cfg.dis_dim * 2 ** (cfg.dis_layers - 1)
            # pooled discriminator features are tiny at the discriminators' N(0, 0.02) init, so a bare linear head
            # barely moves (loss still ~ln 10 after hundreds of steps): normalise them per image first
            dis["classifier"] = nn.Sequential(nn.LayerNorm(features, elementwise_affine=False),
                                              nn.Linear(features, cfg.classes))
        init_weights(gen, cfg.init)
        init_weights(dis, "gaussian")  # as the official trainer does for its discriminators
        self.nets["dis"] = dis
        self.nets["gen"] = gen
        # outside ``nets``: no optimiser and no EMA copy see it, but the checkpoints keep it
        self.semantic_classifier: nn.Module | None = None
        if self.active("semantic") and not cfg.semantic_classifier:
            raise ValueError("loss_weights.semantic > 0 needs model.semantic_classifier (a digit classifier file "
                             "trained on domain-a labels)")
        if cfg.semantic_classifier:
            if channels["a"] != channels["b"]:
                raise ValueError(f"model.semantic_classifier reads both domains, which need one channel count; got "
                                 f"a {channels['a']}, b {channels['b']}")
            self.semantic_classifier = DigitClassifier(channels["a"]).requires_grad_(False).eval()

    def prepare(self, sources: dict) -> None:
        if self.semantic_classifier is not None:
            path = self.cfg.semantic_classifier
            classifier = load_digit_network(path, "digit_classifier")
            if classifier[0].in_channels != self.channels["a"]:
                raise ValueError(f"{path}: the classifier takes {classifier[0].in_channels}-channel images, the "
                                 f"domains have {self.channels['a']}")
            self.semantic_classifier.load_state_dict(classifier.state_dict())

    def train(self, mode: bool = True) -> UNIT:
        super().train(mode)
        if self.semantic_classifier is not None:  # frozen: batch norm keeps its running statistics
            self.semantic_classifier.eval()
        return self

    @classmethod
    def labelled_domains(cls, cfg: UNITConfig) -> tuple[str, ...]:
        return ("a",) if cfg.classes else ()

    @classmethod
    def classifier_head_settings(cls, cfg: UNITConfig, classes: int) -> list[str]:
        """The head, and CoGAN's weight sharing: the discriminators share every layer but the first (paper Sec. 5)."""
        return [f"model.classes={classes}", f"model.dis_shared_layers={cfg.dis_layers - 1}"]

    def provides(self, capability: type) -> bool:
        """The auxiliary classifier exists only with ``model.classes`` > 0."""
        if capability is AuxiliaryClassifier and not self.cfg.classes:
            return False
        return super().provides(capability)

    def classify(self, x: Tensor, domain: str) -> Tensor:
        """Class logits of images of ``domain``: the classifier head on D_domain's finest-scale features."""
        *blocks, _logit_conv = self.nets["dis"][domain].scales[0]
        for block in blocks:
            x = block(x)
        return self.nets["dis"]["classifier"](x.float().mean((2, 3)))

    # -- the two halves of each VAE; the shared layers run once on all inputs concatenated ------------
    def encode(self, inputs: list[tuple[str, Tensor]]) -> list[Tensor]:
        """[(domain, image)] -> [h]: E_domain(image), the mean of q(z | image)."""
        gen = self.nets["gen"]
        private = [gen[f"enc_{d}"](x) for d, x in inputs]
        return split_like(gen["enc_shared"](cat_batches(*private)), private)

    def decode(self, inputs: list[tuple[str, Tensor]]) -> list[Tensor]:
        """[(domain, z)] -> [G_domain(z)]."""
        gen = self.nets["gen"]
        shared = split_like(gen["dec_shared"](cat_batches(*(z for _, z in inputs))), [z for _, z in inputs])
        outputs: list[Tensor | None] = [None] * len(inputs)
        for d in DOMAINS:
            picks = [i for i, (target, _) in enumerate(inputs) if target == d]
            if picks:
                decoded = gen[f"dec_{d}"](cat_batches(*(shared[i] for i in picks)))
                for i, x in zip(picks, split_like(decoded, [shared[i] for i in picks]), strict=True):
                    outputs[i] = x
        return outputs  # type: ignore[return-value]

    def sample_z(self, h: Tensor) -> Tensor:
        return h + self.cfg.latent_noise * torch.randn_like(h)

    # -- training ------------------------------------------------------------------------------------
    def forward_step(self, batch: Batch) -> Step:
        x_a, x_b = batch["a"], batch["b"]
        h_a, h_b = self.encode([("a", x_a), ("b", x_b)])
        z_a, z_b = self.sample_z(h_a), self.sample_z(h_b)
        step: Step = {"x_a": x_a, "x_b": x_b, "h_a": h_a, "h_b": h_b, "labels_a": batch.get("a_labels")}
        names = ["x_ab", "x_ba"]
        targets = [("b", z_a), ("a", z_b)]
        if self.active("recon_x"):
            names += ["x_aa", "x_bb"]
            targets += [("a", z_a), ("b", z_b)]
        step.update(zip(names, self.decode(targets), strict=True))
        if self.active("cyc_x") or self.active("cyc_kl"):
            step["h_ab"], step["h_ba"] = self.encode([("b", step["x_ab"]), ("a", step["x_ba"])])
            if self.active("cyc_x"):
                step["x_aba"], step["x_bab"] = self.decode(
                    [("a", self.sample_z(step["h_ab"])), ("b", self.sample_z(step["h_ba"]))])
        return step

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        real = {"a": step["x_a"], "b": step["x_b"]}
        fake = {"a": step["x_ba"], "b": step["x_ab"]}  # translations into each domain
        penalty = self.cfg.gan_type == "wgan-gp" and self.active("gp")
        if group == "dis":
            terms = adversarial_terms(group, self.nets["dis"], real, fake, self.cfg.gan_type, penalty,
                                      adversarial=self.active("gan"))
            if self.cfg.classes and self.active("cls"):
                labels = step["labels_a"]
                if labels is None:
                    raise ValueError("unit: model.classes > 0 needs domain-a labels (a labelled digit set as "
                                     "domain a), and this batch has none")
                terms["cls/a"] = F.cross_entropy(self.classify(step["x_a"], "a"), labels)
                terms["cls/ab"] = F.cross_entropy(self.classify(step["x_ab"].detach(), "b"), labels)
            return terms
        terms: dict[str, Tensor] = {}
        if self.active("gan"):
            terms.update(adversarial_terms(group, self.nets["dis"], real, fake, self.cfg.gan_type))
        for d in DOMAINS:
            other = "b" if d == "a" else "a"
            if self.active("recon_x"):
                terms[f"recon_x/{d}"] = l1(step[f"x_{d}{d}"], step[f"x_{d}"])
            if self.active("kl"):
                terms[f"kl/{d}"] = kl_standard_normal(step[f"h_{d}"])
            if self.active("cyc_x"):
                terms[f"cyc_x/{d}"] = l1(step[f"x_{d}{other}{d}"], step[f"x_{d}"])
            if self.active("cyc_kl"):
                terms[f"cyc_kl/{d}"] = kl_standard_normal(step[f"h_{d}{other}"])
            if self.semantic_classifier is not None and self.active("semantic"):
                terms[f"semantic/{d}{other}"] = semantic_consistency(self.semantic_classifier, step[f"x_{d}"],
                                                                     step[f"x_{d}{other}"])
        return terms

    # -- inference -----------------------------------------------------------------------------------
    def translate(self, x: Tensor, direction: str, **options: object) -> Tensor:
        """a2b: G_b(E_a(x)) with the posterior mean (no sampling noise); b2a likewise."""
        if options:
            raise TypeError(f"unit.translate takes no options, got {', '.join(options)}")
        source, target = self.check_direction(direction).split("2")
        (h,) = self.encode([(source, x)])
        return self.decode([(target, h)])[0]

    @torch.no_grad()
    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        x_a, x_b = batch["a"], batch["b"]
        x_ab, x_ba = self.translate(x_a, "a2b"), self.translate(x_b, "b2a")
        return {"x_a": x_a, "x_ab": x_ab, "x_aba": self.translate(x_ab, "b2a"),
                "x_b": x_b, "x_ba": x_ba, "x_bab": self.translate(x_ba, "a2b")}
