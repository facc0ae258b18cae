"""`unpaired demo`: a clear message without the data; end to end on tiny stand-ins for MNIST and USPS."""

from __future__ import annotations

import json

from test_cli import run_cli
from test_data import tiny_mnist, tiny_usps_h5

from unpaired.training.checkpoint import load_checkpoint


def test_demo_without_data_names_the_files_and_the_setting(tmp_path, monkeypatch):
    monkeypatch.setenv("UNPAIRED_DATA", str(tmp_path / "nothing"))
    code, _out, err = run_cli("demo", "--out", tmp_path / "run")
    assert code == 1
    assert "UNPAIRED_DATA" in err and str(tmp_path / "nothing") in err
    assert "train-images-idx3-ubyte" in err and "unpaired data download" in err
    assert not (tmp_path / "run").exists()


def test_demo_end_to_end_on_tiny_digits(tmp_path, monkeypatch):
    root = tmp_path / "data"
    tiny_mnist(root, n_train=40, n_test=12)
    tiny_usps_h5(root, n=30)
    monkeypatch.setenv("UNPAIRED_DATA", str(root))
    out = tmp_path / "runs" / "demo"
    (out).mkdir(parents=True)
    (out / "keep.txt").write_text("an earlier run")  # never overwritten: the demo picks demo-2
    overrides = ["train.max_steps=3", "train.batch_size=4", "model.dim=8", "model.dis_dim=8", "train.log_every=1"]
    code, stdout, err = run_cli("demo", "--out", out, "--judge-steps", "5",
                                *[a for o in overrides for a in ("--set", o)])
    assert code == 0, err
    run = tmp_path / "runs" / "demo-2"
    assert (out / "keep.txt").read_text() == "an earlier run"
    assert load_checkpoint(run, method="unit")["step"] == 3
    assert str(run / "samples") in stdout and "MNIST -> USPS" in stdout
    scores = json.loads((run / "demo_scores.json").read_text())
    shares = {"judge_accuracy_mnist", "judge_accuracy_usps", "kept_mnist_to_usps", "kept_usps_to_mnist",
              "untranslated_mnist_to_usps", "untranslated_usps_to_mnist"}
    assert set(scores) == shares | {"steps", "batch_size", "precision", "cpu", "seconds"}
    assert all(0.0 <= scores[k] <= 1.0 for k in shares)
    assert scores["steps"] == 3 and scores["batch_size"] == 4
    assert "demo 1/3" in err and "demo 2/3" in err and "demo 3/3" in err


def test_demo_whose_judges_leave_no_time_to_train_says_so(tmp_path, monkeypatch):
    root = tmp_path / "data"
    tiny_mnist(root, n_train=40, n_test=12)
    tiny_usps_h5(root, n=30)
    monkeypatch.setenv("UNPAIRED_DATA", str(root))
    code, _out, err = run_cli("demo", "--out", tmp_path / "run", "--judge-steps", "5", "--minutes", "0.00001")
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: --minutes 1e-05: the judges took")
    assert not (tmp_path / "run").exists()
