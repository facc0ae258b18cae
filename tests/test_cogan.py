"""CoGAN: weight sharing is one set of parameters fed by both domains, one noise vector gives a corresponding pair
after a short training, inversion lowers its reconstruction error, the domain-adaptation head runs in the protocol,
and the CLI trains, resumes and translates (and refuses to export) a CoGAN run."""

from __future__ import annotations

import pytest
import torch
from conftest import make_image_folders
from test_adaptation import digit_root
from test_cli import assert_error, run_cli
from test_pix2pix import cli_train_resume_translate, random_images

from unpaired.config import ConfigError, build_config, to_object, weights_dict
from unpaired.methods import build_method
from unpaired.methods.base import AuxiliaryClassifier, has_capability
from unpaired.methods.cogan import CoGAN
from unpaired.metrics.adaptation import (
    DEFAULT_VARIANTS,
    HEAD_ONLY_VARIANTS,
    AdaptationSettings,
    default_rows,
    run_adaptation,
)

SMALL = ["model.dim=8", "model.dis_dim=8", "model.dis_dim2=8", "model.dis_features=16", "model.invert_steps=20",
         "data.image_size=16", "train.batch_size=8", "train.progress=false", "train.tensorboard=false",
         "train.precision=fp32", "train.channels_last=false", "train.num_samples=3"]


def tiny_cogan(channels: dict[str, int] | None = None, *overrides: str, seed: int = 0) -> CoGAN:
    cfg = build_config("cogan", ["cogan_digits"], [*SMALL, *overrides])
    torch.manual_seed(seed)
    return build_method("cogan", to_object(cfg, "model"), weights_dict(cfg), channels or {"a": 1, "b": 3}, 16)


def test_shared_layers_are_one_parameter_object_fed_by_both_domains():
    method = tiny_cogan()
    gen, dis = method.nets["gen"], method.nets["dis"]
    # one module (so one set of parameters) for the shared layers; each domain's own layer is a module of its own
    assert not any(p is q for p in gen.heads["a"].parameters() for q in gen.heads["b"].parameters())
    assert not any(p is q for p in dis.first["a"].parameters() for q in dis.first["b"].parameters())
    shared = {"gen": list(gen.shared.parameters()), "dis": list(dis.shared.parameters())}
    every = [id(p) for p in method.parameters()]
    assert len(every) == len(set(every))  # no parameter held twice
    x = {"a": torch.rand(4, 1, 16, 16) * 2 - 1, "b": torch.rand(4, 3, 16, 16) * 2 - 1}
    for domain in ("a", "b"):  # each domain's loss alone reaches every shared parameter
        method.zero_grad(set_to_none=True)
        step = method.forward_step(x)
        terms = method.loss_terms("dis", step)
        assert terms["feature_match"] >= 0  # cogan_digits keeps the official trainer's term (into D only)
        (terms[f"gan/{domain}"] + method.loss_terms("gen", step)[f"gan/{domain}"]).backward()
        for group, params in shared.items():
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params), (group, domain)
        other = "b" if domain == "a" else "a"
        others = [*gen.heads[other].parameters(), *dis.first[other].parameters()]  # the other domain's own layers
        assert all(p.grad is None or not p.grad.any() for p in others)


def blob_pairs(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Domain a: a bright square at a random place on black; domain b: the colour negative of *other* such images
    (unpaired, as CoGAN trains)."""
    gen = torch.Generator().manual_seed(seed)

    def squares() -> torch.Tensor:
        images = -torch.ones(count, 1, 16, 16)
        for image, (top, left) in zip(images, torch.randint(0, 11, (count, 2), generator=gen), strict=True):
            image[:, top:top + 6, left:left + 6] = 1.0
        return images

    return squares(), -squares()


def pair_statistics(seed: int) -> tuple[float, float]:
    """(same, other) after 300 steps from initial weights ``seed``: mean |g_a(z) + g_b(z)| and |g_a(z) + g_b(z')|."""
    method = tiny_cogan({"a": 1, "b": 1}, "model.dim=16", "model.dis_features=32", seed=seed)
    optimizers = {g: torch.optim.Adam(method.nets[g].parameters(), lr=2e-3, betas=(0.5, 0.999))
                  for g in method.groups}
    method.train()
    for i in range(300):
        x_a, x_b = blob_pairs(16, seed=i)
        step = method.forward_step({"a": x_a, "b": x_b})
        for group in method.groups:  # as the trainer does: each group's terms into its own parameters
            loss = sum(method.loss_terms(group, step).values())
            optimizers[group].zero_grad(set_to_none=True)
            loss.backward(inputs=list(method.nets[group].parameters()))
            optimizers[group].step()
    method.eval()
    with torch.no_grad():
        z = torch.randn(256, method.cfg.latent_dim, generator=torch.Generator().manual_seed(1))
        pair = method.nets["gen"](z)
        same = (pair["a"] + pair["b"]).abs().mean()
        other = (pair["a"] + pair["b"].roll(1, 0)).abs().mean()  # g_b of the next z
    return float(same), float(other)


def test_one_noise_vector_gives_a_corresponding_pair_after_short_training():
    """Trained on unpaired squares (a) and negative squares (b), g_b(z) becomes the negative of g_a(z) for the same z
    (the square in the same place) far more than for another z: the joint distribution CoGAN learns. Statistic: mean
    |g_a(z) + g_b(z')|, 0 for a perfect negative. Judged on the median of three initialisations: a short GAN run
    follows the CPU's convolution kernels, and one start (seed 0 with AVX2 kernels) collapses where the others
    learn the pairing (same/other 0.19-0.38 on Zen 4 and AVX2 alike)."""
    ratios = sorted(same / other for same, other in map(pair_statistics, range(3)))
    assert ratios[1] < 0.6, ratios


def test_inversion_lowers_its_reconstruction_error():
    method = tiny_cogan().eval()
    with torch.no_grad():
        target = method.nets["gen"](torch.randn(3, method.cfg.latent_dim), ("a",))["a"]  # reachable images
    z, errors = method.invert(target, "a", steps=60, lr=0.05)
    assert z.shape == (3, method.cfg.latent_dim) and len(errors) == 61
    assert errors[-1] < 0.5 * errors[0]
    assert all(p.grad is None for p in method.parameters())  # only z was optimised
    y = method.translate(target, "a2b")
    assert y.shape == (3, 3, 16, 16) and torch.isfinite(y).all()
    z_again, _ = method.invert(target, "a", steps=60, lr=0.05)
    assert torch.equal(z, z_again)  # a fixed start: the same translation every time


def test_classifier_head_only_with_classes():
    assert not has_capability(tiny_cogan(), AuxiliaryClassifier)
    method = tiny_cogan(None, "model.classes=10")
    assert has_capability(method, AuxiliaryClassifier)
    assert method.classify(torch.zeros(2, 3, 16, 16), "b").shape == (2, 10)  # domain b through the shared layers
    assert CoGAN.labelled_domains(method.cfg) == ("a",)


def test_adaptation_defaults_follow_what_the_translator_declares():
    """A method that translates by an optimisation per image (not exportable) gets the rows that read no translation
    and no FID by default, in the CLI and the benchmark alike."""
    assert default_rows("cogan") == (HEAD_ONLY_VARIANTS, 0)
    assert default_rows("unit") == (DEFAULT_VARIANTS, 1000)
    with pytest.raises(ConfigError, match="unknown method 'cogen'"):
        default_rows("cogen")


def test_cogan_in_the_adaptation_protocol_trains_the_head_and_translates_nothing(tmp_path, monkeypatch):
    import unpaired.metrics.adaptation as protocol

    def refuse(*args, **kwargs):
        raise AssertionError("no row of this run reads a translation")

    monkeypatch.setattr(protocol, "translate_all", refuse)
    overrides = ["model.dim=8", "model.dis_dim=8", "model.dis_dim2=8", "model.dis_features=16", "train.batch_size=4",
                 "train.tensorboard=false", "train.progress=false", "train.checkpoint_every=2"]
    settings = AdaptationSettings(method="cogan", image_size=16, translator_steps=3, translator_minutes=None,
                                  classifier_steps=20, batch_size=8, fid_steps=0, overrides=overrides,
                                  precision="fp32", variants=["source_only", "discriminator_head", "target_supervised"])
    report = run_adaptation(settings, tmp_path / "run", root=digit_root(tmp_path / "data"), progress=False)
    assert report["translator_config"] == "cogan_digits"
    assert 0 <= report["accuracy"]["discriminator_head"] <= 1
    assert 0 <= report["rows"]["discriminator_head"]["source_validation_accuracy"] <= 1


def test_cogan_trains_resumes_translates_and_refuses_export_through_the_cli(tmp_path):
    data = make_image_folders(tmp_path / "data")
    run = tmp_path / "run"
    sets = [a for o in [*SMALL, "train.batch_size=2"] for a in ("--set", o)]
    inputs = random_images(tmp_path / "in", 1)
    cli_train_resume_translate(run, str(data), sets, inputs, "--config", "cogan_digits")
    code, _, err = run_cli("translate", "--checkpoint", run, "--input", inputs, "--output", tmp_path / "b2a",
                           "--direction", "b2a")
    assert code == 0, err
    assert (tmp_path / "b2a" / "0.png").is_file()
    assert_error(run_cli("export", "--checkpoint", run, "--format", "torchscript"), "cogan", "cannot be exported")


@pytest.mark.parametrize("size", [28, 32])
def test_the_paper_digit_networks_at_28_and_32_px(size):
    cfg = build_config("cogan", ["cogan_digits"], [f"data.image_size={size}"])
    method = build_method("cogan", to_object(cfg, "model"), weights_dict(cfg), {"a": 1, "b": 1}, size)
    gen = method.nets["gen"]
    assert [m[0].out_channels for m in gen.shared] == [1024, 512, 256, 128]  # the paper's widths at dim 128
    pair = gen(torch.randn(2, 100))
    assert pair["a"].shape == pair["b"].shape == (2, 1, size, size)
    assert method.nets["dis"](pair["a"], "a").shape == (2, 1, 1, 1) if size == 28 else True
    if size == 28:  # the paper's kernels: a 6x6 last generator layer, a 4x4 'FC 500' conv
        assert gen.heads["a"][0].kernel_size == (6, 6)
        assert method.nets["dis"].shared[2][0].kernel_size == (4, 4)
