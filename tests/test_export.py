"""``unpaired export``: every registered method, exported to TorchScript and to ONNX, gives eager mode's outputs
(within 1e-4, fp32) at the exported batch and image size and at others; the exported files run through
``unpaired translate``; and what an export or an exported file cannot do is refused in one line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_image_folders
from PIL import Image
from test_cli import assert_error, run_cli
from test_every_method import tiny_config

from unpaired.config import to_object, weights_dict
from unpaired.export import (
    METADATA_NAME,
    TOLERANCE,
    ExportedTranslator,
    ExportError,
    InferenceGraph,
    export,
    is_exported,
)
from unpaired.inference import Translator, load
from unpaired.methods import METHODS, build_method
from unpaired.methods.base import DiscoveredDomains, MissingCapabilityError, StylePrior, StyleSpace, has_capability
from unpaired.training.trainer import Trainer

try:
    import onnxruntime  # noqa: F401  (installed by the dev extra, as CI does)

    ONNX = True
except ImportError:
    ONNX = False
FORMATS = ["torchscript", pytest.param("onnx", marks=pytest.mark.skipif(not ONNX, reason="needs unpaired[onnx]"))]


def tiny_translator(name: str, channels: dict[str, int] | None = None) -> Translator:
    """A tiny, randomly initialised model of method ``name`` (16 px, width 8), ready for inference."""
    cfg = tiny_config(name, Path("unused"), 1)
    torch.manual_seed(0)
    method = build_method(name, to_object(cfg, "model"), weights_dict(cfg), channels or {"a": 3, "b": 3},
                          cfg.data.image_size)
    return Translator(method, cfg, torch.device("cpu"), 0, False)


def images(n: int, channels: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, channels, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("ref") / "reference.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", METHODS.names())
def test_every_method_exports_and_matches_eager_mode(tmp_path, reference, name, fmt):
    # gray -> RGB where the method allows domains of different channels (an identity loss does not)
    channels = {"a": 3, "b": 3} if METHODS.get(name).single_domain or name in {"cyclegan", "gcgan", "distancegan",
                                                                                 "template"} else {"a": 3, "b": 1}
    translator = tiny_translator(name, channels)
    method = translator.method
    direction = method.directions[0]
    if not method.exportable:  # it declares that its translation is no fixed graph: refused in one line
        with pytest.raises(ExportError, match=f"method {name} translates by an optimisation per image"):
            export(translator, tmp_path / f"model.{fmt}", fmt, direction)
        assert not (tmp_path / f"model.{fmt}").exists()
        return
    style = {"reference": reference} if has_capability(method, StyleSpace) else {}
    result = export(translator, tmp_path / f"model.{fmt}", fmt, direction, **style)
    assert is_exported(result.path) and result.max_difference <= TOLERANCE
    exported = ExportedTranslator(result.path)
    meta = exported.metadata
    assert meta["method"] == name and meta["direction"] == direction and meta["dynamic"], meta
    assert meta["in_channels"] == channels[direction[0]] and meta["out_channels"] == channels[direction[-1]]
    codes = None
    if style:
        codes = method.encode_style(direction[-1], translator.prepare(Image.open(reference), direction,
                                                                      domain=direction[-1]))
    for n, h, w in ((2, 16, 16), (1, 16, 16), (3, 24, 32)):  # the exported shape, then others (dynamic)
        x = images(n, channels[direction[0]], h, w)
        with torch.no_grad():
            expected = translator.translate(x, direction, **({"style": codes} if codes is not None else {}))
        got = exported.translate(x)
        assert got.shape == expected.shape == (n, channels[direction[-1]], h, w)
        assert (got - expected).abs().max() <= TOLERANCE, (n, h, w)


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_seed_bakes_in_the_prior_style_it_draws(tmp_path, fmt):
    translator = tiny_translator("munit", {"a": 3, "b": 1})
    result = export(translator, tmp_path / f"m.{fmt}", fmt, "b2a", seed=7)
    assert result.metadata["style"] == "seed 7" and result.metadata["in_channels"] == 1
    x = images(2, 1, 16, 16)
    expected = translator.translate(x, "b2a", seed=7)  # one code from the prior, drawn from seed 7
    assert (ExportedTranslator(result.path).translate(x) - expected).abs().max() <= TOLERANCE


def test_tunit_bakes_in_a_discovered_domain_average_style(tmp_path):
    translator = tiny_translator("tunit")
    method = translator.method
    method.domain_counts[1] = 4
    method.domain_styles[1] = torch.randn(method.domain_styles.shape[1])
    result = export(translator, tmp_path / "t.pt", "torchscript", domain=1)
    x = images(2, 3, 16, 16)
    assert (ExportedTranslator(result.path).translate(x) - translator.translate(x, domain=1)).abs().max() <= TOLERANCE


def test_the_exported_graph_is_pure_inference(tmp_path):
    """Frozen TorchScript: no parameter left to train, the discriminators and the b2a generator dropped."""
    translator = tiny_translator("cyclegan")
    result = export(translator, tmp_path / "c.pt", "torchscript", "a2b")
    assert not list(torch.jit.load(str(result.path)).parameters())  # frozen: weights are constants
    full = sum(p.numel() for p in translator.method.parameters())
    a2b = sum(p.numel() for p in translator.method.nets["gen"]["a2b"].parameters())
    assert result.path.stat().st_size < 4 * a2b + 65536 < 4 * full  # a2b's float32 weights and little else
    with zipfile.ZipFile(result.path) as archive:
        text = archive.read(next(n for n in archive.namelist() if n.endswith(f"extra/{METADATA_NAME}")))
    assert json.loads(text)["contract"].startswith("input x: float32 N x C x H x W in [-1, 1]")


def test_a_graph_that_fixes_its_shape_is_exported_static_and_refuses_other_sizes(tmp_path, monkeypatch):
    """A network whose traced graph does not generalise (here: the image height read as a constant) is exported at
    the example's shape only, says so in its metadata, and refuses other sizes in one line."""
    def fixed(self, x):
        return self.method.translate(x, self.direction) * 0 + x.new_tensor(float(x.shape[2])) / 100

    monkeypatch.setattr(InferenceGraph, "forward", fixed)
    translator = tiny_translator("template")
    result = export(translator, tmp_path / "s.pt", "torchscript")
    exported = ExportedTranslator(result.path)
    assert not exported.metadata["dynamic"]
    assert exported.translate(images(3, 3, 16, 16)).shape == (3, 3, 16, 16)
    with pytest.raises(ExportError, match=r"s\.pt: .* takes 16x16 images only .* got 24x32"):
        exported.translate(images(1, 3, 24, 32))


def test_export_refusals_name_the_problem(tmp_path, reference):
    with pytest.raises(ExportError, match=r"munit has a style space.*--reference IMG or --style SEED"):
        export(tiny_translator("munit"), tmp_path / "m.pt", "torchscript")
    with pytest.raises(MissingCapabilityError, match=r"cyclegan has no style space.*--style"):
        export(tiny_translator("cyclegan"), tmp_path / "c.pt", "torchscript", seed=1)
    with pytest.raises(MissingCapabilityError, match="tunit has no style prior"):
        export(tiny_translator("tunit"), tmp_path / "t.pt", "torchscript", seed=1)
    with pytest.raises(ExportError, match="--style and --reference exclude each other"):
        export(tiny_translator("munit"), tmp_path / "m.pt", "torchscript", seed=1, reference=reference)
    with pytest.raises(ExportError, match="translates a2b only, not b2a"):
        export(tiny_translator("template"), tmp_path / "t.pt", "torchscript", "b2a")
    with pytest.raises(ExportError, match="--format must be one of torchscript, onnx"):
        export(tiny_translator("template"), tmp_path / "t.x", "tflite")
    assert not list(tmp_path.iterdir())  # nothing written by a refused export
    assert has_capability(tiny_translator("tunit").method, DiscoveredDomains)
    assert not has_capability(tiny_translator("tunit").method, StylePrior)


def test_files_that_are_no_export_are_refused_in_one_line(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ExportError, match=r"model\.onnx: not a readable onnx file"):
        ExportedTranslator(bad)
    scripted = tmp_path / "plain.pt"
    torch.jit.save(torch.jit.trace(torch.nn.Identity(), torch.zeros(1)), str(scripted))
    assert not is_exported(scripted)
    with pytest.raises(ExportError, match=r"plain\.pt: no unpaired metadata"):
        ExportedTranslator(scripted)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A 2-step UNIT run with an EMA copy (decay 0.5: EMA and live weights differ)."""
    root = tmp_path_factory.mktemp("run")
    data = make_image_folders(root / "data")
    cfg = tiny_config("unit", data, 2, "train.checkpoint_every=1000")
    Trainer(cfg, root / "run").fit()
    return root / "run"


@pytest.mark.parametrize("fmt", FORMATS)
def test_cli_exports_ema_weights_and_translate_runs_the_file(run, tmp_path, fmt):
    code, out, err = run_cli("export", "--checkpoint", run, "--format", fmt, "--direction", "b2a")
    suffix = ".pt" if fmt == "torchscript" else ".onnx"
    path = run / "export" / f"unit_b2a{suffix}"
    assert code == 0, err
    assert str(path) in out and "EMA weights" in out and "any batch and image size" in out
    x = images(2, 3, 16, 16)
    exported = ExportedTranslator(path).translate(x)
    ema, live = load(run, device="cpu"), load(run, device="cpu", use_ema=False)
    assert (exported - ema.translate(x, "b2a")).abs().max() <= TOLERANCE
    assert (exported - live.translate(x, "b2a")).abs().max() > 1e-3  # the EMA weights, not the live ones

    inputs = make_image_folders(tmp_path / "in", {"testB": 2}) / "testB"
    for source, folder in ((path, "exported"), (run, "checkpoint")):
        code, _, err = run_cli("translate", "--checkpoint", source, "--input", inputs, "--output", tmp_path / folder,
                               "--direction", "b2a")
        assert code == 0, err
    for image in sorted((tmp_path / "checkpoint").iterdir()):
        a = np.asarray(Image.open(image), dtype=np.int16)
        b = np.asarray(Image.open(tmp_path / "exported" / image.name), dtype=np.int16)
        assert np.abs(a - b).max() <= 1, image.name  # the same translation, up to rounding to 0..255

    assert_error(run_cli("translate", "--checkpoint", path, "--input", inputs, "--output", tmp_path / "x"),
                 path, "translates b2a only, not --direction a2b")
    assert_error(run_cli("translate", "--checkpoint", path, "--input", inputs, "--output", tmp_path / "x",
                         "--direction", "b2a", "--styles", "2"), path, "--styles")
    assert_error(run_cli("export", "--checkpoint", run, "--format", fmt, "--direction", "b2a"), path, "exists")
    assert_error(run_cli("export", "--checkpoint", run, "--format", fmt, "--style", "3", "--out", tmp_path / "s"),
                 "unit has no style space")


@pytest.mark.skipif(not ONNX, reason="needs unpaired[onnx]")
def test_the_readme_snippet_runs_an_onnx_file_without_torch_or_unpaired(tmp_path):
    """The README's Export example, run in a process where torch and unpaired cannot be imported, gives the
    translation ExportedTranslator gives (up to rounding to 0..255)."""
    import re
    import subprocess
    import sys

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("## Export", 1)[1].split("\n## ", 1)[0]
    snippet = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = export(tiny_translator("cyclegan"), tmp_path / "unit_a2b.onnx", "onnx").path
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "horse.png")
    blocked = "import sys\nsys.modules['torch'] = None\nsys.modules['unpaired'] = None\n"
    subprocess.run([sys.executable, "-c", blocked + snippet.replace("(256, 256)", "(16, 16)")], cwd=tmp_path,
                   check=True, timeout=120)
    x = torch.from_numpy(np.asarray(Image.open(tmp_path / "horse.png").convert("RGB").resize((16, 16)), np.float32))
    expected = ExportedTranslator(path).translate(x.permute(2, 0, 1)[None] / 127.5 - 1)[0]
    expected = ((expected.permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).round().numpy()
    got = np.asarray(Image.open(tmp_path / "zebra.png"), dtype=np.float32)
    assert np.abs(got - expected).max() <= 1
