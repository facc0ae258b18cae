"""TUNIT (unpaired.methods.tunit): IIC and InfoNCE losses, the key queue, augmentation, the single collection,
label-free training, warm-up, translation by reference and by domain, ``unpaired clusters``, and errors; and
tunit_peer (unpaired.methods.tunit_peer), TUNIT with the peer reconstruction term."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import assert_identical, make_image_folders, shape_image, tiny_config
from PIL import Image
from test_cli import assert_error, run_cli, sets

import unpaired
from unpaired.clusters import majority_accuracy, pca_2d
from unpaired.config import ConfigError, build_config, config_from_dict
from unpaired.data import CollectionSource, DataError, open_collection
from unpaired.data.collection import labelled_subset
from unpaired.losses.clustering import info_nce, joint_distribution, mutual_information, mutual_information_of_joint
from unpaired.methods import METHODS
from unpaired.methods.tunit import TUNIT
from unpaired.methods.tunit_peer import TUNITPeer, same_domain_peers
from unpaired.nn.augment import Augmentation
from unpaired.nn.guiding import KeyQueue
from unpaired.training.checkpoint import load_checkpoint, save_checkpoint
from unpaired.training.trainer import Trainer

TUNIT_TINY = [
    "model.k=3", "model.style_dim=8", "model.queue_size=16", "model.guide_dim=4", "model.guide_stages=3",
    "model.dim=4", "model.content_size=8", "model.n_res=1", "model.mlp_dim=8", "model.dis_dim=4",
    "model.warmup_steps=2", "data.image_size=16", "train.batch_size=4", "train.num_samples=3", "train.progress=false",
    "train.tensorboard=false", "train.precision=fp32", "train.channels_last=false", "train.ema_decay=0.999",
    "train.log_every=1", "train.sample_every=1000", "train.checkpoint_every=1000", "train.max_steps=4",
]
"""--set overrides: a TUNIT small enough for a step in milliseconds; E warms up alone for 2 steps, then 2 joint."""


def tunit_config(source: Path | str, *overrides: str, method: str = "tunit"):
    return build_config(method, [], [*TUNIT_TINY, f"data.source={source}", *overrides])


def make_collection(root: Path, assignment: dict[str, list[int]], count: int = 8, seed: int = 0) -> Path:
    """``root`` with sub-folders named like ``assignment``'s keys; image i (``img{i}.png``, the same pixels
    whatever folder it lands in) goes to the folder listing i. Even images are light squares, odd dark discs."""
    rng = np.random.default_rng(seed)
    images = [shape_image(rng, (16, 16), "A" if i % 2 == 0 else "B") for i in range(count)]
    for folder, members in assignment.items():
        (root / folder).mkdir(parents=True, exist_ok=True)
        for i in members:
            images[i].save(root / folder / f"img{i}.png")
    return root


TRUE_FOLDERS = {"squares": [0, 2, 4, 6], "discs": [1, 3, 5, 7]}
WRONG_FOLDERS = {"zebra": [0, 1, 5], "apple": [2, 3, 4, 6, 7]}


# -------------------- losses
def test_mutual_information_of_a_hand_made_joint_matrix_equals_the_formula():
    joint = torch.tensor([[0.30, 0.05, 0.05], [0.05, 0.20, 0.05], [0.05, 0.05, 0.20]])
    rows, columns = joint.sum(1), joint.sum(0)
    expected = sum(float(joint[i, j]) * math.log(float(joint[i, j]) / (float(rows[i]) * float(columns[j])))
                   for i in range(3) for j in range(3))
    assert float(mutual_information_of_joint(joint)) == pytest.approx(expected, rel=1e-6)
    # a zero entry adds nothing (0 ln 0 = 0), not NaN
    sparse = torch.tensor([[0.5, 0.0], [0.0, 0.5]])
    assert float(mutual_information_of_joint(sparse)) == pytest.approx(math.log(2), rel=1e-6)


def test_joint_distribution_is_the_symmetrised_mean_outer_product():
    p = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1]])
    q = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.2, 0.6]])
    outer = (p[0, :, None] * q[0, None, :] + p[1, :, None] * q[1, None, :]) / 2
    expected = (outer + outer.t()) / 2
    joint = joint_distribution(p, q)
    torch.testing.assert_close(joint, expected / expected.sum())
    assert float(joint.sum()) == pytest.approx(1.0) and torch.equal(joint, joint.t())
    assert float(mutual_information(p, q)) == pytest.approx(float(mutual_information_of_joint(joint)))


def test_mutual_information_is_largest_for_a_confident_balanced_assignment():
    k = 4
    confident = torch.eye(k).repeat(8, 1)  # 32 images, 8 per domain, each sure of its domain
    best = float(mutual_information(confident, confident))
    assert best == pytest.approx(math.log(k), rel=1e-5)
    unsure = 0.7 * confident + 0.3 / k
    unbalanced = torch.eye(k)[torch.tensor([0] * 29 + [1, 2, 3])]
    collapsed = torch.eye(k)[torch.zeros(32, dtype=torch.long)]
    disagreeing = confident.roll(1, 1)  # the augmented copy sure of another domain
    shuffled = confident[torch.randperm(32, generator=torch.Generator().manual_seed(0))]
    for name, p, q in (("unsure", unsure, unsure), ("unbalanced", unbalanced, unbalanced),
                       ("collapsed", collapsed, collapsed), ("independent", confident, shuffled),
                       ("disagreeing", confident, disagreeing)):  # P is symmetrised: the pair must agree
        assert float(mutual_information(p, q)) < best - 0.05, name
    assert float(mutual_information(collapsed, collapsed)) == pytest.approx(0.0, abs=1e-6)
    # the loss pushes towards the optimum: one gradient step on logits raises I
    logits = torch.randn(32, k, generator=torch.Generator().manual_seed(0), requires_grad=True)
    before = mutual_information(logits.softmax(1), logits.softmax(1))
    (-before).backward()
    before = before.detach()
    with torch.no_grad():
        moved = (logits - logits.grad).softmax(1)
        after = mutual_information(moved, moved)
    assert float(after) > float(before)


def test_info_nce_against_a_hand_computed_value():
    query = torch.tensor([[1.0, 0.0]])
    key = torch.tensor([[0.5, 0.5]])
    negatives = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    # logits q.k / t = 0.5 / 0.5, q.n1 / t = 0, q.n2 / t = 2
    expected = -math.log(math.exp(1.0) / (math.exp(1.0) + math.exp(0.0) + math.exp(2.0)))
    assert float(info_nce(query, key, negatives, temperature=0.5)) == pytest.approx(expected, rel=1e-6)
    # unit-length codes (MoCo): q.k = 1/sqrt(2), q.n1 = 0, q.n2 = 1/sqrt(2)
    s = 1 / math.sqrt(2)
    expected_normalized = -math.log(math.exp(s / 0.5) / (2 * math.exp(s / 0.5) + 1))
    assert float(info_nce(query, key, negatives, 0.5, normalize=True)) == pytest.approx(expected_normalized, rel=1e-6)
    # a batch is the mean of its rows; no negatives: a single class, loss 0
    two = info_nce(torch.cat([query, -query]), torch.cat([key, key]), negatives, 0.5)
    second = -math.log(math.exp(-1.0) / (math.exp(-1.0) + math.exp(0.0) + math.exp(-2.0)))
    assert float(two) == pytest.approx((expected + second) / 2, rel=1e-6)
    assert float(info_nce(query, key, torch.zeros(0, 2))) == pytest.approx(0.0, abs=1e-7)
    # the key is a target: no gradient reaches it
    key = key.clone().requires_grad_(True)
    info_nce(query.requires_grad_(True), key, negatives).backward()
    assert key.grad is None and query.grad is not None
    with pytest.raises(ValueError, match="N x D"):
        info_nce(query, key, torch.zeros(3, 5))


def test_the_queue_keeps_its_size_and_order():
    queue = KeyQueue(5, 2)
    assert queue.negatives().shape == (0, 2)
    queue.push(torch.tensor([[1.0, 1], [2, 2]]))
    queue.push(torch.tensor([[3.0, 3], [4, 4]]))
    assert queue.negatives()[:, 0].tolist() == [1, 2, 3, 4]
    queue.push(torch.tensor([[5.0, 5], [6, 6], [7, 7]]))  # two too many: the two oldest go
    assert queue.negatives()[:, 0].tolist() == [3, 4, 5, 6, 7] and queue.keys.shape == (5, 2)
    queue.push(torch.arange(14.0).view(7, 2))  # more than the size at once: the newest 5
    assert queue.negatives()[:, 0].tolist() == [4, 6, 8, 10, 12]
    restored = KeyQueue(5, 2)
    restored.load_state_dict(queue.state_dict())  # buffers: checkpoints keep it
    assert torch.equal(restored.negatives(), queue.negatives())


# -------------------- augmentation
def test_augmentation_draws_per_image_and_switches_off():
    x = torch.rand(6, 3, 16, 16) * 2 - 1
    torch.manual_seed(0)
    out = Augmentation()(x)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    torch.manual_seed(0)
    assert torch.equal(out, Augmentation()(x))  # from torch's generator: seeded runs repeat
    assert not torch.allclose(out[0] - x[0], out[1] - x[1], atol=1e-3)  # each image its own draw
    off = Augmentation(0, 0, 0, 0, 0, 0, 0, 0, 0, False)
    torch.testing.assert_close(off(x), x, atol=1e-5, rtol=0)
    mirrored = Augmentation(0, 0, 0, 0, 0, 0, 0, 0, 0, True)(x)
    assert all(torch.allclose(m, i, atol=1e-5) or torch.allclose(m, i.flip(-1), atol=1e-5)
               for m, i in zip(mirrored, x, strict=True))
    shifted = Augmentation(0, 0.25, 0, 0, 0, 0, 0, 0, 0, False)(torch.zeros(64, 1, 16, 16))
    assert (shifted == -1).any()  # pixels from outside the image are black
    gray = Augmentation()(x[:, :1])
    assert gray.shape == (6, 1, 16, 16)


# -------------------- data: one collection
def test_the_collection_is_ordered_by_file_name_and_reads_labels_only_when_asked(tmp_path):
    right = make_collection(tmp_path / "right", TRUE_FOLDERS)
    wrong = make_collection(tmp_path / "wrong", WRONG_FOLDERS)
    plain, other = CollectionSource(right, channels=1), CollectionSource(wrong, channels=1)
    assert plain.labels is None and plain.class_names is None
    assert [plain.file_name(i) for i in range(8)] == [other.file_name(i) for i in range(8)] == \
        [f"img{i}.png" for i in range(8)]
    assert all(torch.equal(plain[i], other[i]) for i in range(8))
    labelled = CollectionSource(right, channels=1, label_fraction=1.0)
    assert labelled.class_names == ["discs", "squares"] and labelled.labels.tolist() == [1, 0, 1, 0, 1, 0, 1, 0]
    half = CollectionSource(right, channels=1, label_fraction=0.5)
    assert half.labels.tolist() == [1, 0, 1, 0, -1, -1, -1, -1]
    assert labelled_subset(torch.tensor([0, 0, 0, 1, -1]), 0.1).tolist() == [0, -1, -1, 1, -1]  # >= 1 per class
    pair = open_collection(str(right), "train", image_size=16, channels=None)
    assert pair.b is None and list(pair.sources()) == ["a"] and "no labels read" in pair.description


def test_collection_errors_name_the_folder(tmp_path):
    with pytest.raises(DataError, match="not a folder"):
        open_collection(str(tmp_path / "missing"), "train", image_size=16, channels=None)
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty: no images"):
        CollectionSource(tmp_path / "empty")
    loose = make_collection(tmp_path / "loose", TRUE_FOLDERS)
    shutil.copy(loose / "squares" / "img0.png", loose / "stray.png")
    assert CollectionSource(loose, label_fraction=0.5).labels.tolist()[-1] == -1  # semi: a loose image is unlabelled
    with pytest.raises(DataError, match=r"stray\.png"):
        CollectionSource(loose, label_fraction=1.0)
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(loose / "stray.png", flat / "x.png")
    with pytest.raises(DataError, match="no sub-folders"):
        CollectionSource(flat, label_fraction=0.5)


# -------------------- training
def test_registered_with_its_configs_and_modes():
    assert METHODS.get("tunit") is TUNIT and TUNIT.single_domain
    assert METHODS.get("tunit_peer") is TUNITPeer and issubclass(TUNITPeer, TUNIT)
    digits = build_config(None, ["tunit_digits"])
    afhq = build_config(None, ["tunit_afhq64"])
    assert (digits.method, afhq.method) == ("tunit_peer", "tunit")  # tunit_digits: tunit_peer's preset
    assert digits.loss_weights.recon_peer == 10.0
    official = afhq.model
    assert (official.k, official.style_dim, official.temperature, official.queue_size, official.key_momentum,
            official.warmup_steps, official.joint_guide_scale) == (10, 128, 0.07, 1024, 0.999, 65_000, 0.1)
    assert dict(afhq.loss_weights) == {"gan": 1.0, "r1": 10.0, "recon": 0.1, "style_g": 0.01, "mi": 5.0,
                                       "style_e": 1.0, "ce": 5.0}
    assert afhq.train.ema_decay == 0.999 and afhq.train.batch_size == 32
    fractions = {mode: TUNIT.label_fraction(build_config("tunit", [], [f"model.mode={mode}"]).model)
                 for mode in ("unsupervised", "semi", "supervised")}
    assert fractions == {"unsupervised": 0.0, "semi": 0.1, "supervised": 1.0}


@pytest.mark.parametrize(("override", "message"), [
    ("model.mode=weak", "model.mode"), ("data.image_size=24", "power of 2"),
    ("model.guide_stages=5", "guide_stages"), ("model.content_size=32", "content_size"),
])
def test_invalid_options_are_named(tmp_path, override, message):
    data = make_collection(tmp_path / "data", TRUE_FOLDERS)
    with pytest.raises(ValueError, match=message):
        Trainer(tunit_config(data, override), tmp_path / "run")


def _run(data: Path, out: Path, *overrides: str) -> Trainer:
    trainer = Trainer(tunit_config(data, *overrides), out)
    trainer.fit()
    return trainer


def test_unsupervised_mode_reads_no_label(tmp_path):
    """The same images sorted into wrong sub-folders give the very same run: losses and weights."""
    right = make_collection(tmp_path / "right", TRUE_FOLDERS)
    wrong = make_collection(tmp_path / "wrong", WRONG_FOLDERS)
    runs = [_run(data, tmp_path / f"run_{data.name}") for data in (right, wrong)]
    assert all(r.domains.a.labels is None for r in runs)
    assert "a_labels" not in runs[0].batches[0]
    assert_identical(runs[0].method.state_dict(), runs[1].method.state_dict())
    logs = [(r.run_dir / "metrics.jsonl").read_text().splitlines() for r in runs]
    strip = [[{k: v for k, v in json.loads(line).items() if not k.startswith("speed/")} for line in log]
             for log in logs]
    assert strip[0] == strip[1] and "loss/dis/gan" in strip[0][-1]
    # the supervised mode does read the folders: the two runs part
    supervised = [_run(data, tmp_path / f"sup_{data.name}", "model.mode=supervised") for data in (right, wrong)]
    assert "a_labels" in supervised[0].batches[0]
    assert not torch.equal(supervised[0].method.guide.domain.weight, supervised[1].method.guide.domain.weight)


def test_semi_supervised_run_uses_the_known_labels(tmp_path):
    data = make_collection(tmp_path / "data", TRUE_FOLDERS)
    trainer = _run(data, tmp_path / "run", "model.mode=semi", "model.label_fraction=0.5")
    labels = trainer.domains.a.labels
    assert int((labels >= 0).sum()) == 4 and int((labels < 0).sum()) == 4
    last = json.loads((trainer.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert {"loss/gen/ce", "loss/gen/mi", "loss/gen/style_e"} <= set(last)


def test_warm_up_trains_the_guide_alone_then_everything(tmp_path):
    data = make_collection(tmp_path / "data", TRUE_FOLDERS)
    trainer = Trainer(tunit_config(data, "model.warmup_steps=2"), tmp_path / "run")
    method = trainer.method
    snapshot = {name: p.detach().clone() for name, p in method.named_parameters()}
    keys_before = method.key_encoder.domain.weight.clone()
    queued = int(method.queue.count)
    assert queued == 8  # prepare(): the keys of the collection's images (up to 32)
    for t in range(2):
        logged = trainer.train_step(trainer.batches[t])
        assert not any(k.startswith("loss/dis") for k in logged) and "loss/gen/recon" not in logged

    def changed(prefix: str) -> bool:
        return any(not torch.equal(p, snapshot[n]) for n, p in method.named_parameters() if n.startswith(prefix))

    assert changed("nets.gen.guide") and not changed("nets.gen.generator") and not changed("nets.dis")
    assert not torch.equal(method.key_encoder.domain.weight, keys_before)  # the momentum encoder follows E
    assert int(method.queue.count) == queued + 2 * 4 and int(method.completed_steps) == 2
    assert int(method.domain_counts.sum()) == 2 * 4
    # E's own weight decay and learning rate: a parameter group of its own
    groups = trainer.optimizers["gen"].param_groups
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.001]
    logged = trainer.train_step(trainer.batches[2])
    assert {"loss/dis/gan", "loss/dis/r1", "loss/gen/gan/ref", "loss/gen/gan/rec", "loss/gen/recon",
            "loss/gen/style_g"} <= set(logged)
    assert changed("nets.gen.generator") and changed("nets.dis")
    # after the warm-up, E's own terms count x joint_guide_scale (official c_loss = 0.1 * c_loss)
    assert method.weight_of("mi") == pytest.approx(0.5) and method.weight_of("recon") == pytest.approx(0.1)


def test_peers_share_the_pseudo_domain_and_stand_in_only_for_lone_images():
    domains = torch.tensor([0, 0, 1, 2, 2, 2])
    for seed in range(20):
        torch.manual_seed(seed)
        peers = same_domain_peers(domains).tolist()
        assert peers[:3] == [1, 0, 2]  # a pair swaps; the lone image of domain 1 keeps its own style
        assert all(p != i and p in (3, 4, 5) for i, p in zip((3, 4, 5), peers[3:], strict=True))
    torch.manual_seed(0)
    drawn = {tuple(same_domain_peers(domains).tolist()[3:]) for _ in range(50)}
    assert len(drawn) > 1  # drawn at random, not a fixed rotation


def test_tunit_peer_rebuilds_x_from_a_same_domain_style(tmp_path):
    data = make_collection(tmp_path / "data", TRUE_FOLDERS)
    plain = Trainer(tunit_config(data, "model.warmup_steps=0"), tmp_path / "plain")
    assert "loss/gen/recon_peer" not in plain.train_step(plain.batches[0])  # the paper's objective: no such term
    trainer = Trainer(tunit_config(data, "model.warmup_steps=0", "loss_weights.recon_peer=2", method="tunit_peer"),
                      tmp_path / "peer")
    method = trainer.method
    batch = {k: v.to(trainer.device) for k, v in trainer.batches[0].items()}
    torch.manual_seed(0)
    step = method.forward_step(batch)
    peers = step["peers"]
    assert torch.equal(step["domains"][peers], step["domains"])
    rebuilt = method.generator.decode(method.generator.content(step["x"]), step["style"][peers])
    torch.testing.assert_close(step["rec_peer"], rebuilt)
    torch.testing.assert_close(method.loss_terms("gen", step)["recon_peer"], (rebuilt - step["x"]).abs().mean())
    logged = trainer.train_step(trainer.batches[1])
    assert math.isfinite(logged["loss/gen/recon_peer"]) and logged["loss/gen/recon_peer"] > 0


def test_tunit_peer_without_its_term_is_tunit(tmp_path):
    """recon_peer 0: the very run of plain TUNIT, losses and weights (the subclass only adds the term)."""
    data = make_collection(tmp_path / "data", TRUE_FOLDERS)
    plain = _run(data, tmp_path / "plain")
    peer = Trainer(tunit_config(data, "loss_weights.recon_peer=0", method="tunit_peer"), tmp_path / "peer")
    peer.fit()
    assert_identical(plain.method.state_dict(), peer.method.state_dict())
    logs = [[{k: v for k, v in json.loads(line).items() if not k.startswith("speed/")}
             for line in (r.run_dir / "metrics.jsonl").read_text().splitlines()] for r in (plain, peer)]
    assert logs[0] == logs[1]


def test_the_ema_guide_keeps_batch_norm_statistics_of_its_own_weights(tmp_path):
    data = make_collection(tmp_path / "data", TRUE_FOLDERS)
    trainer = Trainer(tunit_config(data, "train.ema_decay=0.5"), tmp_path / "run")
    trainer.train_step(trainer.batches[0])
    ema, live = trainer.ema["guide"], trainer.method.guide
    first_norm = "trunk.0.1.running_mean"
    assert not torch.equal(ema.state_dict()[first_norm], live.state_dict()[first_norm])  # not copied from E
    batch = {k: v.to(trainer.device) for k, v in trainer.batches[1].items()}
    before = ema.state_dict()[first_norm].clone()
    assert trainer.method.refresh_ema_statistics(trainer.ema, batch) and not ema.training
    conv_of_ema = ema.trunk[0][0](batch["a"])  # the first norm's input under the EMA weights
    torch.testing.assert_close(ema.state_dict()[first_norm], 0.9 * before + 0.1 * conv_of_ema.mean((0, 2, 3)))


def test_resume_equals_uninterrupted_run(tmp_path):
    data = make_collection(tmp_path / "data", TRUE_FOLDERS)
    whole = _run(data, tmp_path / "whole")
    part = _run(data, tmp_path / "part", "train.max_steps=3")
    assert part.step == 3
    from unpaired.training.trainer import config_for_resume

    resumed = Trainer(config_for_resume(tmp_path / "part", ["train.max_steps=4"]), tmp_path / "part", resume=True)
    resumed.fit()
    assert_identical(whole.method.state_dict(), resumed.method.state_dict())


# -------------------- CLI: train, translate, clusters
@pytest.fixture(scope="module")
def tunit_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tunit_cli")
    data = make_collection(root / "mixed", TRUE_FOLDERS)
    run = root / "run"
    code, _, err = run_cli("train", "--method", "tunit", "--data", data, "--out", run,
                           *sets(*TUNIT_TINY, "train.max_steps=5"))
    assert code == 0, err
    assert "one collection of 8 images (no labels read)" in err
    return {"root": root, "data": data, "run": run}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image, dtype=np.int16)


def test_cli_translate_by_reference_and_by_domain(tunit_run):
    root, data, run = tunit_run["root"], tunit_run["data"], tunit_run["run"]
    inputs = data / "squares"
    code, out, err = run_cli("translate", "--checkpoint", run, "--input", inputs, "--output", root / "ref",
                             "--reference", data / "discs" / "img1.png")
    assert code == 0, err
    assert sorted(p.name for p in (root / "ref").iterdir()) == [f"img{i}.png" for i in (0, 2, 4, 6)]
    translator = unpaired.load(run, device="cpu")
    (expected,) = translator.translate_image(inputs / "img0.png", reference=data / "discs" / "img1.png")
    assert np.array_equal(np.asarray(expected, dtype=np.int16), _pixels(root / "ref" / "img0.png"))
    seen = [j for j in range(3) if int(translator.method.domain_counts[j]) > 0]
    code, out, err = run_cli("translate", "--checkpoint", run, "--input", inputs / "img0.png", "--output",
                             root / "dom", "--domain", seen[0])
    assert code == 0, err and "wrote 1 image(s)" in out
    x = translator.prepare(Image.open(inputs / "img0.png"), "a2b")
    by_domain = translator.translate(x, domain=seen[0])
    by_style = translator.translate(x, style=translator.method.domain_styles[seen[0]])
    torch.testing.assert_close(by_domain, by_style)
    assert translator.translate(x, reference=torch.cat([x, x, x])).shape == (3, 3, 16, 16)  # input-major, R = 3
    assert_error(run_cli("translate", "--checkpoint", run, "--input", inputs, "--output", root / "bad",
                         "--domain", 7), "domain must be within 0..2")
    assert_error(run_cli("translate", "--checkpoint", run, "--input", inputs, "--output", root / "none"),
                 "give exactly one of reference")
    assert_error(run_cli("translate", "--checkpoint", run, "--input", inputs, "--output", root / "both", "--domain",
                         0, "--reference", data / "discs" / "img1.png"), "--reference and --domain exclude")
    assert_error(run_cli("translate", "--checkpoint", run, "--input", inputs, "--output", root / "styles",
                         "--styles", 2), "method tunit has no styles")


def test_cli_clusters_writes_the_sheet_the_embedding_and_a_report(tunit_run):
    run = tunit_run["run"]
    code, out, err = run_cli("clusters", run, "--score-folders", "--per-domain", 3)
    assert code == 0, err
    folder = run / "clusters"
    for name in ("domains.png", "styles_pca.png"):
        with Image.open(folder / name) as image:
            assert image.format == "PNG" and image.width > 100
    report = json.loads((folder / "clusters.json").read_text())
    assert report["images"] == 8 and sum(report["counts"]) == 8 and report["k"] == 3
    assert sorted(report["assignments"]) == sorted(f"{f}/img{i}.png" for f, m in TRUE_FOLDERS.items() for i in m)
    assert all(len(files) <= 3 for files in report["representatives"].values())
    assert 0.5 <= report["folder_accuracy"]["accuracy"] <= 1.0
    assert "agreement with the sub-folder names" in out
    assert_error(run_cli("clusters", run), "already holds", "--overwrite")


def test_a_checkpoint_with_options_removed_since_still_loads_for_inference(tmp_path, tunit_run):
    """A checkpoint an earlier version saved, whose stored config has options TUNIT no longer has (the removed
    over_k, cycle, ...): loaded for inference without them, with a warning naming them; a resume still refuses."""
    state = load_checkpoint(tunit_run["run"])
    stored = state["config"]
    stored["model"].update(over_k=0, style_key_tiles=0)
    stored["loss_weights"].update(mi_over=5.0, cycle=0.0, recon_peer=10.0, cycle_peer=0.0)
    old = tmp_path / "old" / "step_00000005.pt"
    old.parent.mkdir()
    save_checkpoint(old, {k: v for k, v in state.items() if k != "path"})
    with pytest.warns(UserWarning, match=r"no longer has the options model\.over_k=0, .*loss_weights\.recon_peer=10"):
        translator = unpaired.load(old, device="cpu")
    assert_identical(translator.method.state_dict(), unpaired.load(tunit_run["run"], device="cpu").method.state_dict())
    with pytest.raises(ConfigError, match="over_k"):
        config_from_dict(stored)


def test_other_methods_checkpoints_give_clear_errors(tmp_path, tunit_run):
    data = make_image_folders(tmp_path / "data", {"trainA": 2, "trainB": 2, "testA": 1, "testB": 1})
    Trainer(tiny_config(data, "train.max_steps=1"), tmp_path / "unit").fit()
    assert_error(run_cli("clusters", tmp_path / "unit"), "a unit model", "tunit")
    assert_error(run_cli("translate", "--checkpoint", tmp_path / "unit", "--input", data / "testA", "--output",
                         tmp_path / "out", "--domain", 0), "method unit has no domain")
    # and a TUNIT run cannot be resumed as another method, nor fed two domains
    assert_error(run_cli("train", "--method", "tunit", "--data", "mnist:usps", "--out", tmp_path / "x",
                         *sets(*TUNIT_TINY)), "one mixed collection")


def test_majority_accuracy_and_pca():
    assigned = torch.tensor([0, 0, 1, 1, 2, 2, 2])
    truth = torch.tensor([0, 0, 0, 0, 1, 1, 0])
    accuracy, mapping = majority_accuracy(assigned, truth)
    assert accuracy == pytest.approx(6 / 7) and mapping == {0: 0, 1: 0, 2: 1}
    codes = torch.tensor([[1.0, 0, 0], [-1, 0, 0], [0, 0.1, 0], [0, -0.1, 0]])
    points, explained = pca_2d(codes)
    assert points.shape == (4, 2) and explained[0] > 0.9
    torch.testing.assert_close(points[:, 0].abs(), torch.tensor([1.0, 1.0, 0, 0]))
