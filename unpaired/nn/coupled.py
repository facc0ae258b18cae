"""Coupled networks of CoGAN (Liu & Tuzel, "Coupled Generative Adversarial Networks", NeurIPS 2016): two generators
that share their first layers and two discriminators that share their last, so that one noise vector gives a pair
of corresponding images and one set of high-level features judges both domains.

Sharing is structural: the shared layers are *one* module, used by both domains (so one set of parameters, whose
gradients add up over the domains); only the per-domain layers are separate modules.

The architecture is the paper's digit one (supplementary Table 1, as its official code builds it for 28 x 28):

- generators: a 4x4 transposed conv from the noise z (N x latent x 1 x 1) to 4x4 with ``8 * dim`` channels, then
  3x3 stride-2 transposed convs halving the channels (4 -> 7 -> 13 -> 25 at 28 px; 1024, 512, 256, 128 channels at
  dim 128), each with batch norm (with an affine here; the official code's has none) and PReLU: all shared; then
  per domain one transposed conv to the image (6x6 at 28 px: its kernel is what takes the last map to the image
  side), tanh (the paper's sigmoid, in [-1, 1]);
- discriminators: per domain a 5x5 conv (20) + 2x2 max pool; shared: a 5x5 conv (50) + 2x2 max pool, a conv over
  what remains of the map (4x4 at 28 px: the paper's FC 500) + PReLU, and a 1x1 conv to the real/fake logit. The
  domain-adaptation classifier (paper Sec. 5) is a head on the shared 500 features.

Other sizes keep the layers and fit the two kernels that meet the image side (the generator's last, the
discriminators' third), so the same networks run at 16 or 32 px.
"""

from __future__ import annotations

from torch import Tensor, nn

from unpaired.nn.blocks import ConvBlock, make_activation, make_norm


def generator_sides(image_size: int) -> list[int]:
    """Sides of the shared generator maps: 4, then s -> 2s - 1 (3x3 stride-2 transposed convs, padding 1) while the
    next side still fits in the image (4, 7, 13, 25 at 28 px)."""
    sides = [4]
    while 2 * sides[-1] - 1 <= image_size - 2:  # the last, private layer needs a kernel of at least 3
        sides.append(2 * sides[-1] - 1)
    return sides


def discriminator_side(image_size: int) -> int:
    """Side of the map that the shared 'FC' conv covers: two 5x5 valid convs, each followed by a 2x2 max pool."""
    return ((image_size - 4) // 2 - 4) // 2


def transposed_block(in_channels: int, out_channels: int, kernel: int, stride: int, padding: int) -> nn.Sequential:
    """transposed conv -> batch norm -> PReLU (the bias is left out: batch norm cancels it)."""
    return nn.Sequential(nn.ConvTranspose2d(in_channels, out_channels, kernel, stride, padding, bias=False),
                         make_norm("bn", out_channels), make_activation("prelu"))


class CoupledGenerators(nn.Module):
    """g_a(z), g_b(z): ``shared`` (the first layers, one module) then ``heads[domain]`` (the last layer)."""

    def __init__(self, latent_dim: int, channels: dict[str, int], image_size: int, dim: int = 128) -> None:
        super().__init__()
        sides = generator_sides(image_size)
        if len(sides) < 2:
            raise ValueError(f"data.image_size={image_size} is too small for CoGAN's generators (needs >= 9)")
        self.latent_dim = latent_dim
        width = dim * 2 ** (len(sides) - 1)  # 8 * dim at 28 px: 1024 at the paper's dim 128
        layers = [transposed_block(latent_dim, width, 4, 1, 0)]
        for _ in sides[1:]:
            layers.append(transposed_block(width, width // 2, 3, 2, 1))
            width //= 2
        self.shared = nn.Sequential(*layers)
        kernel = image_size - sides[-1] + 3  # with padding 1: side + kernel - 3 = image_size
        self.heads = nn.ModuleDict({d: nn.Sequential(nn.ConvTranspose2d(width, c, kernel, 1, 1), nn.Tanh())
                                    for d, c in channels.items()})

    def forward(self, z: Tensor, domains: tuple[str, ...] = ("a", "b")) -> dict[str, Tensor]:
        """Images of ``domains`` from noise ``z`` (N x latent_dim): the shared layers run once for all of them."""
        h = self.shared(z.view(z.shape[0], self.latent_dim, 1, 1))
        return {d: self.heads[d](h) for d in domains}


class CoupledDiscriminators(nn.Module):
    """f_a, f_b: ``first[domain]`` (the first layer) then ``shared`` (the last layers, one module), to ``logit``;
    ``features`` are the shared 'FC 500' features, which the optional ``classifier`` head reads."""

    def __init__(self, channels: dict[str, int], image_size: int, dim: int = 20, dim2: int = 50,
                 features: int = 500, classes: int = 0) -> None:
        super().__init__()
        side = discriminator_side(image_size)
        if side < 1:
            raise ValueError(f"data.image_size={image_size} is too small for CoGAN's discriminators (needs >= 16)")
        self.first = nn.ModuleDict({d: nn.Sequential(ConvBlock(c, dim, 5, activation="none"), nn.MaxPool2d(2))
                                    for d, c in channels.items()})
        self.shared = nn.Sequential(ConvBlock(dim, dim2, 5, activation="none"), nn.MaxPool2d(2),
                                    ConvBlock(dim2, features, side, activation="prelu"))
        self.logit = nn.Conv2d(features, 1, 1)
        self.classifier = nn.Linear(features, classes) if classes else None

    def features(self, x: Tensor, domain: str) -> Tensor:
        return self.shared(self.first[domain](x))

    def forward(self, x: Tensor, domain: str) -> Tensor:
        """Real/fake logits (N x 1 x 1 x 1) of images ``x`` of ``domain``."""
        return self.logit(self.features(x, domain))

    def classify(self, x: Tensor, domain: str) -> Tensor:
        """Class logits (N x classes) of images ``x`` of ``domain``, from the shared features."""
        if self.classifier is None:
            raise ValueError("these discriminators have no classifier head (model.classes = 0)")
        return self.classifier(self.features(x, domain).float().flatten(1))
