"""Capabilities declared in ``unpaired.methods.base`` (style space, style prior, discovered domains, auxiliary
classifier): who has them, the error a caller gets for a method without one, and the shared content + AdaIN
generator of MUNIT and TUNIT, whose checkpoint keys must not change."""

from __future__ import annotations

import hashlib

import pytest
import torch

from unpaired.clusters import assign
from unpaired.methods import METHODS, build_method
from unpaired.methods.base import (
    AuxiliaryClassifier,
    DiscoveredDomains,
    LandmarkGeometry,
    MissingCapabilityError,
    StylePrior,
    StyleSpace,
    has_capability,
    methods_with,
    require,
)
from unpaired.methods.munit import MUNITConfig
from unpaired.methods.tunit import TUNITConfig
from unpaired.methods.unit import UNITConfig
from unpaired.metrics.adaptation import head_accuracy
from unpaired.nn.generators import AdaINGenerator


def tiny_munit():
    torch.manual_seed(0)
    cfg = MUNITConfig(dim=4, n_res=2, mlp_dim=16, dis_dim=4, dis_layers=2, dis_scales=2, shared_blocks=1)
    return build_method("munit", cfg, {}, {"a": 3, "b": 1}, 16)


def tiny_tunit():
    torch.manual_seed(0)
    cfg = TUNITConfig(dim=4, guide_dim=4, mlp_dim=16, dis_dim=4, style_dim=8, k=3, queue_size=8, content_size=8)
    return build_method("tunit", cfg, {}, {"a": 3}, 32)


def tiny_unit(classes=0):
    torch.manual_seed(0)
    cfg = UNITConfig(dim=4, n_res=2, shared_blocks=1, dis_dim=4, dis_layers=2, dis_scales=2, classes=classes)
    return build_method("unit", cfg, {}, {"a": 3, "b": 3}, 16)


def tiny_cyclegan():
    from test_one_to_one import tiny_method
    return tiny_method("cyclegan")


class _Translator:
    def __init__(self, method):
        self.method, self.image_size, self.device = method, method.image_size, torch.device("cpu")


def test_who_has_which_capability():
    assert methods_with(StyleSpace) == ["munit", "transgaga", "tunit", "tunit_peer"]
    assert methods_with(StylePrior) == ["munit", "transgaga"]
    assert methods_with(LandmarkGeometry) == ["transgaga"]
    assert methods_with(DiscoveredDomains) == ["tunit", "tunit_peer"]
    assert methods_with(AuxiliaryClassifier) == ["cogan", "unit"]
    munit, tunit = tiny_munit(), tiny_tunit()
    assert has_capability(munit, StyleSpace) and has_capability(munit, StylePrior)
    assert has_capability(tunit, StyleSpace) and has_capability(tunit, DiscoveredDomains)
    assert not has_capability(tunit, StylePrior) and not has_capability(munit, DiscoveredDomains)
    # UNIT's classifier head exists only with model.classes > 0
    assert not has_capability(tiny_unit(), AuxiliaryClassifier)
    assert has_capability(tiny_unit(classes=10), AuxiliaryClassifier)
    assert require(munit, StyleSpace, "a test") is munit


@pytest.mark.parametrize(("make", "capability", "message"), [
    (tiny_cyclegan, StyleSpace, "method cyclegan has no style space (needed for a test); methods with one: munit, "
                                "transgaga, tunit, tunit_peer"),
    (tiny_tunit, StylePrior, "method tunit has no style prior (needed for a test); methods with one: munit, "
                              "transgaga"),
    (tiny_munit, DiscoveredDomains, "method munit has no discovered domains (needed for a test); methods with one: "
                                    "tunit, tunit_peer"),
    (tiny_unit, AuxiliaryClassifier, "method unit has no auxiliary classifier (needed for a test); methods with "
                                     "one: cogan, unit"),
])
def test_require_names_the_method_and_the_capability(make, capability, message):
    with pytest.raises(MissingCapabilityError) as error:
        require(make(), capability, "a test")
    assert str(error.value) == message


def test_callers_check_their_capability():
    x = torch.zeros(2, 3, 16, 16)
    with pytest.raises(MissingCapabilityError, match="method munit has no discovered domains"):
        assign(_Translator(tiny_munit()), [torch.zeros(3, 16, 16, dtype=torch.uint8)] * 2)
    with pytest.raises(MissingCapabilityError, match="method unit has no auxiliary classifier"):
        head_accuracy(_Translator(tiny_unit()), torch.zeros(2, 16, 16, 3, dtype=torch.uint8), torch.zeros(2), "b")
    from unpaired.metrics.diversity import style_reconstruction_error
    with pytest.raises(ValueError, match="method tunit has no style prior"):
        style_reconstruction_error(tiny_tunit(), x, "a2b", k=2)


def test_munit_and_tunit_share_the_content_adain_generator_and_translate_with_styles():
    munit, tunit = tiny_munit().eval(), tiny_tunit().eval()
    assert all(isinstance(munit.nets["gen"][d], AdaINGenerator) for d in "ab")
    assert isinstance(tunit.generator, AdaINGenerator)
    for method, x, dim in ((munit, torch.randn(2, 3, 16, 16), 8), (tunit, torch.randn(2, 3, 32, 32), 8)):
        with torch.no_grad():
            codes = torch.randn(3, dim)
            every = method.translate_with_styles(x, "a2b", codes).unflatten(0, (2, 3))
            paired = method.translate_with_styles(x, "a2b", codes[:2], paired=True)
            assert torch.allclose(paired[0], every[0, 0], atol=1e-5) and torch.allclose(paired[1], every[1, 1],
                                                                                         atol=1e-5)
            with pytest.raises(ValueError, match="style codes must be K x 8"):
                method.translate_with_styles(x, "a2b", torch.randn(3, dim + 1))
            code = method.encode_style("b", x[:1]) if method is tunit else method.encode_style("a", x[:1])
            assert code.shape == (1, dim)


# the checkpoint keys before the generator was shared (sorted, one per line, sha256) for the two configs above;
# tunit's less the 4 of E's and E''s removed over-clustering head (167 keys, a1fdb67d... with model.over_k=2)
KEYS_BEFORE = {"munit": (102, "acf34dfa80e114d2287a0cc1633e72a991452312a34a5becb441f4082d5f8f31"),
               "tunit": (163, "3ad070bcb0fce52a7d7014abee9a7c992f257aec51d0ff7dc2b3f88ceb73275a")}
GENERATOR_KEYS_BEFORE = {
    "munit": ["nets.gen.a.content.0.0.weight", "nets.gen.a.content.1.0.weight", "nets.gen.a.content.2.0.weight",
              "nets.gen.a.content.3.0.body.0.0.weight", "nets.gen.a.content.3.0.body.1.0.weight",
              "nets.gen.a.content.3.1.body.0.0.weight", "nets.gen.a.content.3.1.body.1.0.weight",
              "nets.gen.a.decoder.0.0.body.0.0.weight", "nets.gen.a.decoder.0.0.body.1.0.weight",
              "nets.gen.a.decoder.0.1.body.0.0.weight", "nets.gen.a.decoder.0.1.body.1.0.weight",
              "nets.gen.a.decoder.1.0.bias", "nets.gen.a.decoder.1.0.weight", "nets.gen.a.decoder.1.1.beta",
              "nets.gen.a.decoder.1.1.gamma", "nets.gen.a.decoder.2.0.bias", "nets.gen.a.decoder.2.0.weight",
              "nets.gen.a.decoder.2.1.beta", "nets.gen.a.decoder.2.1.gamma", "nets.gen.a.decoder.3.0.bias",
              "nets.gen.a.decoder.3.0.weight", "nets.gen.a.mlp.0.0.bias", "nets.gen.a.mlp.0.0.weight",
              "nets.gen.a.mlp.1.0.bias", "nets.gen.a.mlp.1.0.weight", "nets.gen.a.mlp.2.bias",
              "nets.gen.a.mlp.2.weight", "nets.gen.a.style.0.0.bias", "nets.gen.a.style.0.0.weight",
              "nets.gen.a.style.1.0.bias", "nets.gen.a.style.1.0.weight", "nets.gen.a.style.2.0.bias",
              "nets.gen.a.style.2.0.weight", "nets.gen.a.style.3.0.bias", "nets.gen.a.style.3.0.weight",
              "nets.gen.a.style.4.0.bias", "nets.gen.a.style.4.0.weight", "nets.gen.a.style.6.bias",
              "nets.gen.a.style.6.weight"],
    "tunit": ["nets.gen.generator.content.0.0.weight", "nets.gen.generator.content.1.0.weight",
              "nets.gen.generator.content.2.0.weight", "nets.gen.generator.content.3.0.body.0.0.weight",
              "nets.gen.generator.content.3.0.body.1.0.weight", "nets.gen.generator.content.3.1.body.0.0.weight",
              "nets.gen.generator.content.3.1.body.1.0.weight", "nets.gen.generator.decoder.0.0.body.0.0.weight",
              "nets.gen.generator.decoder.0.0.body.1.0.weight", "nets.gen.generator.decoder.0.1.body.0.0.weight",
              "nets.gen.generator.decoder.0.1.body.1.0.weight", "nets.gen.generator.decoder.1.0.weight",
              "nets.gen.generator.decoder.2.0.weight", "nets.gen.generator.decoder.3.0.bias",
              "nets.gen.generator.decoder.3.0.weight", "nets.gen.generator.mlp.0.0.bias",
              "nets.gen.generator.mlp.0.0.weight", "nets.gen.generator.mlp.1.0.bias",
              "nets.gen.generator.mlp.1.0.weight", "nets.gen.generator.mlp.2.bias", "nets.gen.generator.mlp.2.weight"],
}


@pytest.mark.parametrize("name", ["munit", "tunit"])
def test_state_dict_keys_unchanged_by_the_shared_generator(name):
    keys = sorted({"munit": tiny_munit, "tunit": tiny_tunit}[name]().state_dict())
    generator = [k for k in keys if k.startswith(("nets.gen.a.", "nets.gen.generator."))]
    assert generator == GENERATOR_KEYS_BEFORE[name]
    assert (len(keys), hashlib.sha256("\n".join(keys).encode()).hexdigest()) == KEYS_BEFORE[name]
    assert name in METHODS
