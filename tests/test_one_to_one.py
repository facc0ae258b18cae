"""The one-to-one family (CycleGAN with its DiscoGAN/DualGAN presets, DistanceGAN, GcGAN): networks, the
consistency losses, the image pool, one-sidedness, learning, exact resume, inference and the CLI."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import torch
from conftest import assert_identical, make_image_folders
from test_cli import assert_error, run_cli, sets

from unpaired.config import build_config, to_object, weights_dict
from unpaired.data import TensorSource
from unpaired.losses.consistency import (
    cycle_consistency,
    distance_loss,
    distance_statistics,
    geometric_transform,
    geometry_consistency,
    inverse_geometric_transform,
    pairwise_distances,
    self_distances,
)
from unpaired.methods import METHODS, build_method
from unpaired.methods.cyclegan import CycleGAN
from unpaired.methods.distancegan import DistanceGAN
from unpaired.methods.gcgan import GcGAN
from unpaired.nn.discriminators import PatchDiscriminator
from unpaired.nn.generators import ResnetGenerator, UNetGenerator
from unpaired.nn.image_pool import ImagePool
from unpaired.training.checkpoint import latest_checkpoint, load_checkpoint
from unpaired.training.trainer import Trainer

METHOD_NAMES = ("cyclegan", "distancegan", "gcgan")
TINY = ["model.dim=8", "model.n_res=2", "model.dis_dim=8", "model.dis_layers=2", "data.image_size=16",
        "train.batch_size=4", "train.num_samples=3", "train.progress=false", "train.tensorboard=false"]
"""--set overrides on top of each method's shipped digits config: networks small enough for milliseconds."""


def tiny_config(method: str, data: Path, *overrides: str):
    return build_config(method, [f"{method}_digits"], [*TINY, f"data.source={data}", *overrides])


def tiny_method(method: str, *overrides: str, channels=None, image_size: int = 16):
    """A method built from its shipped digits config shrunk by TINY (no data needed)."""
    torch.manual_seed(0)
    cfg = build_config(method, [f"{method}_digits"], [*TINY, "data.source=unused", *overrides])
    return build_method(method, to_object(cfg, "model"), weights_dict(cfg), channels or {"a": 3, "b": 3}, image_size)


def batch(n: int = 2, size: int = 16, channels=(3, 3)) -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return {"a": torch.rand(n, channels[0], size, size) * 2 - 1, "b": torch.rand(n, channels[1], size, size) * 2 - 1}


def sources(n: int = 12, size: int = 16, channels: int = 3, seed: int = 0) -> dict[str, TensorSource]:
    gen = torch.Generator().manual_seed(seed)
    return {d: TensorSource(torch.randint(0, 256, (n, channels, size, size), generator=gen, dtype=torch.uint8),
                            name=f"random_{d}") for d in "ab"}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_image_folders(tmp_path / "data")


def test_registered():
    assert METHODS.get("cyclegan") is CycleGAN
    assert METHODS.get("distancegan") is DistanceGAN
    assert METHODS.get("gcgan") is GcGAN


# -------------------- networks


def test_resnet_generator_layout():
    """c7s1-64, d128, d256, R256 x n, u128, u64, c7s1-3 (CycleGAN appendix 7.2); 6 blocks <= 128 px, 9 above."""
    g = ResnetGenerator(3, 3, 64, 2, 9)
    convs = [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert [(type(c).__name__, c.out_channels, c.kernel_size[0], c.stride[0]) for c in convs[:3]] == [
        ("PaddedConv2d", 64, 7, 1), ("PaddedConv2d", 128, 3, 2), ("PaddedConv2d", 256, 3, 2)]
    assert [(type(c).__name__, c.out_channels, c.stride[0]) for c in convs[-3:]] == [
        ("ConvTranspose2d", 128, 2), ("ConvTranspose2d", 64, 2), ("PaddedConv2d", 3, 1)]
    assert len(convs) == 3 + 2 * 9 + 3
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in g.modules()) == 3 + 2 * 9 + 2
    with torch.no_grad():
        y = ResnetGenerator(1, 3, 8, 2, 2)(torch.randn(2, 1, 16, 24))
    assert y.shape == (2, 3, 16, 24) and y.abs().max() <= 1
    blocks = {size: len(tiny_method("cyclegan", "model.n_res=null", image_size=size).nets["gen"]["a2b"][3])
              for size in (128, 136)}
    assert blocks == {128: 6, 136: 9}


@pytest.mark.parametrize("skips", [True, False])
def test_unet_and_encoder_decoder(skips):
    g = UNetGenerator(1, 3, 4, 4, "in", skips=skips, dropout=0.5).eval()
    with torch.no_grad():
        y = g(torch.randn(2, 1, 32, 32))
    assert y.shape == (2, 3, 32, 32) and y.abs().max() <= 1
    widths = [block[0].in_channels for block in g.up] + [g.out[0].in_channels]
    assert widths == ([32, 32, 16, 8] if skips else [32, 16, 8, 4])
    assert [any(isinstance(m, torch.nn.Dropout) for m in block) for block in g.up] == [True, True, True]


def test_patchgan_is_70x70():
    """The CycleGAN discriminator: one logit per 70x70 patch, 30x30 logits at 256 px."""
    d = PatchDiscriminator(3, 8, 3, "none", "lrelu", "zero", n_stride1=1, head_kernel=4)  # no norm: local
    assert PatchDiscriminator.output_size(256, 3, 1, 4) == 30
    x = torch.randn(1, 3, 128, 128, requires_grad=True)
    logits = d(x)
    assert logits.shape == (1, 1, 14, 14) == (1, 1, PatchDiscriminator.output_size(128, 3, 1, 4), 14)
    logits[0, 0, 7, 7].backward()
    rows = x.grad[0].abs().sum((0, 2)).nonzero().flatten()
    cols = x.grad[0].abs().sum((0, 1)).nonzero().flatten()
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70
    # the UNIT default head is unchanged: 1x1 conv, n_layers stride-2 convs
    assert PatchDiscriminator(3, 8, 4)(torch.zeros(1, 3, 32, 32)).shape == (1, 1, 2, 2)


def test_cyclegan_networks_and_groups():
    method = tiny_method("cyclegan")
    assert method.groups == ["gen", "dis"]  # generators first, as the official optimize_parameters
    assert set(method.nets["gen"]) == {"a2b", "b2a"} and set(method.nets["dis"]) == {"a", "b"}
    assert set(method.pools) == {"a", "b"} and method.pools["a"].size == 50


SHIPPED = {"cyclegan_digits": "cyclegan", "cyclegan_256": "cyclegan", "discogan_64": "cyclegan",
           "dualgan_256": "cyclegan", "distancegan_digits": "distancegan", "gcgan_digits": "gcgan",
           "gcgan_maps": "gcgan"}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_configs_apply_and_build(name):
    from omegaconf import OmegaConf

    from unpaired.config import PACKAGED_CONFIGS

    cfg = build_config(None, [name], ["data.source=unused"])
    assert cfg.method == SHIPPED[name]
    raw = OmegaConf.load(PACKAGED_CONFIGS / f"{name}.yaml")
    for section in ("model", "loss_weights", "optim", "data", "train"):  # every value in the file is applied
        for key, value in raw.get(section, {}).items():
            assert cfg[section][key] == value, f"{section}.{key}"
    if cfg.optim.lr_policy == "linear":  # constant for the first half, then linear decay to 0
        assert cfg.optim.decay_fraction == 0.5 and cfg.optim.decay_start == 0
    channels = 1 if name.endswith("digits") else 3
    method = build_method(cfg.method, to_object(cfg, "model"), weights_dict(cfg), {"a": channels, "b": channels},
                          cfg.data.image_size)
    assert method.image_size % method.size_multiple == 0


# -------------------- geometric transforms


@pytest.mark.parametrize("kind", ["rot90", "vflip"])
@pytest.mark.parametrize("shape", [(2, 3, 8, 8), (3, 5, 7), (1, 1, 6, 4)])
def test_geometric_transforms_and_inverses_are_exact(kind, shape):
    x = torch.randn(shape)
    y = geometric_transform(x, kind)
    assert not torch.equal(y, x)
    assert torch.equal(inverse_geometric_transform(y, kind), x)
    assert torch.equal(geometric_transform(inverse_geometric_transform(x, kind), kind), x)
    assert sorted(y.flatten().tolist()) == sorted(x.flatten().tolist())  # pixels moved, never changed


def test_rot90_is_clockwise_and_vflip_upside_down():
    x = torch.tensor([[1, 2], [3, 4]])
    assert geometric_transform(x, "rot90").tolist() == [[3, 1], [4, 2]]
    assert geometric_transform(x, "vflip").tolist() == [[3, 4], [1, 2]]
    images = torch.randn(2, 3, 5, 5)
    # the official rot90(., 0): transpose H/W then reverse the columns
    assert torch.equal(geometric_transform(images, "rot90"), images.transpose(2, 3).flip(3))
    four = images
    for _ in range(4):
        four = geometric_transform(four, "rot90")
    assert torch.equal(four, images)
    with pytest.raises(ValueError, match="unknown geometric transform 'hflip'; valid: rot90, vflip"):
        geometric_transform(images, "hflip")


def test_geometry_consistency_terms():
    y = torch.randn(2, 3, 6, 6)
    for kind in ("rot90", "vflip"):
        zero = geometry_consistency(y, geometric_transform(y, kind), kind)
        assert [float(t) for t in zero] == [0.0, 0.0]
    y_f = torch.randn(2, 3, 6, 6)
    a = y.clone().requires_grad_(True)
    b = y_f.clone().requires_grad_(True)
    term_x, term_fx = geometry_consistency(a, b, "rot90")
    torch.testing.assert_close(term_x, (y - torch.rot90(y_f, 1, (2, 3))).abs().mean())
    torch.testing.assert_close(term_fx, (y_f - torch.rot90(y, -1, (2, 3))).abs().mean())
    term_x.backward()  # the paper's equation: each term reaches both translations
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_cycle_metrics():
    x, r = torch.zeros(1, 1, 2, 2), torch.tensor([[[[1.0, -1.0], [2.0, 0.0]]]])
    assert float(cycle_consistency(r, x, "l1")) == 1.0
    assert float(cycle_consistency(r, x, "mse")) == 1.5
    with pytest.raises(ValueError, match="unknown cycle metric"):
        cycle_consistency(r, x, "l2")


# -------------------- distances


def test_pairwise_and_self_distances_match_a_direct_computation():
    x = torch.randn(5, 2, 4, 6)
    direct = [(x[i] - x[j]).abs().mean() for i, j in itertools.combinations(range(5), 2)]
    torch.testing.assert_close(pairwise_distances(x), torch.stack(direct))
    halves = [(x[i, :, :, :3] - x[i, :, :, 3:]).abs().mean() for i in range(5)]
    torch.testing.assert_close(self_distances(x), torch.stack(halves))
    with pytest.raises(ValueError, match="even image width"):
        self_distances(torch.zeros(1, 1, 4, 5))


def test_distance_loss_formula():
    d_src, d_out = torch.tensor([1.0, 2.0, 4.0]), torch.tensor([3.0, 3.0, 5.0])
    stats_src, stats_tgt = (torch.tensor(2.0), torch.tensor(0.5)), (torch.tensor(4.0), torch.tensor(2.0))
    expected = ((d_src - 2) / 0.5 - (d_out - 4) / 2).abs().mean()
    torch.testing.assert_close(distance_loss(d_src, d_out, stats_src, stats_tgt), expected)
    torch.testing.assert_close(distance_loss(d_src, d_out), (d_src - d_out).abs().mean())
    with pytest.raises(ValueError, match="at least two images"):
        distance_loss(pairwise_distances(torch.zeros(1, 3, 4, 4)), pairwise_distances(torch.zeros(1, 3, 4, 4)))


def _direct_stats(values: list[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    return mean, (sum((v - mean) ** 2 for v in values) / len(values)) ** 0.5  # population std, as np.std


def test_distance_statistics_match_a_direct_computation():
    images = torch.randint(0, 256, (11, 3, 6, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    x = images.double() / 127.5 - 1  # the training space
    pairs = [float((x[i] - x[j]).abs().mean()) for i, j in itertools.combinations(range(11), 2)]
    selfs = [float((x[i, ..., :4] - x[i, ..., 4:]).abs().mean()) for i in range(11)]
    for chunk in (3, 64):  # several blocks (diagonal and off-diagonal), and one
        mean, std = distance_statistics(images, "pairwise", scale=1 / 127.5, chunk=chunk)
        assert mean == pytest.approx(_direct_stats(pairs)[0], rel=1e-6)
        assert std == pytest.approx(_direct_stats(pairs)[1], rel=1e-5)
    mean, std = distance_statistics(images, "self", scale=1 / 127.5, chunk=4)
    assert (mean, std) == pytest.approx(_direct_stats(selfs), rel=1e-5)
    assert distance_statistics(x, "pairwise") == pytest.approx(_direct_stats(pairs), rel=1e-5)
    with pytest.raises(ValueError, match="at least two images"):
        distance_statistics(images[:1], "pairwise")


def test_distancegan_prepare_estimates_the_statistics_of_each_domain():
    method = tiny_method("distancegan", "loss_weights.self_distance=1", "model.stats_images=5")
    srcs = sources(n=9, size=20)  # larger than the training size: centre crops, as the training images
    method.prepare(srcs)
    for row, d in enumerate("ab"):
        picks = [0, 2, 4, 6, 8]  # 5 of 9, evenly spaced
        x = srcs[d].images[picks, :, 2:18, 2:18].double() / 127.5 - 1
        pairs = [float((x[i] - x[j]).abs().mean()) for i, j in itertools.combinations(range(5), 2)]
        selfs = [float((x[i, ..., :8] - x[i, ..., 8:]).abs().mean()) for i in range(5)]
        assert method.pairwise_stats[row].tolist() == pytest.approx(_direct_stats(pairs), rel=1e-5)
        assert method.self_stats[row].tolist() == pytest.approx(_direct_stats(selfs), rel=1e-5)
    # buffers: they travel with the checkpoint
    state = method.state_dict()
    assert torch.equal(state["pairwise_stats"], method.pairwise_stats)
    fresh = tiny_method("distancegan", "loss_weights.self_distance=1")
    fresh.load_state_dict(state)
    assert torch.equal(fresh.self_stats, method.self_stats)


def test_distancegan_needs_its_statistics_and_pairs():
    method = tiny_method("distancegan")
    with pytest.raises(RuntimeError, match="pairwise distance statistics were not estimated"):
        method.loss_terms("gen", method.forward_step(batch()))
    method.prepare(sources())
    terms = method.loss_terms("gen", method.forward_step(batch(n=3)))
    assert set(terms) == {"gan/b", "distance/a2b"}
    with pytest.raises(ValueError, match=r"train.batch_size >= 2.*self_distance"):
        method.loss_terms("gen", method.forward_step(batch(n=1)))
    single = tiny_method("distancegan", "loss_weights.distance=0", "loss_weights.self_distance=1")
    single.prepare(sources())
    assert set(single.loss_terms("gen", single.forward_step(batch(n=1)))) == {"gan/b", "self_distance/a2b"}
    raw = tiny_method("distancegan", "model.normalize_distances=false")  # no statistics needed
    x = batch(n=3)
    step = raw.forward_step(x)
    expected = (pairwise_distances(x["a"]) - pairwise_distances(step["x_ab"])).abs().mean()
    torch.testing.assert_close(raw.loss_terms("gen", step)["distance/a2b"], expected)


# -------------------- one-sided methods


@pytest.mark.parametrize("method_name", ["distancegan", "gcgan"])
def test_one_sided_methods_build_no_b2a_generator(method_name):
    method = tiny_method(method_name)
    assert set(method.nets["gen"]) == {"a2b"}
    assert "a" not in method.nets["dis"]
    x = batch()
    with torch.no_grad():
        assert method.translate(x["a"], "a2b").shape == x["a"].shape
    with pytest.raises(ValueError, match=rf"this {method_name} model is one-sided \(model.direction=a2b\): "
                                         r"it has no b2a generator"):
        method.translate(x["b"], "b2a")
    with pytest.raises(ValueError, match="direction must be one of a2b, b2a"):
        method.translate(x["a"], "a2b_f")
    reverse = tiny_method(method_name, "model.direction=b2a")
    assert set(reverse.nets["gen"]) == {"b2a"}
    with pytest.raises(ValueError, match="no a2b generator"):
        reverse.translate(x["a"], "a2b")


def test_gcgan_networks_terms_and_visuals():
    method = tiny_method("gcgan")
    assert set(method.nets["dis"]) == {"b", "b_f"}  # D_Y and D_Y~
    step = method.forward_step(batch())
    assert torch.equal(step["fx_a"], geometric_transform(step["x_a"], "rot90"))
    assert set(method.loss_terms("gen", step)) == {"gan/b", "gan/b_f", "identity/b", "identity/b_f",
                                                  "geometry/a2b", "geometry/a2b_f"}
    assert set(method.loss_terms("dis", step)) == {"gan/b", "gan/b_f"}
    assert list(method.visuals(batch())) == list(GcGAN.visual_names)
    separate = tiny_method("gcgan", "model.shared_generator=false", "model.geometry=vflip")
    assert set(separate.nets["gen"]) == {"a2b", "a2b_f"}
    ids = {name: {id(p) for p in g.parameters()} for name, g in separate.nets["gen"].items()}
    assert not ids["a2b"] & ids["a2b_f"]
    step = separate.forward_step(batch())
    with torch.no_grad():  # G~ translated f(x): the f-branch output is the second generator's
        torch.testing.assert_close(step["x_ab_f"], separate.nets["gen"]["a2b_f"](geometric_transform(step["x_a"],
                                                                                                      "vflip")))


def test_geometry_term_trains_the_shared_generator_through_both_branches():
    method = tiny_method("gcgan", "loss_weights.identity=0")
    step = method.forward_step(batch())
    terms = method.loss_terms("gen", step)
    grads = torch.autograd.grad(terms["geometry/a2b"], [step["x_ab"], step["x_ab_f"]], retain_graph=True)
    assert all(g.abs().sum() > 0 for g in grads)
    weight = next(method.nets["gen"]["a2b"].parameters())
    assert torch.autograd.grad(terms["geometry/a2b_f"], weight)[0].abs().sum() > 0


# -------------------- zero weights skip work; invalid options


def test_zero_weights_skip_their_translations():
    method = tiny_method("cyclegan", "loss_weights.identity=0", "loss_weights.cycle=0")
    step = method.forward_step(batch())
    assert set(step) == {"x_a", "x_b", "x_ab", "x_ba"}
    assert set(method.loss_terms("gen", step)) == {"gan/a", "gan/b"}
    full = tiny_method("cyclegan")
    assert {"x_aba", "x_bab", "idt_a", "idt_b"} <= set(full.forward_step(batch()))
    gc = tiny_method("gcgan", "loss_weights.identity=0")
    assert not {"idt_b", "idt_b_f"} & set(gc.forward_step(batch()))


def test_invalid_options():
    with pytest.raises(ValueError, match=r"loss_weights.cycle needs generators both ways"):
        tiny_method("cyclegan", "model.direction=a2b")
    with pytest.raises(ValueError, match=r"loss_weights.identity needs the same channels in both domains"):
        tiny_method("cyclegan", channels={"a": 1, "b": 3})
    assert tiny_method("cyclegan", "loss_weights.identity=0", channels={"a": 1, "b": 3}).translate(
        torch.zeros(1, 1, 16, 16), "a2b").shape == (1, 3, 16, 16)
    with pytest.raises(ValueError, match=re.escape("model.dropout applies to the unet/encdec generators only")):
        tiny_method("cyclegan", "model.dropout=0.5")
    with pytest.raises(ValueError, match=re.escape("model.geometry must be one of rot90, vflip, got 'rot'")):
        tiny_method("gcgan", "model.geometry=rot")
    with pytest.raises(ValueError, match=re.escape("model.gen must be one of resnet, unet, encdec")):
        tiny_method("cyclegan", "model.gen=vgg")
    with pytest.raises(ValueError, match=r"data.image_size=8 is too small for a discriminator"):
        tiny_method("cyclegan", "model.dis_layers=3", "model.n_down=1", image_size=8)
    with pytest.raises(ValueError, match=r"data.image_size=20 must be divisible by 2\*\*model.n_down=8"):
        tiny_method("cyclegan", "model.n_down=3", image_size=20)


# -------------------- the image pool


def test_image_pool_fills_first_then_returns_stored_images_half_of_the_time():
    torch.manual_seed(0)
    pool = ImagePool(10)
    first = torch.arange(10.0).view(10, 1, 1, 1)
    assert torch.equal(pool(first), first) and len(pool) == 10  # filling: the inputs come back
    returned_stored, picked = 0, []
    trials = 4000
    for t in range(trials):
        new = torch.full((1, 1, 1, 1), 100.0 + t)
        out = pool(new)
        if out.item() != new.item():
            returned_stored += 1
            picked.append(out.item())
        assert len(pool) == 10
    # binomial(4000, 0.5): std 0.0079; a 5-sigma tolerance
    assert returned_stored / trials == pytest.approx(0.5, abs=0.04)
    # the stored image that comes back is chosen uniformly: the originals leave at a steady rate
    left = sum(v < 10 for v in picked)
    assert left == 10  # every original was swapped out at some point
    assert sorted(v for v in picked if v < 10) == list(range(10))


def test_image_pool_off_and_per_image_batches():
    x = torch.randn(3, 2, 4, 4)
    assert torch.equal(ImagePool(0)(x), x)
    pool = ImagePool(4)
    out = pool(x)  # 3 of 4 places: all stored, all returned
    assert torch.equal(out, x) and len(pool) == 3
    torch.manual_seed(5)
    y = torch.randn(3, 2, 4, 4)
    out = pool(y)
    assert torch.equal(out[0], y[0]) and len(pool) == 4  # the 4th place is filled by the first image
    assert out.shape == y.shape


def test_image_pool_state_round_trip_and_determinism():
    def run(pool: ImagePool, seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [pool(torch.randn(2, 1, 3, 3)) for _ in range(8)]

    a = ImagePool(5)
    run(a, 0)
    b = ImagePool(5)
    b.load_state_dict(a.state_dict())
    assert len(b) == 5 and all(torch.equal(x, y) for x, y in zip(a.images, b.images, strict=True))
    assert all(torch.equal(x, y) for x, y in zip(run(a, 1), run(b, 1), strict=True))  # global RNG only
    empty = ImagePool(5).state_dict()
    restored = ImagePool(5)
    restored.load_state_dict(empty)
    assert len(restored) == 0


# -------------------- learning: each method reduces its own constraint


@pytest.mark.parametrize(("method_name", "term", "overrides", "ratio"), [
    ("cyclegan", "cycle", [], 0.8),
    ("distancegan", "distance", [], 0.6),
    ("distancegan", "self_distance", ["loss_weights.distance=0", "loss_weights.self_distance=1",
                                      "train.batch_size=1"], 0.8),
    ("gcgan", "geometry", [], 0.6),
])
def test_a_few_steps_reduce_the_methods_constraint(data, tmp_path, method_name, term, overrides, ratio):
    cfg = tiny_config(method_name, data, "train.max_steps=30", "train.seed=1", *overrides)
    trainer = Trainer(cfg, tmp_path / "run")
    values = []
    for t in range(30):
        logged = trainer.train_step(trainer.batches[t])
        assert all(torch.isfinite(v) for v in logged.values())
        values.append(sum(float(v) for k, v in logged.items() if k.startswith(f"loss/gen/{term}/")))
    early, late = sum(values[:10]) / 10, sum(values[-10:]) / 10
    assert late < ratio * early, f"{term} went from {early:.3f} to {late:.3f}"


@pytest.mark.parametrize("preset", ["discogan_64", "dualgan_256"])
def test_discogan_and_dualgan_presets_train(data, tmp_path, preset):
    overrides = ["model.dim=4", "model.n_down=4", "model.dis_dim=4", "model.dis_layers=2", "data.image_size=16",
                 "data.load_size=null", "train.batch_size=2", "train.max_steps=2", "train.log_every=1",
                 "train.progress=false", "train.tensorboard=false", "train.num_samples=2", f"data.source={data}"]
    cfg = build_config(None, [preset], overrides)
    trainer = Trainer(cfg, tmp_path / "run")
    result = trainer.fit()
    assert result.step == 2 and cfg.method == "cyclegan"
    gen = trainer.method.nets["gen"]["a2b"]
    assert isinstance(gen, UNetGenerator) and gen.skips == (preset == "dualgan_256")
    if preset == "dualgan_256":
        terms = trainer.method.loss_terms("dis", trainer.method.forward_step(trainer.batches[0]))
        assert set(terms) == {"gan/a", "gan/b", "gp/a", "gp/b"}


# -------------------- exact resume (the image pool included), CLI (every method loads and translates:
# test_every_method.py)


def test_cyclegan_resume_equals_uninterrupted_run_with_the_pool(data, tmp_path):
    # the decay starts at step 2 in both runs (a fraction would start the 2-step half earlier)
    run = ["model.pool_size=3", "train.log_every=1", "data.flip=true", "optim.decay_fraction=null",
           "optim.decay_start=2"]

    def fit(folder: str, steps: int, resume: bool = False) -> Trainer:
        trainer = Trainer(tiny_config("cyclegan", data, *run, f"train.max_steps={steps}"), tmp_path / folder,
                          resume=resume)
        trainer.fit()
        return trainer

    straight = fit("straight", 4)
    fit("split", 2)
    saved = load_checkpoint(tmp_path / "split")
    assert saved["nets"]["pools.b._extra_state"]["images"].shape == (3, 3, 16, 16)  # full after step 1 (batch 4)
    resumed = fit("split", 4, resume=True)
    assert resumed.step == straight.step == 4
    assert len(resumed.method.pools["a"]) == 3
    assert_identical(straight.state_dict(), resumed.state_dict())  # weights, pools, optimisers, schedule, RNG
    assert straight.schedulers["gen"].get_last_lr()[0] == pytest.approx(0.0)  # linear decay reached 0
    a, b = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    a.pop("path"), b.pop("path")
    assert_identical(a, b, "checkpoint")


@pytest.mark.parametrize("method_name", METHOD_NAMES)
def test_cli_trains_each_method(data, tmp_path, method_name):
    out = tmp_path / "run"
    code, stdout, err = run_cli("train", "--method", method_name, "--config", f"{method_name}_digits", "--data", data,
                                "--out", out, *sets(*TINY, "train.max_steps=3"))
    assert code == 0, err
    assert f"training {method_name}" in err and "stopped at step 3" in stdout
    assert latest_checkpoint(out).name == "step_00000003.pt"
    assert load_checkpoint(out)["method"] == method_name
    images = tmp_path / "images"
    make_image_folders(images, {"x": 2})
    code, stdout, err = run_cli("translate", "--checkpoint", out, "--input", images / "x", "--output",
                                tmp_path / "translated", "--direction", "a2b")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "translated").iterdir()) == ["x0.png", "x1.png"]
    if method_name != "cyclegan":  # refused before any image is read, as a usage error
        assert_error(run_cli("translate", "--checkpoint", out, "--input", images / "x", "--output",
                             tmp_path / "other", "--direction", "b2a"),
                     f"this {method_name} model is one-sided, it translates a2b only, not --direction b2a")
        assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("method_name", METHOD_NAMES)
def test_bf16_channels_last_and_ema(data, tmp_path, method_name):
    cfg = tiny_config(method_name, data, "train.max_steps=2", "train.precision=bf16", "train.channels_last=true",
                      "train.ema_decay=0.5", "train.log_every=1")
    trainer = Trainer(cfg, tmp_path / "run")
    assert trainer.fit().step == 2
    assert set(trainer.ema.state_dict()) == set(trainer.method.nets["gen"].state_dict())
    for pool in trainer.method.pools.values():
        assert pool.images and all(image.dtype == torch.float32 for image in pool.images)
