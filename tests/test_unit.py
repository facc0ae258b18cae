"""The UNIT method (unpaired.methods.unit): weight sharing, translation shapes, skipped terms, learning."""

from __future__ import annotations

import json
import re

import pytest
import torch
from conftest import tiny_config

from unpaired.methods import METHODS, build_method
from unpaired.methods.unit import UNIT, UNITConfig
from unpaired.training.trainer import Trainer

ALL_WEIGHTS = {"gan": 1.0, "recon_x": 10.0, "kl": 0.01, "cyc_x": 10.0, "cyc_kl": 0.01, "gp": 10.0}


def tiny_unit(channels=None, weights=None, image_size=16, **cfg) -> UNIT:
    torch.manual_seed(0)
    options = {"dim": 4, "n_down": 2, "n_res": 2, "shared_blocks": 1, "dis_dim": 4, "dis_layers": 2,
               "dis_scales": 2} | cfg
    return build_method("unit", UNITConfig(**options), weights or ALL_WEIGHTS,
                        channels or {"a": 3, "b": 3}, image_size)


def batch(channels=(3, 3), n=2, size=16):
    torch.manual_seed(1)
    return {"a": torch.rand(n, channels[0], size, size) * 2 - 1, "b": torch.rand(n, channels[1], size, size) * 2 - 1}


def test_registered():
    assert METHODS.get("unit") is UNIT
    assert "unit" in METHODS.names()
    with pytest.raises(KeyError, match=re.escape(f"unknown method 'nope'; valid: {', '.join(METHODS.names())}")):
        METHODS.get("nope")


def test_groups_dis_first_then_gen():
    method = tiny_unit()
    assert method.groups == ["dis", "gen"]
    assert set(method.nets["gen"].keys()) == {"enc_a", "enc_b", "dec_a", "dec_b", "enc_shared", "dec_shared"}
    assert set(method.nets["dis"].keys()) == {"a", "b"}


# -------------------- weight sharing


def _grad_reaches(method: UNIT, loss: torch.Tensor) -> dict[str, bool]:
    method.zero_grad(set_to_none=True)
    loss.backward()
    return {name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())
            for name, module in method.nets["gen"].items()}


def test_shared_encoder_layers_serve_both_domains():
    method = tiny_unit()
    x = batch()
    probe = torch.randn(2, 16, 4, 4)  # h is dim * 2**n_down = 16 channels at 16 / 4 = 4 px
    (h_a,) = method.encode([("a", x["a"])])
    reached_a = _grad_reaches(method, (h_a * probe).sum())
    (h_b,) = method.encode([("b", x["b"])])
    reached_b = _grad_reaches(method, (h_b * probe).sum())
    assert reached_a == {"enc_a": True, "enc_b": False, "enc_shared": True, "dec_a": False, "dec_b": False,
                         "dec_shared": False}
    assert reached_b == {"enc_a": False, "enc_b": True, "enc_shared": True, "dec_a": False, "dec_b": False,
                         "dec_shared": False}
    # one and the same parameter tensor receives both domains' gradients, and they add up
    shared = next(method.nets["gen"]["enc_shared"].parameters())
    h_a, h_b = method.encode([("a", x["a"]), ("b", x["b"])])
    (grad_a,) = torch.autograd.grad((h_a * probe).sum(), shared, retain_graph=True)
    (grad_b,) = torch.autograd.grad((h_b * probe).sum(), shared, retain_graph=True)
    assert grad_a.abs().sum() > 0 and grad_b.abs().sum() > 0
    (grad_ab,) = torch.autograd.grad((h_a * probe).sum() + (h_b * probe).sum(), shared)
    torch.testing.assert_close(grad_ab, grad_a + grad_b)


def test_each_domains_reconstruction_term_trains_the_shared_layers():
    method = tiny_unit()
    for d, other in (("a", "b"), ("b", "a")):
        terms = method.loss_terms("gen", method.forward_step(batch()))
        reached = _grad_reaches(method, terms[f"recon_x/{d}"])
        assert reached["enc_shared"] and reached["dec_shared"] and reached[f"enc_{d}"] and reached[f"dec_{d}"]
        assert not reached[f"enc_{other}"] and not reached[f"dec_{other}"]


def test_shared_decoder_layers_serve_both_domains():
    method = tiny_unit()
    z = torch.randn(2, 16, 4, 4)
    (x_a,) = method.decode([("a", z)])
    reached_a = _grad_reaches(method, (x_a * torch.randn_like(x_a)).sum())
    (x_b,) = method.decode([("b", z)])
    reached_b = _grad_reaches(method, (x_b * torch.randn_like(x_b)).sum())
    assert reached_a["dec_shared"] and reached_a["dec_a"] and not reached_a["dec_b"]
    assert reached_b["dec_shared"] and reached_b["dec_b"] and not reached_b["dec_a"]
    assert not reached_a["enc_shared"] and not reached_b["enc_shared"]


def test_shared_blocks_count():
    method = tiny_unit(n_res=3, shared_blocks=2)
    gen = method.nets["gen"]
    assert len(gen["enc_shared"]) == 2 and len(gen["dec_shared"]) == 2
    assert len(gen["enc_a"][-1]) == 1 and len(gen["dec_a"][0]) == 1  # private residual blocks: n_res - shared


def test_no_sharing_with_zero_shared_blocks():
    method = tiny_unit(shared_blocks=0)
    gen = method.nets["gen"]
    assert list(gen["enc_shared"].parameters()) == [] and list(gen["dec_shared"].parameters()) == []
    x = batch()
    (h_a,) = method.encode([("a", x["a"])])
    reached = _grad_reaches(method, (h_a * torch.randn_like(h_a)).sum())
    assert reached["enc_a"] and not reached["enc_b"]
    # the translation still runs end to end
    assert method.translate(x["a"], "a2b").shape == x["a"].shape


def test_shared_and_private_parameters_are_distinct_objects():
    gen = tiny_unit().nets["gen"]
    ids = {name: {id(p) for p in module.parameters()} for name, module in gen.items()}
    assert not ids["enc_a"] & ids["enc_b"]
    assert not ids["dec_a"] & ids["dec_b"]
    assert not ids["enc_shared"] & ids["dec_shared"]


# -------------------- translation


@pytest.mark.parametrize("channels", [{"a": 1, "b": 3}, {"a": 3, "b": 1}, {"a": 1, "b": 1}])
def test_translate_shapes_per_domain_channels(channels):
    method = tiny_unit(channels=channels).eval()
    x = batch((channels["a"], channels["b"]), n=3)
    with torch.no_grad():
        x_ab = method.translate(x["a"], "a2b")
        x_ba = method.translate(x["b"], "b2a")
    assert x_ab.shape == (3, channels["b"], 16, 16)
    assert x_ba.shape == (3, channels["a"], 16, 16)
    assert x_ab.abs().max() <= 1 and x_ba.abs().max() <= 1
    visuals = method.visuals(x)
    assert list(visuals) == list(UNIT.visual_names)
    assert visuals["x_aba"].shape == x["a"].shape and visuals["x_bab"].shape == x["b"].shape


def test_translate_other_sizes_and_errors():
    method = tiny_unit().eval()
    with torch.no_grad():
        assert method.translate(torch.zeros(1, 3, 24, 32), "a2b").shape == (1, 3, 24, 32)
    with pytest.raises(ValueError, match="direction must be one of a2b, b2a"):
        method.translate(torch.zeros(1, 3, 16, 16), "a2a")
    with pytest.raises(TypeError, match="no options"):
        method.translate(torch.zeros(1, 3, 16, 16), "a2b", style=1)


def test_translate_is_deterministic_in_eval():
    method = tiny_unit().eval()
    x = batch()["a"]
    with torch.no_grad():
        assert torch.equal(method.translate(x, "a2b"), method.translate(x, "a2b"))


def test_forward_step_and_terms_with_all_weights():
    method = tiny_unit()
    step = method.forward_step(batch())
    for key in ("x_ab", "x_ba", "x_aa", "x_bb", "h_ab", "h_ba", "x_aba", "x_bab"):
        assert key in step
    assert set(method.loss_terms("dis", step)) == {"gan/a", "gan/b"}
    assert set(method.loss_terms("gen", step)) == {f"{t}/{d}" for t in ("gan", "recon_x", "kl", "cyc_x", "cyc_kl")
                                                   for d in "ab"}


def test_wgan_gp_adds_penalty_terms():
    method = tiny_unit(gan_type="wgan-gp")
    terms = method.loss_terms("dis", method.forward_step(batch()))
    assert set(terms) == {"gan/a", "gan/b", "gp/a", "gp/b"}
    assert all(t.item() >= 0 for name, t in terms.items() if name.startswith("gp"))


# -------------------- zero weights skip work


def test_zero_cycle_weights_skip_the_cycle_branch():
    method = tiny_unit(weights=ALL_WEIGHTS | {"cyc_x": 0.0, "cyc_kl": 0.0})
    step = method.forward_step(batch())
    assert not {"x_aba", "x_bab", "h_ab", "h_ba"} & set(step)
    terms = method.loss_terms("gen", step)
    assert not [t for t in terms if t.startswith("cyc")]
    assert {"gan/a", "recon_x/a", "kl/b"} <= set(terms)


def test_cycle_kl_alone_encodes_but_does_not_decode_again():
    method = tiny_unit(weights=ALL_WEIGHTS | {"cyc_x": 0.0})
    step = method.forward_step(batch())
    assert {"h_ab", "h_ba"} <= set(step) and not {"x_aba", "x_bab"} & set(step)
    assert {"cyc_kl/a", "cyc_kl/b"} <= set(method.loss_terms("gen", step))


def test_zero_recon_and_gan_weights_skip_their_terms():
    method = tiny_unit(weights=ALL_WEIGHTS | {"recon_x": 0.0, "gan": 0.0, "kl": 0.0})
    step = method.forward_step(batch())
    assert "x_aa" not in step and "x_bb" not in step
    assert set(method.loss_terms("gen", step)) == {"cyc_x/a", "cyc_x/b", "cyc_kl/a", "cyc_kl/b"}


def test_training_without_cycle_terms_runs(tiny_data, tmp_path):
    """The paper's ablation (no cycle consistency): the official trainer crashes on it, ours must not."""
    cfg = tiny_config(tiny_data, "loss_weights.cyc_x=0", "loss_weights.cyc_kl=0", "train.max_steps=3",
                      "train.log_every=1")
    result = Trainer(cfg, tmp_path / "run").fit()
    assert result.step == 3
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3]
    assert not [k for r in records for k in r if "cyc" in k]
    assert all("loss/gen/recon_x/a" in r and "loss/dis/gan/b" in r for r in records)


# -------------------- learning


def test_a_few_steps_reduce_reconstruction_loss(tiny_data, tmp_path):
    cfg = tiny_config(tiny_data, "train.seed=1", "train.max_steps=60")
    trainer = Trainer(cfg, tmp_path / "run")
    recon = []
    for t in range(60):
        logged = trainer.train_step(trainer.batches[t])
        recon.append(float(logged["loss/gen/recon_x/a"] + logged["loss/gen/recon_x/b"]) / 2)
        assert all(torch.isfinite(v) for v in logged.values())
    early, late = sum(recon[:10]) / 10, sum(recon[-10:]) / 10
    assert late < 0.8 * early, f"recon_x went from {early:.3f} to {late:.3f}"
    assert trainer.step == 60


# -------------------- invalid configurations


def test_shared_blocks_larger_than_n_res():
    with pytest.raises(ValueError, match=r"model\.shared_blocks must be within 0\.\.n_res=2, got 3"):
        tiny_unit(shared_blocks=3)
    with pytest.raises(ValueError, match=r"model\.shared_blocks must be within"):
        tiny_unit(shared_blocks=-1)


def test_image_too_small_for_discriminator():
    with pytest.raises(ValueError, match=r"data\.image_size=8 is too small .*2 discriminator scales of 3 layers "
                                         r"\(needs >= 16\)"):
        tiny_unit(image_size=8, dis_layers=3, n_down=1)


def test_image_size_not_divisible_by_downsampling():
    with pytest.raises(ValueError, match=r"data\.image_size=20 must be divisible by 2\*\*model\.n_down"):
        tiny_unit(image_size=20, n_down=3)


def test_unknown_gan_type():
    with pytest.raises(ValueError, match=re.escape("model.gan_type must be one of nsgan, lsgan, hinge, wgan, wgan-gp, "
                                                   "got 'gan'")):
        tiny_unit(gan_type="gan")


def test_unknown_norm_or_padding_in_config():
    with pytest.raises(ValueError, match="unknown padding 'mirror'"):
        tiny_unit(pad_type="mirror")
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        tiny_unit(activation="swish")
    with pytest.raises(ValueError, match="unknown norm 'batch'"):
        tiny_unit(dis_norm="batch")


# -------------------- semantic consistency (CyCADA)


def saved_classifier(path, channels: int = 3):
    """A DigitClassifier with non-trivial batch-norm statistics (as a trained one has), saved as the semantic
    term's judge file."""
    from unpaired.nn.classifiers import DigitClassifier, save_digit_network

    torch.manual_seed(3)
    model = DigitClassifier(channels)
    model.train()
    model(torch.rand(8, channels, 16, 16) * 2 - 1)
    return save_digit_network(model.eval(), path), model


def test_semantic_term_needs_a_classifier_file_and_names_a_bad_one(tmp_path):
    from unpaired.metrics.digits import save_feature_net
    from unpaired.nn.classifiers import DigitClassifier

    semantic = {**ALL_WEIGHTS, "semantic": 1.0}
    with pytest.raises(ValueError, match=r"model\.semantic_classifier"):
        tiny_unit(weights=semantic)
    with pytest.raises(FileNotFoundError, match=r"none\.pt"):
        tiny_unit(weights=semantic, semantic_classifier=str(tmp_path / "none.pt")).prepare({})
    (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"bad\.pt"):
        tiny_unit(weights=semantic, semantic_classifier=str(tmp_path / "bad.pt")).prepare({})
    features = save_feature_net(DigitClassifier(3), tmp_path / "features.pt")
    with pytest.raises(ValueError, match=r"features\.pt: not a digit classifier file .*digit_features"):
        tiny_unit(weights=semantic, semantic_classifier=str(features)).prepare({})
    gray, _ = saved_classifier(tmp_path / "gray.pt", channels=1)
    with pytest.raises(ValueError, match=r"gray\.pt: the classifier takes 1-channel images"):
        tiny_unit(weights=semantic, semantic_classifier=str(gray)).prepare({})
    with pytest.raises(ValueError, match=r"one channel count"):
        tiny_unit(channels={"a": 1, "b": 3}, weights=semantic, semantic_classifier=str(gray))


def test_semantic_term_trains_the_generators_against_a_frozen_classifier(tmp_path):
    import torch.nn.functional as F
    from conftest import assert_identical

    path, reference = saved_classifier(tmp_path / "judge.pt")
    method = tiny_unit(weights={**ALL_WEIGHTS, "semantic": 1.0}, semantic_classifier=str(path))
    method.prepare({})
    assert_identical(method.semantic_classifier.state_dict(), reference.state_dict())
    method.train()
    assert method.nets["gen"].training and not method.semantic_classifier.training
    step = method.forward_step(batch())
    terms = method.loss_terms("gen", step)
    assert {"semantic/ab", "semantic/ba"} <= set(terms)
    with torch.no_grad():  # the class the frozen classifier reads in the input is the translation's target
        expected = F.cross_entropy(reference(step["x_ab"]), reference(step["x_a"]).argmax(1))
    assert torch.allclose(terms["semantic/ab"], expected, atol=1e-6)
    terms["semantic/ab"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.nets["gen"].parameters())
    assert all(p.grad is None for p in method.semantic_classifier.parameters())
    assert_identical(method.semantic_classifier.state_dict(), reference.state_dict())  # batch norm untouched
    # no optimiser or EMA sees it; the checkpoint (the method's state) keeps it
    assert not {id(p) for p in method.semantic_classifier.parameters()} & {id(p) for p in method.parameters()
                                                                            if p.requires_grad}
    assert any(k.startswith("semantic_classifier.") for k in method.state_dict())
