"""The command line end to end: help, train, translate, unpaired.load, and one-line errors with exit codes.

Most commands run in this process through ``unpaired.cli.main`` (the console script's entry point, with its
exit codes); a few run as real subprocesses to check the installed entry point and process exit codes.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from unittest import mock

import click
import numpy as np
import pytest
import torch
from conftest import TINY, remount, shape_image
from PIL import Image

import unpaired
from unpaired.cli import EXIT_ERROR, cli, main
from unpaired.training.checkpoint import latest_checkpoint, load_checkpoint


def run_cli(*args: object) -> tuple[int, str, str]:
    """Run ``unpaired ARGS`` through main(): (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with mock.patch.object(sys, "argv", ["unpaired", *map(str, args)]), redirect_stdout(out), redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def sets(*overrides: str) -> list[str]:
    return [a for s in overrides for a in ("--set", s)]


def assert_error(result: tuple[int, str, str], *names: object, one_line: bool = True) -> str:
    """Exit code 1 and one `error:` line naming each of ``names``, with no traceback; with ``one_line`` the
    message ends on that line (else hint lines may follow). Returns the error line."""
    code, _out, err = result
    assert code == EXIT_ERROR, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    if one_line:
        assert err.rstrip().endswith(lines[0]), f"expected a one-line error, got:\n{err}"
    for name in names:
        assert str(name) in lines[0], f"{name} not in: {lines[0]}"
    return lines[0]


def save(image: Image.Image, path: Path, mode: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.convert(mode).save(path)
    return path


def make_mixed_folders(root: Path, seed: int = 0) -> Path:
    """trainA/ trainB/ testA/ testB/ mixing PNG and JPEG, gray, RGB and RGBA, several sizes."""
    rng = np.random.default_rng(seed)
    layout = {
        "trainA": [("a0.png", (20, 16), "RGB"), ("a1.jpg", (16, 24), "RGB"), ("a2.png", (16, 16), "L"),
                   ("a3.png", (24, 24), "RGBA"), ("a4.jpg", (18, 18), "L"), ("a5.png", (12, 10), "RGB")],
        "trainB": [("b0.jpg", (16, 16), "RGB"), ("b1.png", (20, 20), "RGBA"), ("b2.png", (16, 20), "L"),
                   ("b3.jpeg", (32, 16), "RGB"), ("b4.png", (16, 16), "RGB")],
        "testA": [("t0.png", (20, 16), "RGB"), ("t1.jpg", (16, 16), "L"), ("t2.png", (24, 24), "RGBA")],
        "testB": [("u0.png", (16, 16), "RGB"), ("u1.png", (16, 24), "L")],
    }
    for folder, files in layout.items():
        for name, size, mode in files:
            save(shape_image(rng, size, folder[-1]), root / folder / name, mode)
    return root


def train_args(data: Path, out: Path, *overrides: str) -> list[str]:
    return ["train", "--config", "unit_digits", "--data", data, "--out", out, *sets(*TINY, *overrides)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """One short training run shared by the translate tests (EMA on, so --no-ema means something)."""
    root = tmp_path_factory.mktemp("cli")
    data = make_mixed_folders(root / "data")
    run = root / "run"
    code, out, err = run_cli(*train_args(data, run, "train.max_steps=3", "train.ema_decay=0.5"))
    assert code == 0, err
    printed = dict(line.split(": ", 1) for line in out.splitlines() if line.startswith(("checkpoint:", "samples:")))
    return {"root": root, "data": data, "run": run, "checkpoint": Path(printed["checkpoint"].strip()),
            "grid": Path(printed["samples"].strip())}


# -------------------- help


def _commands() -> list[tuple[list[str], click.Command]]:
    found = [([], cli)]
    for name, command in cli.commands.items():
        found.append(([name], command))
        if isinstance(command, click.Group):
            found += [([name, sub], c) for sub, c in command.commands.items()]
    return found


def test_commands_exist():
    names = [" ".join(path) for path, _ in _commands()]
    for expected in ("train", "translate", "export", "demo", "data", "data check", "data download", "eval fid",
                     "eval translation"):
        assert expected in names


@pytest.mark.parametrize(("path", "command"), _commands(), ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_help_lists_every_option(path, command):
    code, out, err = run_cli(*path, "--help")
    assert code == 0, err
    assert f"{' '.join(['unpaired', *path])} [OPTIONS]" in out
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in param.opts:
                assert opt in out, f"{' '.join(path)} --help lacks {opt}"
            assert param.help, f"{' '.join(path)} {param.opts[0]} has no help text"
        else:
            assert param.human_readable_name in out
    if isinstance(command, click.Group):
        for sub in command.commands:
            assert sub in out


def test_short_help_flag_and_version():
    code, out, _ = run_cli("train", "-h")
    assert code == 0 and "--resume" in out
    code, out, _ = run_cli("--version")
    assert code == 0 and unpaired.__version__ in out


def test_entry_point_in_a_subprocess(tmp_path):
    script = Path(sys.executable).parent / "unpaired"
    command = [str(script)] if script.exists() else [sys.executable, "-m", "unpaired.cli"]
    done = subprocess.run([*command, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "translate" in done.stdout
    done = subprocess.run([sys.executable, "-m", "unpaired.cli", "train", "--method", "unit", "--data", str(tmp_path),
                           "--out", str(tmp_path / "run"), "--set", "model.dimm=3"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == ("error: --set (key 'model.dimm'): Key 'dimm' not in 'UNITConfig'. "
                                   "Did you mean: 'dim'?")
    done = subprocess.run([sys.executable, "-m", "unpaired.cli", "translate"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "Missing option '--checkpoint'" in done.stderr  # click usage errors


def test_translate_in_a_subprocess_is_quiet(trained, tmp_path):
    """A real `unpaired translate` process: exit 0, the image written, and nothing (no warnings) on stderr."""
    done = subprocess.run([sys.executable, "-m", "unpaired.cli", "translate", "--checkpoint", str(trained["run"]),
                           "--input", str(trained["data"] / "testA" / "t1.jpg"), "--output", str(tmp_path / "out"),
                           "--device", "cpu"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout.strip() == f"wrote 1 image(s) to {tmp_path / 'out'}"
    with Image.open(tmp_path / "out" / "t1.jpg") as image:
        assert image.format == "JPEG" and image.size == (16, 16)


def test_translate_onto_a_read_only_file_system_is_one_error_line(trained, tmpfs):
    """Any write the CLI cannot make (here a real read-only tmpfs) ends with one line naming the path."""
    read_only = tmpfs("ro,size=64k")
    code, _out, err = run_cli("translate", "--checkpoint", trained["run"], "--input",
                              trained["data"] / "testA" / "t1.jpg", "--output", read_only / "out", "--device", "cpu")
    assert code == 1
    assert err.strip().splitlines() == [f"error: {read_only / 'out'}: Read-only file system"], err


# -------------------- train


def test_train_writes_a_run(trained):
    run = trained["run"]
    assert trained["checkpoint"] == latest_checkpoint(run) == run / "checkpoints" / "step_00000003.pt"
    assert trained["grid"] == run / "samples" / "step_00000003.png"
    state = load_checkpoint(run)
    assert state["step"] == 3 and state["channels"] == {"a": 3, "b": 3} and state["ema"] is not None
    assert (run / "config.yaml").is_file() and (run / "metrics.jsonl").is_file()
    assert sorted(p.name for p in (run / "samples").glob("*.png")) == ["step_00000000.png", "step_00000003.png"]


def test_train_gray_domains_and_resume(tmp_path):
    data = make_mixed_folders(tmp_path / "data", seed=1)
    run = tmp_path / "run"
    code, _, err = run_cli(*train_args(data, run, "train.max_steps=2", "data.channels=1"))
    assert code == 0, err
    assert load_checkpoint(run)["channels"] == {"a": 1, "b": 1}
    code, out, err = run_cli("train", "--resume", run, *sets("train.max_steps=4"))
    assert code == 0, err
    assert "stopped at step 4" in out and load_checkpoint(run)["step"] == 4
    out_dir = tmp_path / "gray"
    code, _, err = run_cli("translate", "--checkpoint", run, "--input", data / "testA", "--output", out_dir)
    assert code == 0, err
    with Image.open(out_dir / "t0.png") as image:
        assert image.mode == "L"


# -------------------- translate


def _translate(trained, source: Path, name: str, *extra: object) -> tuple[int, str, str, Path]:
    output = trained["root"] / name
    code, out, err = run_cli("translate", "--checkpoint", trained["run"], "--input", source, "--output", output,
                             *extra)
    return code, out, err, output


@pytest.mark.parametrize(("direction", "folder"), [("a2b", "testA"), ("b2a", "testB")])
def test_translate_folder_keeps_names(trained, direction, folder):
    source = trained["data"] / folder
    (source / "notes.txt").write_text("not an image")
    code, out, err, output = _translate(trained, source, f"folder_{direction}", "--direction", direction)
    assert code == 0, err
    inputs = sorted(p.name for p in source.iterdir() if p.suffix != ".txt")
    assert sorted(p.name for p in output.iterdir()) == inputs
    assert f"wrote {len(inputs)} image(s) to {output}" in out
    for name in inputs:
        with Image.open(source / name) as original, Image.open(output / name) as translated:
            assert translated.mode == "RGB"
            w, h = original.size  # shorter side -> the training size (16), sides multiples of 4
            scale = 16 / min(w, h)
            assert translated.size == (round(w * scale / 4) * 4, round(h * scale / 4) * 4)


@pytest.mark.parametrize(("direction", "file"), [("a2b", "testA/t2.png"), ("b2a", "testB/u1.png")])
def test_translate_single_file(trained, direction, file):
    code, _, err, output = _translate(trained, trained["data"] / file, f"single_{direction}", "--direction",
                                      direction, "--keep-size")
    assert code == 0, err
    assert [p.name for p in output.iterdir()] == [Path(file).name]
    with Image.open(trained["data"] / file) as original, Image.open(output / Path(file).name) as translated:
        assert translated.size == original.size  # --keep-size


@pytest.mark.parametrize("use_ema", [True, False])
def test_load_matches_cli_output(trained, use_ema):
    source = trained["data"] / "testA" / "t0.png"
    extra = [] if use_ema else ["--no-ema"]
    code, _, err, output = _translate(trained, source, f"compare_{use_ema}", *extra)
    assert code == 0, err
    translator = unpaired.load(trained["run"], device="cpu", use_ema=use_ema)
    assert translator.uses_ema == use_ema  # the run kept EMA weights
    assert translator.step == 3 and translator.image_size == 16
    with Image.open(source) as image:
        y = translator.translate(translator.prepare(image, "a2b"), "a2b")[0]
    expected = ((y.clamp(-1, 1) + 1) * 127.5).permute(1, 2, 0).numpy()
    with Image.open(output / "t0.png") as written:
        got = np.asarray(written, dtype=np.float64)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 0.5 + 1e-4  # uint8 rounding only
    assert np.asarray(translator.translate_image(source, "a2b")[0]).tolist() == got.astype(np.uint8).tolist()


def test_ema_and_live_weights_differ(trained):
    ema = unpaired.load(trained["run"], device="cpu")
    live = unpaired.load(trained["run"], device="cpu", use_ema=False)
    x = torch.zeros(1, 3, 16, 16)
    assert not torch.equal(ema.translate(x), live.translate(x))
    with pytest.raises(ValueError, match="domain 'a' images have 3 channels, got 1"):
        ema.translate(torch.zeros(1, 1, 16, 16))


def test_translate_refuses_to_overwrite(trained):
    source = trained["data"] / "testB"
    code, _, err, output = _translate(trained, source, "twice", "--direction", "b2a")
    assert code == 0, err
    before = {p.name: p.read_bytes() for p in output.iterdir()}
    (output / "u0.png").write_bytes(b"keep me")
    line = assert_error(_translate(trained, source, "twice", "--direction", "b2a")[:3], output, "--overwrite")
    assert "u0.png" in line
    assert (output / "u0.png").read_bytes() == b"keep me"
    code, _, err, _ = _translate(trained, source, "twice", "--direction", "b2a", "--overwrite")
    assert code == 0, err
    assert {p.name: p.read_bytes() for p in output.iterdir()} == before


def test_translate_bad_input_image(trained, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    shutil.copy(trained["data"] / "testA" / "t0.png", folder / "good.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    assert_error(_translate(trained, folder, "bad_fail")[:3], folder / "broken.png", "cannot translate")
    code, out, err, output = _translate(trained, folder, "bad_skip", "--on-bad-image", "skip")
    assert code == 0, err
    assert "skipped 1: broken.png" in out and [p.name for p in output.iterdir()] == ["good.png"]


def test_translate_empty_input_folder(trained, tmp_path):
    (tmp_path / "none").mkdir()
    assert_error(_translate(trained, tmp_path / "none", "none_out")[:3], tmp_path / "none", "no images")


# -------------------- bad training inputs


@pytest.fixture
def data(tmp_path) -> Path:
    return make_mixed_folders(tmp_path / "data")


def test_corrupt_image_in_domain_folder(data, tmp_path):
    bad = data / "trainA" / "zz_corrupt.png"
    bad.write_bytes(b"this is not a png")
    assert_error(run_cli(*train_args(data, tmp_path / "run", "train.max_steps=1")), bad, "cannot decode image",
                 "--set data.on_bad_image=skip")
    assert not (tmp_path / "run").exists()  # a failed start leaves no run folder in the way of the next try
    code, out, err = run_cli(*train_args(data, tmp_path / "run2", "train.max_steps=1", "data.on_bad_image=skip"))
    assert code == 0, err
    assert "stopped at step 1" in out


def test_truncated_image_found_while_training(data, tmp_path):
    rng = np.random.default_rng(0)
    bad = data / "trainA" / "a9.jpg"
    Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(bad, quality=95)
    bad.write_bytes(bad.read_bytes()[:800])  # the header reads, the pixels do not
    # 7 images in A at 2 per step: four steps draw every one of them
    assert_error(run_cli(*train_args(data, tmp_path / "run", "train.max_steps=4")), bad, "cannot decode image")
    code, _, err = run_cli(*train_args(data, tmp_path / "run2", "train.max_steps=4", "data.on_bad_image=skip"))
    assert code == 0, err


def test_empty_domain_folder(data, tmp_path):
    shutil.rmtree(data / "trainB")
    (data / "trainB").mkdir()
    assert_error(run_cli(*train_args(data, tmp_path / "run")), data / "trainB", "no images")


def test_missing_folders(data, tmp_path):
    missing = tmp_path / "no_such_data"
    assert_error(run_cli(*train_args(missing, tmp_path / "run")), missing, one_line=False)
    assert not (tmp_path / "run").exists()
    shutil.rmtree(data / "trainB")
    assert_error(run_cli(*train_args(data, tmp_path / "run")), data, "trainB/", one_line=False)
    assert_error(run_cli(*train_args(f"{data / 'trainA'}:{missing}", tmp_path / "run")), missing, one_line=False)


def test_unknown_config_key(data, tmp_path):
    assert_error(run_cli(*train_args(data, tmp_path / "run", "model.dimension=8")), "model.dimension")
    assert_error(run_cli(*train_args(data, tmp_path / "run", "trian.max_steps=8")), "trian")
    yaml = tmp_path / "mine.yaml"
    yaml.write_text("method: unit\ntrain:\n  max_step: 5\n")
    assert_error(run_cli("train", "--config", yaml, "--data", data, "--out", tmp_path / "run"), yaml,
                 "train.max_step")
    assert_error(run_cli("train", "--config", "unit_digitz", "--data", data, "--out", tmp_path / "run"),
                 "unit_digitz", "unit_digits")


def test_wrong_type(data, tmp_path):
    assert_error(run_cli(*train_args(data, tmp_path / "run", "train.batch_size=two")), "train.batch_size")
    assert_error(run_cli(*train_args(data, tmp_path / "run", "train.precision=fp8")), "train.precision", "fp8")
    assert not (tmp_path / "run").exists()


def test_invalid_model_options(data, tmp_path):
    assert_error(run_cli(*train_args(data, tmp_path / "run", "model.shared_blocks=5")), "model.shared_blocks")
    assert_error(run_cli(*train_args(data, tmp_path / "run2", "model.gan_type=vanilla")), "model.gan_type")


def test_missing_out_and_data(data, tmp_path):
    assert_error(run_cli("train", "--config", "unit_digits", "--data", data), "--out")
    assert_error(run_cli("train", "--config", "unit_digits", "--out", tmp_path / "run"), "--data")
    assert_error(run_cli("train", "--data", data, "--out", tmp_path / "run"), "--method")


def test_existing_out_folder(trained):
    run = trained["run"]
    before = sorted(p.name for p in run.rglob("*"))
    assert_error(run_cli(*train_args(trained["data"], run)), run, "--resume")
    assert sorted(p.name for p in run.rglob("*")) == before


def test_checkpoint_from_another_method(trained, tmp_path):
    state = torch.load(latest_checkpoint(trained["run"]), weights_only=True)
    state["method"] = "cyclegan"
    other = tmp_path / "other.pt"
    torch.save(state, other)
    assert_error(run_cli("translate", "--checkpoint", other, "--input", trained["data"] / "testA",
                         "--output", tmp_path / "out"), other, "cyclegan")
    # the same file as the latest checkpoint of a run being resumed
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    torch.save(state, latest_checkpoint(run))
    assert_error(run_cli("train", "--resume", run, *sets("train.max_steps=5")), latest_checkpoint(run),
                 "from method 'cyclegan', not 'unit'")


def test_resume_errors(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained["run"], run)
    assert_error(run_cli("train", "--resume", run, *sets("train.precision=fp8")), "train.precision")
    assert_error(run_cli("train", "--resume", run, *sets("train.max_stepz=9")), "train.max_stepz")
    line = assert_error(run_cli("train", "--resume", run, "--config", "unit_digits"), run, "--resume", "--set")
    assert line.startswith("error: --config: ")
    assert_error(run_cli("train", "--resume", tmp_path), tmp_path, "config.yaml")
    assert_error(run_cli("train", "--resume", run, *sets("model.dim=16", "train.max_steps=9")),
                 "does not fit this configuration")
    # the first command with --resume added: what it repeats must be the run's own
    assert assert_error(run_cli("train", "--method", "cyclegan", "--resume", run)) == (
        f"error: --method cyclegan: the run {run} was trained with unit; --resume continues that run")
    other = tmp_path / "other_data"
    assert assert_error(run_cli("train", "--data", other, "--resume", run)) == (
        f"error: --data {other}: the run {run} was trained on {trained['data']}; --resume continues that run")
    assert load_checkpoint(run)["step"] == 3  # nothing was written by the failed attempts
    code, out, err = run_cli("train", "--method", "unit", "--data", trained["data"], "--resume", run,
                             *sets("train.max_steps=4"))
    assert code == 0, err
    assert "stopped at step 4" in out


# -------------------- where the run goes: a file, a read-only or a full file system


def test_out_is_a_file(data, tmp_path):
    taken = tmp_path / "notes.txt"
    taken.write_text("mine")
    assert_error(run_cli(*train_args(data, taken, "train.max_steps=1")), taken, "is a file, not a folder", "--out")
    assert taken.read_text() == "mine"


def test_out_on_a_read_only_file_system(data, tmpfs):
    read_only = tmpfs("ro,size=1m")
    for out in (read_only / "run", read_only):  # a new folder there, or the empty mount point itself
        assert_error(run_cli(*train_args(data, out, "train.max_steps=1")), out, "Read-only file system", "--out")
    assert list(read_only.iterdir()) == []


def test_disk_full_while_writing_a_checkpoint(data, tmpfs):
    disk = tmpfs("size=3m")  # room for one checkpoint of the tiny UNIT (2.2 MB), not for two
    run = disk / "run"
    assert assert_error(run_cli(*train_args(data, run, "train.max_steps=2", "train.checkpoint_every=1"))) == (
        f"error: {run / 'checkpoints'}: no space left on device while writing step_00000002.pt; the last "
        "checkpoint step_00000001.pt is intact")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_00000001.pt"]
    assert load_checkpoint(run)["step"] == 1
    remount(disk, "size=8m")  # space freed: the run goes on from there
    code, out, err = run_cli("train", "--resume", run)
    assert code == 0, err
    assert "stopped at step 2" in out and load_checkpoint(run)["step"] == 2


def test_disk_full_at_the_first_checkpoint_leaves_no_run(data, tmpfs):
    disk = tmpfs("size=1m")  # room for config.yaml and the first sample grid, not for a checkpoint
    run = disk / "run"
    args = train_args(data, run, "train.max_steps=1")
    assert assert_error(run_cli(*args)) == (
        f"error: {run / 'checkpoints'}: no space left on device while writing step_00000001.pt; there is no "
        f"earlier checkpoint, so the run's files in {run} were removed")
    assert list(disk.iterdir()) == []
    remount(disk, "size=8m")
    code, _, err = run_cli(*args)  # the same command, once there is room: nothing is in its way
    assert code == 0, err


def test_files_left_out_of_a_domain_are_named(data, tmp_path):
    (data / "trainA" / "notes.txt").write_text("mine")
    (data / "trainA" / "broken.png").symlink_to(tmp_path / "gone.png")
    code, _, err = run_cli(*train_args(data, tmp_path / "run", "train.max_steps=1"))
    assert code == 0, err
    assert [line for line in err.splitlines() if line.startswith("warning:")] == [
        f"warning: {data / 'trainA'}: left out 2 files: broken.png (dangling link), notes.txt (not an image type)"]
    assert f"A = {data / 'trainA'} (6 images)" in err


def test_not_a_checkpoint(trained, tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(os.urandom(2048))
    assert_error(run_cli("translate", "--checkpoint", junk, "--input", trained["data"] / "testA",
                         "--output", tmp_path / "out"), junk, "not a readable unpaired checkpoint")
