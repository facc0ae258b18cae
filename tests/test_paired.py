"""Aligned pairs (pix2pix layout): the paired source, `pairs:DIR@f` training data, the paired metrics against
hand-computed values, and `unpaired eval paired` end to end on a tiny trained checkpoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import need_data, shape_image
from PIL import Image
from test_cli import assert_error, run_cli, sets
from test_one_to_one import TINY

from unpaired.data import DataError, FolderSource, PairedFolderSource, open_domains
from unpaired.data.paired import list_pairs, natural_key, pair_files, parse_pairs_spec, split_pairs
from unpaired.metrics.paired import (
    evaluate_pairs,
    parse_deltas,
    pixel_accuracy,
    resize_truth,
    rmse,
    score_images,
    write_report,
)


def make_pairs(folder: Path, count: int = 8, size: int = 16, offset: int = 0, seed: int = 0) -> Path:
    """``count`` PNG pairs named 1.png..N.png: a shape image on the left (values <= 200) and, on the right, the
    same image plus ``offset`` (so the two halves differ by exactly ``offset`` in every channel)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, count + 1):
        a = np.minimum(np.asarray(shape_image(rng, (size, size), "A")), 200).astype(np.uint8)
        b = (a.astype(int) + offset).astype(np.uint8)
        Image.fromarray(np.concatenate([a, b], axis=1)).save(folder / f"{i}.png")
    return folder


def halves(path: Path) -> tuple[np.ndarray, np.ndarray]:
    array = np.array(Image.open(path).convert("RGB"))
    w = array.shape[1] // 2
    return array[:, :w], array[:, w:]


# -------------------- the paired source and the pairs: form of --data


def test_paired_source_returns_the_left_or_right_half(tmp_path):
    folder = make_pairs(tmp_path / "p", count=3, offset=40)
    left, right = PairedFolderSource(folder, "a"), PairedFolderSource(folder, "b")
    assert len(left) == len(right) == 3 and left.channels == 3
    for i in range(3):
        a, b = halves(folder / left.file_name(i))
        assert torch.equal(left[i], torch.from_numpy(a).permute(2, 0, 1))
        assert torch.equal(right[i], torch.from_numpy(b).permute(2, 0, 1))
    gray = PairedFolderSource(folder, "b", channels=1, load_size=8, indices=[2])
    assert len(gray) == 1 and gray.file_name(0) == "3.png" and gray[0].shape == (1, 8, 8)
    assert isinstance(left, FolderSource) and left.check() == []


def test_paired_files_are_in_natural_order(tmp_path):
    folder = tmp_path / "p"
    folder.mkdir()
    for name in ("10.png", "2.png", "1.png", "b.png", "a10.png", "a9.png"):
        Image.new("RGB", (8, 4)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    assert [p.name for p in list_pairs(folder)] == ["1.png", "2.png", "10.png", "a9.png", "a10.png", "b.png"]
    assert natural_key("img2.png") < natural_key("img10.png")
    assert PairedFolderSource(folder, "a", indices=[2, 0]).paths == [folder / "10.png", folder / "1.png"]


def test_paired_source_errors(tmp_path):
    folder = make_pairs(tmp_path / "p", count=2)
    Image.new("RGB", (30, 16)).save(folder / "3.png")  # not twice as wide as high
    with pytest.raises(DataError, match=r"3\.png: is 30x16, not an aligned pair.*twice the height"):
        PairedFolderSource(folder, "a")
    with pytest.warns(RuntimeWarning, match="3.png"):
        skipping = PairedFolderSource(folder, "a", on_bad_image="skip")
    assert len(skipping) == 2 and skipping.skipped == [str(folder / "3.png")]
    (folder / "4.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match=r"4\.jpg: cannot decode image"):
        PairedFolderSource(folder, "b", indices=[3])
    with pytest.raises(DataError, match="holds 4 images, no image number 9"):
        PairedFolderSource(folder, "a", indices=[9])
    with pytest.raises(ValueError, match="side must be 'a'"):
        PairedFolderSource(folder, "left")
    layout = tmp_path / "cyclegan"
    (layout / "trainA").mkdir(parents=True)
    with pytest.raises(DataError, match=r"no images .* sub-folders trainA/"):
        PairedFolderSource(layout, "a")
    with pytest.raises(DataError, match="does not exist"):
        PairedFolderSource(tmp_path / "missing", "a")


def test_pairs_spec_and_split():
    assert parse_pairs_spec("pairs:maps/train") == ("maps/train", 0.8)
    assert parse_pairs_spec("pairs:maps/train@0.5") == ("maps/train", 0.5)
    assert parse_pairs_spec("pairs:me@work/maps") == ("me@work/maps", 0.8)  # '@' + not a number: part of the path
    assert split_pairs(400, 0.8) == (list(range(320)), list(range(320, 400)))
    assert split_pairs(5, 1.0) == (list(range(5)), [])
    assert split_pairs(3, 0.01) == ([0, 1], [2])  # at least 2 to train on, at least 1 held out
    for bad in (0, 1.5, float("nan")):
        with pytest.raises(DataError, match=r"fraction must be in \(0, 1\]"):
            split_pairs(10, bad)
    with pytest.raises(DataError, match="at least 3 images"):
        split_pairs(2, 0.5)
    with pytest.raises(DataError, match="no folder"):
        parse_pairs_spec("pairs:@0.8")


def test_open_domains_pairs_keeps_training_unpaired_and_holds_out_the_rest(tmp_path):
    folder = make_pairs(tmp_path / "p", count=10)
    train = open_domains(f"pairs:{folder}@0.8", "train", image_size=16, channels=None)
    test = open_domains(f"pairs:{folder}@0.8", "test", image_size=16, channels=None)
    names = lambda src: [src.file_name(i) for i in range(len(src))]  # noqa: E731
    assert names(train.a) == ["1.png", "3.png", "5.png", "7.png"] and train.a.side == "a"
    assert names(train.b) == ["2.png", "4.png", "6.png", "8.png"] and train.b.side == "b"
    assert not set(names(train.a)) & set(names(train.b))  # no pair has both halves in training
    assert names(test.a) == names(test.b) == ["9.png", "10.png"]  # the hold-out, aligned
    assert "disjoint" in train.description and "aligned" in test.description
    assert pair_files(f"pairs:{folder}@0.8")[1] == [8, 9]
    assert pair_files(str(folder))[1] is None
    default = open_domains(f"pairs:{folder}", "test", image_size=8, channels=1)
    assert len(default.a) == 2 and default.a[0].shape == (1, 8, 8)
    with pytest.warns(UserWarning, match="not a held-out evaluation"):
        everything = open_domains(f"pairs:{folder}@1", "test", image_size=16, channels=None)
    assert len(everything.a) == 10
    with pytest.raises(DataError, match="no hold-out images"):
        pair_files(f"pairs:{folder}@1")
    with pytest.raises(DataError, match="is not a folder"):
        open_domains(f"pairs:{tmp_path / 'nowhere'}", "train", image_size=16, channels=None)
    with pytest.raises(DataError) as error:  # the list of --data forms names the new one
        open_domains("mnist", "train", image_size=8, channels=None)
    assert "--data pairs:maps/train@0.8" in str(error.value)


def test_real_maps_split():
    root = need_data("maps/train/1.jpg")
    train = open_domains("pairs:maps/train@0.8", "train", image_size=32, channels=None, root=root)
    test = open_domains("pairs:maps/train@0.8", "test", image_size=32, channels=None, root=root)
    assert (len(train.a), len(train.b), len(test.a), len(test.b)) == (160, 160, 80, 80)
    assert train.a[0].shape == test.b[0].shape == (3, 32, 32)


# -------------------- metrics against hand-computed values


def test_rmse_and_pixel_accuracy_by_hand():
    pred = torch.tensor([[[[0, 10]], [[0, 20]], [[0, 30]]]], dtype=torch.uint8)  # 1 x 3 x 1 x 2
    truth = torch.tensor([[[[3, 10]], [[4, 20]], [[0, 36]]]], dtype=torch.uint8)
    # pixel 0: differences (3, 4, 0) -> squared RGB distance 25, largest 4; pixel 1: (0, 0, 6) -> 36, largest 6
    assert rmse(pred, truth).item() == pytest.approx(((25 + 36) / 2) ** 0.5)
    assert pixel_accuracy(pred, truth, 5).item() == 0.5  # 4 < 5, 6 >= 5
    assert pixel_accuracy(pred, truth, 4).item() == 0.0  # strict: 4 is not below 4
    assert pixel_accuracy(pred, truth, 6.5).item() == 1.0
    scores = score_images(torch.cat([pred, truth]), torch.cat([truth, truth]), deltas=(5, 10))
    assert set(scores) == {"rmse", "acc_5", "acc_10"}
    assert scores["rmse"].tolist() == pytest.approx([30.5**0.5, 0.0])
    assert scores["acc_10"].tolist() == [1.0, 1.0]
    gray = torch.full((1, 1, 2, 2), 100.0)
    assert rmse(gray, torch.full((1, 3, 2, 2), 98.0)).item() == pytest.approx((3 * 4) ** 0.5)  # gray counts as RGB
    with pytest.raises(ValueError, match="differ in shape"):
        rmse(pred, truth[..., :1])
    with pytest.raises(ValueError, match="delta must be positive"):
        pixel_accuracy(pred, truth, 0)
    assert parse_deltas("5, 10,20") == (5.0, 10.0, 20.0)
    for bad in ("", "5,x", "0,5"):
        with pytest.raises(ValueError, match="--deltas"):
            parse_deltas(bad)


def test_ground_truth_resizing():
    row = torch.tensor([0, 0, 90, 0, 0, 90], dtype=torch.uint8)
    image = row.view(1, 1, 6).expand(3, 6, 6).contiguous()  # 3 x 6 x 6, constant down the columns
    # 6 -> 2 px: bilinear without antialiasing samples source x = (d + 0.5) * 3 - 0.5 = 1 and 4 (values 0, 0);
    # the box average takes the mean of pixels 0-2 and 3-5 (30, 30)
    assert resize_truth(image, (2, 2), "linear").unique().tolist() == [0]
    assert resize_truth(image, (2, 2), "area").unique().tolist() == [30]
    assert resize_truth(image, (6, 6)) is image
    with pytest.raises(ValueError, match="gt_resize"):
        resize_truth(image, (2, 2), "nearest")


class IdentityTranslator:
    """Translates by copying: paired scores then measure exactly the difference between the two halves."""

    config = SimpleNamespace(method="identity")
    step = 7

    def prepare(self, image, direction, size):
        array = np.asarray(image.resize((size, size), Image.BICUBIC), dtype=np.float32)
        return torch.from_numpy(array).permute(2, 0, 1)[None].div(127.5).sub(1)

    def translate(self, x, direction):
        return x


def test_evaluate_pairs_measures_the_difference_between_halves(tmp_path):
    folder = make_pairs(tmp_path / "p", count=5, offset=3)  # B = A + 3 in every channel
    report = evaluate_pairs(IdentityTranslator(), folder, "a2b", size=16, deltas=(3, 4), batch_size=2)
    assert len(report.rows) == 5 and report.size == (16, 16)
    assert [row["file"] for row in report.rows] == [f"{i}.png" for i in range(1, 6)]
    assert report.mean("rmse") == pytest.approx(27**0.5)  # sqrt(3^2 + 3^2 + 3^2) at every pixel
    assert report.mean("acc_3") == 0.0 and report.mean("acc_4") == 1.0
    back = evaluate_pairs(IdentityTranslator(), folder, "b2a", size=16, deltas=(4,), indices=[3, 4], limit=1)
    assert [row["file"] for row in back.rows] == ["4.png"] and back.mean("rmse") == pytest.approx(27**0.5)
    assert set(report.examples) == {"source", "output", "truth"} and report.examples["truth"].shape == (4, 3, 16, 16)
    assert evaluate_pairs(IdentityTranslator(), make_pairs(tmp_path / "same", 2), size=16).mean("rmse") == 0.0

    written = write_report(report, tmp_path / "out")
    assert sorted(written) == ["examples.png", "per_image.csv", "report.json", "report.md"]
    rows = list(csv.DictReader((tmp_path / "out" / "per_image.csv").open()))
    assert [r["file"] for r in rows] == [f"{i}.png" for i in range(1, 6)]
    assert float(rows[0]["rmse"]) == pytest.approx(27**0.5) and float(rows[0]["acc_4"]) == 1.0
    saved = json.loads((tmp_path / "out" / "report.json").read_text())
    assert saved["mean"]["rmse"] == pytest.approx(27**0.5, abs=1e-5) and saved["images"] == 5
    with pytest.raises(DataError, match=r"already holds report\.json"):
        write_report(report, tmp_path / "out")
    write_report(report, tmp_path / "out", overwrite=True)


# -------------------- the CLI end to end


@pytest.fixture(scope="module")
def trained_on_pairs(tmp_path_factory) -> dict[str, Path]:
    """GcGAN (one-sided a2b) trained 2 steps on pairs:DIR@0.75 through the CLI."""
    root = tmp_path_factory.mktemp("paired")
    data = make_pairs(root / "pairs", count=8, size=16, offset=30)
    run = root / "run"
    code, _out, err = run_cli("train", "--config", "gcgan_digits", "--data", f"pairs:{data}@0.75", "--out", run,
                              *sets(*TINY, "train.max_steps=2", "train.batch_size=2"))
    assert code == 0, err
    assert "pairs [train, disjoint files" in err
    return {"root": root, "data": data, "run": run}


def test_cli_eval_paired_writes_reports_and_refuses_to_overwrite(trained_on_pairs):
    data, run, out = trained_on_pairs["data"], trained_on_pairs["run"], trained_on_pairs["root"] / "eval"
    args = ["eval", "paired", "--checkpoint", run, "--data", f"pairs:{data}@0.75", "--size", "16", "--out", out]
    code, printed, err = run_cli(*args)
    assert code == 0, err
    assert "gcgan step 2, a2b, 2 images" in printed and "acc (delta=5)" in printed and "RMSE" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 2 and report["size"] == [16, 16] and report["deltas"] == [5, 10, 20]
    assert [r["file"] for r in report["per_image"]] == ["7.png", "8.png"]  # the held-out 25 %
    assert 0 <= report["mean"]["acc_5"] <= report["mean"]["acc_10"] <= report["mean"]["acc_20"] <= 1
    assert report["mean"]["rmse"] > 0
    assert len(list(csv.DictReader((out / "per_image.csv").open()))) == 2
    assert Image.open(out / "examples.png").size[0] > 2 * 16
    assert "| pixel accuracy, delta = 5 |" in (out / "report.md").read_text()

    before = (out / "report.json").stat().st_mtime_ns
    assert_error(run_cli(*args), out, "report.json", "--overwrite")
    assert (out / "report.json").stat().st_mtime_ns == before
    code, printed, err = run_cli(*args, "--overwrite", "--limit", "1", "--deltas", "2.5", "--gt-resize", "area")
    assert code == 0, err
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 1 and report["deltas"] == [2.5] and report["gt_resize"] == "area"

    code, printed, err = run_cli("eval", "paired", "--checkpoint", run, "--data", data, "--size", "16")
    assert code == 0 and "8 images" in printed  # a plain folder: every image, nothing written


def test_cli_eval_paired_errors(trained_on_pairs, tmp_path):
    data, run = trained_on_pairs["data"], trained_on_pairs["run"]
    base = ["eval", "paired", "--checkpoint", run, "--size", "16"]
    assert_error(run_cli(*base, "--data", data, "--direction", "b2a"), "one-sided", "a2b")
    assert_error(run_cli(*base, "--data", data, "--deltas", "5,abc"), "--deltas")
    bad = make_pairs(tmp_path / "bad", count=2)
    Image.new("RGB", (20, 16)).save(bad / "3.png")
    assert_error(run_cli(*base, "--data", bad), "3.png", "twice the height")
    layout = tmp_path / "cyclegan"
    (layout / "trainA").mkdir(parents=True)
    assert_error(run_cli(*base, "--data", layout), "trainA/", "aligned pairs")
    assert_error(run_cli(*base, "--data", f"pairs:{data}@1"), "no hold-out images")


def test_cli_data_check_reads_pairs(tmp_path):
    folder = make_pairs(tmp_path / "p", count=6)
    code, printed, err = run_cli("data", "check", f"pairs:{folder}@0.5")
    assert code == 0, err
    assert "left halves]: 2 images" in printed and "right halves]: 1 images" in printed
