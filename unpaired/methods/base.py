"""The method interface: networks + named loss terms; the trainer does everything else.

A method is an ``nn.Module`` whose networks sit in ``self.nets``, a ``ModuleDict`` with one entry per
*group*: each group gets one optimiser, and groups are updated in the order they were added (for GANs:
``dis`` first, then ``gen``). Per training step the trainer calls

1. ``forward_step(batch)`` once: every translation the losses need, with autograd graphs;
2. for each group: ``loss_terms(group, step)``, a dict of raw, unweighted terms. The trainer multiplies
   each by its weight in ``loss_weights`` (the part of a term's name before any ``/``; ``gan/a`` uses
   ``gan``), backpropagates the sum into that group's parameters only and steps its optimiser. A term whose
   weight is 0 is dropped there (neither summed nor logged).

So no image is generated twice per step: the discriminator sees the step's translations detached, the
generator reuses them with their graph. The ``gen`` group holds every network inference needs (EMA copies are
kept of it). A method skips the work of terms whose weight is 0 (``self.active(name)``), in every group
(a discriminator whose terms are all off does not run), which is how the papers' ablations are run. A group
for which ``loss_terms`` returns no term at a step is not updated at that step (a network that waits while
another warms up alone), and
``after_step(step)`` runs once every group is updated (momentum encoders, queues of earlier batches).

Most methods translate between two domains ``a`` and ``b``; a method with ``single_domain = True`` learns from
one mixed collection (``--data`` names one folder), which the trainer passes as domain ``a`` only, with the
labels of a share ``label_fraction(cfg)`` of its images (sub-folder names) when that share is above 0; a method
with ``paired_data = True`` learns from aligned pairs (``--data pairs:DIR``), which the trainer draws together
(item i of ``a`` and of ``b`` one pair) and refuses unpaired data for.

Capabilities only some methods have are declared here as small protocols (``StyleSpace``, ``StylePrior``,
``DiscoveredDomains``, ``AuxiliaryClassifier``,
``LandmarkGeometry``): a method has one when it implements its members (and
``provides`` does not say otherwise, e.g. UNIT without a classifier head). Code outside the methods asks with
``require(method, Capability, needed_for)``, which raises ``MissingCapabilityError`` naming the method, the
capability and the methods that have it, instead of reaching for members by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

from unpaired.losses.adversarial import GAN_KINDS, discriminator_loss, generator_loss, gradient_penalty
from unpaired.nn.discriminators import MultiScaleDiscriminator
from unpaired.registry import Registry

Batch = dict[str, Tensor]
Step = dict[str, Any]

DOMAINS = ("a", "b")
DIRECTIONS = ("a2b", "b2a")


class Method(nn.Module):
    """Base class; subclasses set the class attributes and fill the four members below."""

    name: ClassVar[str]
    Config: ClassVar[type]
    """Dataclass of architecture options (the ``model:`` config section)."""
    Weights: ClassVar[type]
    """Dataclass with one float per loss-term name (the ``loss_weights:`` config section)."""
    visual_names: ClassVar[tuple[str, ...]] = ()
    """Rows of the training image grid, in order."""
    size_multiple: int = 1
    """Image sides must be multiples of this (the networks' total stride)."""
    directions: tuple[str, ...] = DIRECTIONS
    """Directions the trained model translates (a one-sided model has one)."""
    translate_options: ClassVar[frozenset[str]] = frozenset()
    """Keyword options ``translate`` takes (e.g. ``styles``, ``reference``); ``Translator`` and the CLI refuse
    any other with a message naming the method and the option."""
    single_domain: ClassVar[bool] = False
    """The method learns from one mixed collection of images (domain ``a`` of the batches), not from two."""
    paired_data: ClassVar[bool] = False
    """The method is supervised: it learns from aligned pairs (batch item i of ``a`` and of ``b`` show one scene,
    ``--data pairs:DIR``), and unpaired data is refused."""
    exportable: ClassVar[bool] = True
    """``translate`` is one fixed feed-forward graph, which ``unpaired export`` can write as a file; False for a
    method that translates by an optimisation per image (CoGAN's inversion), which export refuses."""

    def __init__(self, cfg: Any, weights: dict[str, float], channels: dict[str, int], image_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.weights = dict(weights)
        self.channels = dict(channels)
        self.image_size = image_size
        self.nets = nn.ModuleDict()

    # -- filled by each method -------------------------------------------------------------------
    def prepare(self, sources: dict[str, Any]) -> None:
        """Called once before a fresh run's first step with the training ``ImageSource`` of each domain
        (e.g. to estimate data statistics). Keep what it computes in buffers or extra state, so it is
        checkpointed; it is not called again on resume."""

    def forward_step(self, batch: Batch) -> Step:
        raise NotImplementedError

    def loss_terms(self, group: str, step: Step) -> dict[str, Tensor]:
        raise NotImplementedError

    def translate(self, x: Tensor, direction: str, **options: Any) -> Tensor:
        raise NotImplementedError

    def visuals(self, batch: Batch) -> dict[str, Tensor]:
        """Named image batches for the training grid, computed without gradients."""
        raise NotImplementedError

    # -- optional hooks --------------------------------------------------------------------------
    @classmethod
    def label_fraction(cls, cfg: Any) -> float:
        """Share (0..1) of a single collection's images whose labels the method reads (then batches carry
        ``a_labels``, -1 for an image without one); 0, the default, reads no label at all."""
        return 0.0

    @classmethod
    def labelled_domains(cls, cfg: Any) -> tuple[str, ...]:
        """Domains whose labels the batches carry (as ``<domain>_labels``) because the method trains on them
        (e.g. UNIT's domain-adaptation classifier on domain a); by default the single collection ``a`` when
        ``label_fraction`` is above 0, else none, so no label is read."""
        return ("a",) if cls.label_fraction(cfg) > 0 else ()

    @classmethod
    def classifier_head_settings(cls, cfg: Any, classes: int) -> list[str] | None:
        """``--set`` overrides that give this method's model (config section ``cfg``) a ``classes``-way classifier
        head on its discriminators (the ``AuxiliaryClassifier`` capability), as the domain-adaptation protocol's
        ``discriminator_head`` row trains it; None (the default): the method cannot have one."""
        return None

    def parameter_groups(self, group: str) -> list[dict[str, Any]]:
        """The optimiser parameter groups of network group ``group``: dicts with ``params`` and optionally
        ``lr_scale`` (multiplies ``optim.lr``) and ``weight_decay``. Default: one group of every parameter."""
        return [{"params": list(self.nets[group].parameters())}]

    def refresh_ema_statistics(self, ema: nn.Module, batch: Batch) -> bool:
        """Re-estimate the batch-norm running statistics of ``ema``, the EMA copy of ``nets['gen']``, for its own
        weights from this step's ``batch`` (on the device); return whether it did. If not (the default), the
        trainer copies the live network's buffers into the copy, which suits networks without batch norm."""
        return False

    def after_step(self, step: int) -> None:
        """Called after every group of a training step has been updated (and the EMA copy), with the number of
        completed steps. State changed here must live in buffers, so that checkpoints keep it."""

    def provides(self, capability: type) -> bool:
        """Whether this model has ``capability`` (one of the protocols below); by default, whether the class
        implements its members. A method whose members depend on its config (a head that may be left out)
        overrides this."""
        return isinstance(self, capability)

    # -- shared helpers ----------------------------------------------------------------------------
    @property
    def groups(self) -> list[str]:
        return list(self.nets.keys())

    def active(self, term: str) -> bool:
        """Whether a loss term (by weight name) contributes; methods skip the work of inactive ones."""
        return self.weights.get(term.split("/")[0], 0.0) > 0

    def weight_of(self, term: str) -> float:
        key = term.split("/")[0]
        if key not in self.weights:
            raise KeyError(f"{self.name}: loss term '{term}' has no weight '{key}' in loss_weights")
        return self.weights[key]

    def direct_generator(self, direction: str, options: dict[str, Any]) -> nn.Module:
        """``nets['gen'][direction]`` of a method with one generator per direction it was trained for
        (``model.direction``: a2b, b2a or both); refuses translate options and any other direction."""
        if options:
            raise TypeError(f"{self.name}.translate takes no options, got {', '.join(options)}")
        if self.check_direction(direction) not in self.directions:
            raise ValueError(f"this {self.name} model is one-sided (model.direction={self.cfg.direction}): "
                             f"it has no {direction} generator")
        return self.nets["gen"][direction]

    @staticmethod
    def check_direction(direction: str) -> str:
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, got '{direction}'")
        return direction


METHODS: Registry[type[Method]] = Registry("method")


# -- capabilities: what only some methods can do, declared once and checked by ``require`` --------------------
@runtime_checkable
class StyleSpace(Protocol):
    """A style space: images are translated with style codes (vectors), read from example images or given.
    MUNIT and TUNIT."""


    def encode_style(self, domain: str, x: Tensor) -> Tensor:
        """The style codes (N x style_dim) of images ``x`` of ``domain``."""
        ...

    def translate_with_styles(self, x: Tensor, direction: str, styles: Tensor, paired: bool = False) -> Tensor:
        """Every input with every code (K x style_dim): N*K images, input-major; ``paired``: input i with code
        i (N codes, N images)."""
        ...


@runtime_checkable
class StylePrior(Protocol):
    """A prior over the style space that codes are drawn from (and an encoder to read codes back). MUNIT."""


    def sample_styles(self, count: int, seed: int | None = None, device: torch.device | str = "cpu") -> Tensor:
        """``count`` codes from the prior; reproducible when ``seed`` is given."""
        ...

    def encode_style(self, domain: str, x: Tensor) -> Tensor:
        ...


@runtime_checkable
class DiscoveredDomains(Protocol):
    """Domains the model discovered in one unlabelled collection (pseudo domains), each with an average style.
    TUNIT."""


    def domain_probabilities_and_styles(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Soft assignment of images ``x`` to the K domains (N x K) and their style codes (N x style_dim)."""
        ...

    def domain_style(self, domain: int) -> Tensor:
        """The average style code of discovered domain ``domain`` (1 x style_dim)."""
        ...


@runtime_checkable
class AuxiliaryClassifier(Protocol):
    """A class head trained beside the translation (domain adaptation). UNIT with ``model.classes`` > 0."""

    def classify(self, x: Tensor, domain: str) -> Tensor:
        """Class logits (N x classes) of images ``x`` of ``domain``."""
        ...


@runtime_checkable
class LandmarkGeometry(Protocol):
    """Landmark points the model reads from images and decodes its translations from. TransGaGa."""

    def landmarks(self, domain: str, x: Tensor) -> Tensor:
        """The landmarks (N x K x 2, (x, y) in [-1, 1], y down) of images ``x`` of ``domain``."""
        ...

    def translated_landmarks(self, x: Tensor, direction: str) -> Tensor:
        """The landmarks (N x K x 2) that the translations of ``x`` in ``direction`` are decoded from."""
        ...


CAPABILITIES: dict[type, str] = {StyleSpace: "style space", StylePrior: "style prior",
                                  DiscoveredDomains: "discovered domains", AuxiliaryClassifier: "auxiliary classifier",
                                  LandmarkGeometry: "landmark geometry"}
"""Each capability and its name in messages."""


class MissingCapabilityError(ValueError):
    """A model was asked for a capability its method does not have."""


def has_capability(model: Any, capability: type) -> bool:
    """Whether ``model`` (a method, or any object implementing the protocol) has ``capability``."""
    provides = getattr(model, "provides", None)
    return bool(provides(capability)) if callable(provides) else isinstance(model, capability)


def methods_with(capability: type) -> list[str]:
    """Names of the registered methods whose class implements ``capability``."""
    return sorted(name for name in METHODS.names() if issubclass(METHODS.get(name), capability))


def require(model: Any, capability: type, needed_for: str) -> Any:
    """``model`` itself when it has ``capability``; else a ``MissingCapabilityError`` such as "method cyclegan
    has no style space (needed for --reference); methods with one: munit, tunit, tunit_peer"."""
    if has_capability(model, capability):
        return model
    name = getattr(model, "name", type(model).__name__)
    what = CAPABILITIES.get(capability, capability.__name__)
    having = ", ".join(methods_with(capability)) or "none"
    raise MissingCapabilityError(f"method {name} has no {what} (needed for {needed_for}); methods with one: "
                                 f"{having}")


def build_method(name: str, cfg: Any, weights: dict[str, float], channels: dict[str, int],
                 image_size: int) -> Method:
    return METHODS.get(name)(cfg, weights, channels, image_size)


def cat_batches(*xs: Tensor) -> Tensor:
    """Concatenate along the batch axis, so one call of a shared network serves several inputs."""
    return torch.cat(xs, 0) if len(xs) > 1 else xs[0]


def split_like(x: Tensor, parts: list[Tensor]) -> list[Tensor]:
    """Undo ``cat_batches``: ``x`` split along the batch axis into pieces as long as ``parts``."""
    return list(x.split([p.shape[0] for p in parts]))


# -- shared by the two-domain GAN methods (one multi-scale discriminator per domain) ------------------------
@dataclass
class MultiScaleGANConfig:
    """Options the UNIT family shares: generator width/depth and the multi-scale discriminators.

    Defaults are the official UNIT/MUNIT ones: gen dim 64, 2 downsamplings, 4 residual blocks, ReLU, reflect
    padding, kaiming init; discriminators dim 64, 4 layers, 3 scales, no norm, LSGAN.
    """

    dim: int = 64
    n_down: int = 2
    n_res: int = 4
    activation: str = "relu"
    pad_type: str = "reflect"
    init: str = "kaiming"
    dis_dim: int = 64
    dis_layers: int = 4
    dis_scales: int = 3
    dis_norm: str = "none"
    dis_spectral: bool = False
    dis_shared_layers: int = 0
    """Last conv layers of every discriminator scale (the logit conv included) that D_a and D_b share, as CoGAN
    shares its discriminators' high-level layers (UNIT's digit experiments do so); 0: separate discriminators.
    At most ``dis_layers - 1``: the first layer sees each domain's own channels."""
    gan_type: str = "lsgan"


def check_gan_setup(cfg: Any, image_size: int) -> None:
    """``model.gan_type`` is known; ``image_size`` suits the discriminators (``dis_layers``, ``dis_scales``)
    and the generator's ``n_down`` stride-2 layers."""
    if cfg.gan_type not in GAN_KINDS:
        raise ValueError(f"model.gan_type must be one of {', '.join(GAN_KINDS)}, got '{cfg.gan_type}'")
    smallest = MultiScaleDiscriminator.smallest_input(cfg.dis_layers, cfg.dis_scales)
    if image_size < smallest:
        raise ValueError(f"data.image_size={image_size} is too small for {cfg.dis_scales} discriminator "
                         f"scales of {cfg.dis_layers} layers (needs >= {smallest})")
    if image_size % 2**cfg.n_down:
        raise ValueError(f"data.image_size={image_size} must be divisible by 2**model.n_down")
    if not 0 <= cfg.dis_shared_layers < cfg.dis_layers:
        raise ValueError(f"model.dis_shared_layers must be within 0..dis_layers-1={cfg.dis_layers - 1}, "
                         f"got {cfg.dis_shared_layers}")


def domain_discriminators(cfg: Any, channels: dict[str, int]) -> nn.ModuleDict:
    """One ``MultiScaleDiscriminator`` per domain from the ``dis_*`` options (LeakyReLU, as UNIT/MUNIT); with
    ``dis_shared_layers`` k > 0, every domain's scale s reuses the first domain's last k conv blocks and logit
    conv (the same modules, so one set of weights)."""
    dis = nn.ModuleDict({
        d: MultiScaleDiscriminator(c, cfg.dis_dim, cfg.dis_layers, cfg.dis_scales, cfg.dis_norm, "lrelu",
                                   cfg.pad_type, cfg.dis_spectral)
        for d, c in channels.items()
    })
    shared = getattr(cfg, "dis_shared_layers", 0)
    if shared:
        first, *others = list(dis.values())
        for other in others:
            for mine, theirs in zip(first.scales, other.scales, strict=True):
                for i in range(len(mine) - shared - 1, len(mine)):
                    theirs[i] = mine[i]
    return dis


def adversarial_terms(group: str, dis: nn.ModuleDict, real: dict[str, Tensor], fake: dict[str, Tensor],
                      kind: str, penalty: bool = False, adversarial: bool = True) -> dict[str, Tensor]:
    """``gan/<d>`` for each domain d of ``fake`` (the translations into d), judged by ``dis[d]``.

    Group ``dis``: D_d's loss on ``real[d]`` against ``fake[d]`` detached (one call on both), plus ``gp/<d>``
    when ``penalty`` (WGAN-GP). Any other group: the generator's loss on D_d(fake[d]). With ``adversarial``
    False (the ``gan`` weight is 0) no ``gan`` term is computed, so D runs only for the penalty, if any.
    """
    terms: dict[str, Tensor] = {}
    for d, fake_d in fake.items():
        if group != "dis":
            if adversarial:
                terms[f"gan/{d}"] = generator_loss(dis[d](fake_d), kind)
            continue
        real_d, fake_d = real[d], fake_d.detach()
        if adversarial:
            halves = [t.split([real_d.shape[0], fake_d.shape[0]]) for t in dis[d](torch.cat([real_d, fake_d]))]
            terms[f"gan/{d}"] = discriminator_loss([r for r, _ in halves], [f for _, f in halves], kind)
        if penalty:
            terms[f"gp/{d}"] = gradient_penalty(dis[d], real_d, fake_d)
    return terms
