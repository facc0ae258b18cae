"""The ``unpaired`` command line: train, translate, export, clusters, eval, demo, data, serve, study.

Every command reports bad input as one line ``error: <file or key>: <problem>`` on stderr and exits
non-zero; nothing is overwritten silently.
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import click

from unpaired.config import ConfigError, build_config

# Commands import the rest of the package (torch, PIL, tqdm...) inside their bodies, never here: `unpaired --help`
# and a mistyped option answer without loading torch.

# the adaptation variants, named here without importing torch (the CLI starts fast)
VARIANTS_CLI = ("source_only", "translated", "translated_self_ensembling", "self_ensembling", "ensemble",
                "ensemble_without_translation", "discriminator_head", "target_supervised")
DEFAULT_VARIANTS_CLI = ("source_only", "translated_self_ensembling", "self_ensembling", "ensemble",
                        "ensemble_without_translation", "discriminator_head", "target_supervised")

DEMO_OVERRIDES = ("model.dim=16", "train.batch_size=8")
"""The demo's changes to ``unit_digits``: small enough for ~1000 steps in its budget on a 2-core CPU without
AVX-512. Chosen on test digits 1000-1999 (the demo reports on the first 1000): at dim 16, batch 8 kept the class
+0.16 / +0.21 more often than the untranslated digits after 600 steps, batch 16 +0.21 / +0.21 at twice the time
per step (fp32, AVX2 kernels; bench/results/probes/demo_config/README.md)."""
DEMO_JUDGE_STEPS = 600
DEMO_SCORING_SECONDS = 20
"""Time kept back from the demo's training for reading 2 x 1000 translated test digits (a few seconds)."""

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _known_errors() -> tuple[type[BaseException], ...]:
    from unpaired.data import DataError
    from unpaired.training.checkpoint import CheckpointError
    from unpaired.training.trainer import NonFiniteLossError, RunFolderError

    return (ConfigError, DataError, CheckpointError, RunFolderError, NonFiniteLossError, FileNotFoundError)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="unpaired")
def cli() -> None:
    """Unpaired image-to-image translation: train a translator between two image collections
    (UNIT and more), watch it learn, and translate images with it.

    \b
    Typical use:
      unpaired train --method unit --data path/to/horse2zebra --out runs/h2z
      unpaired translate --checkpoint runs/h2z --input photos/ --output out/ --direction a2b
    """


@cli.command()
@click.option("--method", "method", default=None,
              help="Method to train (e.g. 'unit'). May be omitted when a --config file names it.")
@click.option("--data", "data", default=None,
              help="Training data: a folder holding trainA/ trainB/ (and testA/ testB/ for sample grids), or "
                   "'X:Y' where X and Y are digit-set names (mnist, usps, svhn) or image folders, e.g. "
                   "mnist:usps, or pairs:DIR[@0.8] for aligned A|B images (pix2pix layout) used unpaired. "
                   "Digit sets are read from $UNPAIRED_DATA. Methods that learn from one mixed collection (tunit) "
                   "take one folder of images or of sub-folders of images. Same as --set data.source=...")
@click.option("--out", "out", type=click.Path(path_type=Path), default=None,
              help="Run folder to create (must not exist or be empty). Gets config.yaml, checkpoints/, "
                   "samples/, metrics.jsonl and tensorboard/.")
@click.option("--config", "configs", multiple=True,
              help="YAML config file, or the name of a shipped one (unit_digits, unit_street256). "
                   "Repeatable; later files override earlier ones.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override one config key, e.g. --set train.max_steps=2000 --set model.gan_type=nsgan. "
                   "Repeatable; applied after the config files.")
@click.option("--resume", "resume", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Continue the run in this folder from its latest checkpoint (optimisers, schedule, step "
                   "and random state included). --set may change e.g. train.max_steps; --method and --data may "
                   "be given if they are the run's own.")
def train(method: str | None, data: str | None, out: Path | None, configs: tuple[str, ...],
          overrides: tuple[str, ...], resume: Path | None) -> None:
    """Train a translation method; shows progress, writes sample grids and checkpoints."""
    from unpaired.training.trainer import Trainer, config_for_resume

    if resume is not None:
        if configs:
            raise ConfigError(f"--config: --resume {resume} continues that run with its own config.yaml; drop "
                              "--config (use --set KEY=VALUE to change keys)")
        if out is not None and out.resolve() != resume.resolve():
            raise ConfigError("--out and --resume name different folders; --resume continues in place")
        cfg = config_for_resume(resume, list(overrides))
        # the user's first command with --resume added is fine: what it repeats must match the run
        if method and method != cfg.method:
            raise ConfigError(f"--method {method}: the run {resume} was trained with {cfg.method}; "
                              "--resume continues that run")
        if data and not _same_data(data, cfg.data.source):
            raise ConfigError(f"--data {data}: the run {resume} was trained on {cfg.data.source}; "
                              "--resume continues that run")
        run_dir = resume
    else:
        if out is None:
            raise ConfigError("--out RUN_DIR is required (the folder the run writes to)")
        cfg = build_config(method, list(configs), list(overrides) + ([f"data.source={data}"] if data else []))
        if not cfg.data.source:
            raise ConfigError("no training data: pass --data DIR_OR_SETS (or set data.source in a config)")
        run_dir = out
    trainer = Trainer(cfg, run_dir, resume=resume is not None)
    if trainer.world.is_main:
        click.echo(f"training {cfg.method} on {trainer.domains.description} for up to {cfg.train.max_steps} "
                   f"steps ({trainer.device}, {trainer.precision}, {trainer.world.size} process(es)) -> {run_dir}",
                   err=True)
    from unpaired.training.distributed import shutdown

    try:
        result = trainer.fit()
    finally:
        shutdown(trainer.world)
    if not trainer.world.is_main:
        return
    click.echo(f"stopped at step {result.step} ({result.stopped_by}) after {result.seconds:.0f} s, "
               f"{result.images_per_second:.1f} images/s")
    click.echo(f"checkpoint: {result.checkpoint}")
    if result.grid:
        click.echo(f"samples:    {result.grid}")


def _same_data(given: str, stored: str) -> bool:
    """Whether two --data specs name the same data: equal, or paths of the same existing file or folder."""
    return given == stored or (Path(given).exists() and Path(given).resolve() == Path(stored).resolve())


@cli.command()
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(path_type=Path, exists=True),
              help="Checkpoint file, or a run folder (its latest checkpoint is used), or a file written by "
                   "`unpaired export` (.onnx: needs onnxruntime; .pt TorchScript).")
@click.option("--input", "input_path", required=True, type=click.Path(path_type=Path, exists=True),
              help="An image file or a folder of images (PNG, JPEG, BMP, WebP) from the source domain.")
@click.option("--output", "output", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the translated images; each keeps its input file name.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="a2b translates domain A (trainA) images into domain B; b2a the reverse.")
@click.option("--size", type=int, default=None,
              help="Shorter side the input is resized to before translation (default: the training size).")
@click.option("--keep-size", is_flag=True, help="Resize each output back to its input's size.")
@click.option("--device", default="auto", show_default=True, help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
@click.option("--no-ema", is_flag=True, help="Use the live generator weights even if the run kept EMA weights.")
@click.option("--overwrite", is_flag=True, help="Replace files that already exist in --output.")
@click.option("--on-bad-image", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="What to do with an unreadable input image: stop, or report and skip it.")
@click.option("--styles", type=click.IntRange(min=1), default=None,
              help="Methods with a style space (e.g. MUNIT): K outputs per input in K random styles, the same K for "
                   "every input, written as NAME_s0.EXT ... NAME_s<K-1>.EXT.")
@click.option("--reference", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Methods with a style space: an example image of the target domain whose style the outputs take.")
@click.option("--interpolate", type=click.IntRange(min=2), default=None,
              help="Methods with a style space: per input, one strip of K images whose style moves between two "
                   "random styles, written as NAME_interp.png.")
@click.option("--interpolate-geometry", type=click.IntRange(min=2), default=None,
              help="Methods with landmark geometry (TransGaGa): per input, one strip of K images whose landmarks move "
                   "from the input's own to their translation, written as NAME_geometry.png.")
@click.option("--show-landmarks", is_flag=True,
              help="Methods with landmark geometry (TransGaGa): draw on each output the landmarks it was decoded from, "
                   "and write NAME_landmarks.png, the input with its own landmarks in the same colours.")
@click.option("--seed", type=int, default=None,
              help="Seed of the random styles (default: a fresh one per command, shared by every input).")
@click.option("--domain", type=click.IntRange(min=0), default=None,
              help="Methods that discover domains (TUNIT): translate into pseudo domain J, with its average style "
                   "(see `unpaired clusters RUN` for what each domain holds).")
def translate(checkpoint: Path, input_path: Path, output: Path, direction: str, size: int | None,
              keep_size: bool, device: str, no_ema: bool, overwrite: bool, on_bad_image: str, styles: int | None,
              reference: Path | None, interpolate: int | None, interpolate_geometry: int | None,
              show_landmarks: bool, seed: int | None, domain: int | None) -> None:
    """Translate images with a trained checkpoint."""
    from tqdm import tqdm

    from unpaired.data import DataError, list_images

    options = {name: value for name, value in (("styles", styles), ("reference", reference),
                                               ("interpolate", interpolate),
                                               ("interpolate_geometry", interpolate_geometry), ("seed", seed),
                                               ("domain", domain))
               if value is not None}
    from unpaired.export import is_exported

    if is_exported(checkpoint):
        translator = _exported_translator(checkpoint, direction, device, no_ema,
                                          {**options, **({"show_landmarks": True} if show_landmarks else {})})
    else:
        translator, options = _checkpoint_options(checkpoint, direction, device, no_ema, size, options)
    if show_landmarks:
        _check_landmarks(translator, interpolate_geometry)

    def names(path: Path) -> list[str]:
        extra = [f"{path.stem}_landmarks.png"] if show_landmarks else []
        if styles is not None:
            return [f"{path.stem}_s{k}{path.suffix}" for k in range(styles)] + extra
        if interpolate is not None:
            return [f"{path.stem}_interp.png", *extra]
        if interpolate_geometry is not None:
            return [f"{path.stem}_geometry.png", *extra]
        return [path.name, *extra]

    if input_path.is_dir():
        files, _ignored = list_images(input_path)
        if not files:
            raise DataError(f"{input_path}: no images (.png .jpg .jpeg .bmp .webp) in this folder")
    else:
        files = [input_path]
    output.mkdir(parents=True, exist_ok=True)
    clashes = [name for f in files for name in names(f) if (output / name).exists()]
    if clashes and not overwrite:
        raise DataError(f"{output}: already holds {len(clashes)} of the output files (e.g. {clashes[0]}); "
                        "pass --overwrite to replace them or choose another --output")
    written, skipped = 0, []
    for path in tqdm(files, desc=f"translate {direction}", unit="img", disable=len(files) < 2):
        try:
            images = translator.translate_image(path, direction, size=size, keep_size=keep_size, **options)
        except (OSError, SyntaxError, ValueError) as err:
            if on_bad_image == "fail":
                raise DataError(f"{path}: cannot translate this image ({err})") from err
            skipped.append(path.name)
            continue
        input_marked = []
        if show_landmarks:
            images, input_marked = _with_landmarks(translator, path, images, direction, size)
        if interpolate is not None or interpolate_geometry is not None:
            images = [_strip(images)]
        images += input_marked
        for image, name in zip(images, names(path), strict=False):
            image.save(output / name)
            written += 1
    click.echo(f"wrote {written} image(s) to {output}" + (f"; skipped {len(skipped)}: {', '.join(skipped)}"
                                                           if skipped else ""))


def _checkpoint_options(checkpoint: Path, direction: str, device: str, no_ema: bool, size: int | None,
                        options: dict) -> tuple:
    """The checkpoint's translator and the translate options checked against its method (a reference image read
    and prepared, one seed drawn for random styles)."""
    from unpaired.data import DataError
    from unpaired.inference import load

    translator = load(checkpoint, device=device, use_ema=not no_ema)
    translator.check_options(options)  # e.g. "method unit has no styles"
    if direction not in translator.method.directions:  # a one-sided model translates one way only
        raise ConfigError(f"{checkpoint}: this {translator.config.method} model is one-sided, it translates "
                          f"{', '.join(translator.method.directions)} only, not --direction {direction}")
    chosen = [f"--{name.replace('_', '-')}" for name in ("styles", "reference", "interpolate", "interpolate_geometry",
                                                         "domain") if name in options]
    if len(chosen) > 1:
        raise ConfigError(f"{' and '.join(chosen)} exclude each other; give one")
    if "seed" not in options and chosen and "seed" in translator.method.translate_options:
        import random

        options["seed"] = random.SystemRandom().randrange(2**31)  # one draw: every input gets the same styles
    if "reference" in options:
        from PIL import Image

        reference = options["reference"]
        try:
            with Image.open(reference) as opened:
                options["reference"] = translator.prepare(opened.copy(), direction, size, domain=direction[-1])
        except (OSError, SyntaxError, ValueError) as err:
            raise DataError(f"{reference}: cannot read this reference image ({err})") from err
    return translator, options


def _exported_translator(path: Path, direction: str, device: str, no_ema: bool, options: dict) -> object:
    """An exported file (``unpaired export``) ready to translate; its style and weights were fixed at export."""
    from unpaired.export import ExportedTranslator

    given = [f"--{name.replace('_', '-')}" for name in options] + (["--no-ema"] if no_ema else [])
    if given:
        raise ConfigError(f"{path}: an exported file has its style and weights fixed at export time; "
                          f"{', '.join(given)} cannot change them (export again, or use the run's checkpoint)")
    translator = ExportedTranslator(path, device="cpu" if device == "auto" else device)
    if direction != translator.direction:
        raise ConfigError(f"{path}: this exported file translates {translator.direction} only, not --direction "
                          f"{direction}")
    return translator


@cli.command("export")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(path_type=Path, exists=True),
              help="Checkpoint file, or a run folder (its latest checkpoint is used).")
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), required=True,
              help="torchscript: a .pt file for torch.jit.load; onnx: a .onnx file for onnxruntime (export needs "
                   "pip install 'unpaired[onnx]').")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="The one direction the file translates.")
@click.option("--out", "out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="File to write (default: RUN/export/<method>_<direction>.pt or .onnx).")
@click.option("--style", "seed", type=int, default=None,
              help="Methods with a style prior (MUNIT): bake in the style code drawn from this seed.")
@click.option("--reference", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Methods with a style space (MUNIT, TUNIT): bake in the style of this example image of the target "
                   "domain.")
@click.option("--domain", type=click.IntRange(min=0), default=None,
              help="Methods that discover domains (TUNIT): bake in the average style of pseudo domain J.")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Side of the example images the graph is traced with (default: the training size).")
@click.option("--no-ema", is_flag=True, help="Export the live generator weights even if the run kept EMA weights.")
@click.option("--overwrite", is_flag=True, help="Replace --out if it exists.")
def export_command(checkpoint: Path, fmt: str, direction: str, out: Path | None, seed: int | None,
                   reference: Path | None, domain: int | None, size: int | None, no_ema: bool, overwrite: bool) -> None:
    """Write one direction of a trained model as one self-contained file (TorchScript or ONNX) that runs without
    unpaired: input float32 N x C x H x W in [-1, 1], output the same (see README, Export)."""
    from unpaired.export import SUFFIXES, export
    from unpaired.inference import load

    translator = load(checkpoint, device="cpu", use_ema=not no_ema)
    if out is None:
        run_dir = checkpoint if checkpoint.is_dir() else checkpoint.parent.parent
        out = run_dir / "export" / f"{translator.config.method}_{direction}{SUFFIXES[fmt]}"
    if out.exists() and not overwrite:
        raise ConfigError(f"{out}: exists; pass --overwrite to replace it or choose another --out")
    result = export(translator, out, fmt, direction, seed=seed, reference=reference, domain=domain, size=size)
    meta = result.metadata
    shapes = "any batch and image size" if meta["dynamic"] else f"{meta['height']}x{meta['width']} images only"
    click.echo(f"wrote {out}: {meta['method']} {direction} (step {meta['step']}, "
               f"{'EMA' if meta['uses_ema'] else 'live'} weights, style: {meta['style']}), {shapes} "
               f"(sides multiples of {meta['size_multiple']}); max |exported - eager| = {result.max_difference:.1e}")


def _check_landmarks(translator: object, interpolate_geometry: int | None) -> None:
    """--show-landmarks needs a model with landmark geometry, and one set of landmarks per output."""
    from unpaired.methods.base import LandmarkGeometry, require

    require(translator.method, LandmarkGeometry, "--show-landmarks")  # type: ignore[attr-defined]
    if interpolate_geometry is not None:
        raise ConfigError("--show-landmarks draws one set of landmarks on every output; the frames of "
                          "--interpolate-geometry each have their own: give one of the two")


def _with_landmarks(translator: object, path: Path, images: list, direction: str,
                    size: int | None) -> tuple[list, list]:
    """The outputs with the landmarks they were decoded from drawn on them, and [the input with its own]."""
    from unpaired.images import draw_landmarks

    source, translated, prepared = translator.landmark_points(path, direction, size)  # type: ignore[attr-defined]
    return [draw_landmarks(image, translated) for image in images], [draw_landmarks(prepared, source)]


def _strip(images: list) -> object:
    """PIL images side by side, left to right."""
    from PIL import Image

    strip = Image.new(images[0].mode, (sum(i.width for i in images), max(i.height for i in images)))
    left = 0
    for image in images:
        strip.paste(image, (left, 0))
        left += image.width
    return strip


@cli.command()
@click.option("--out", "out", type=click.Path(path_type=Path), default=Path("runs/demo"), show_default=True,
              help="Run folder; if it exists, a numbered sibling (runs/demo-2, ...) is used instead.")
@click.option("--minutes", type=click.FloatRange(min=0, min_open=True), default=8.0, show_default=True,
              help="Budget of the whole demo: judges, training and scoring; training gets what the judges leave.")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Extra config overrides.")
@click.option("--judge-steps", type=click.IntRange(min=0), default=DEMO_JUDGE_STEPS, show_default=True,
              help="Training steps of the digit classifiers that score the translations (0: no scoring).")
def demo(out: Path, minutes: float, overrides: tuple[str, ...], judge_steps: int) -> None:
    """Train UNIT between MNIST and USPS digits within a time budget and score how well it translates.

    \b
    1. two digit judges learn MNIST and USPS from their labels (the translator never sees a label);
    2. UNIT trains for the time that is left, with the network and batch of DEMO_OVERRIDES (small enough that
       a 2-core CPU without AVX-512 gets through about a thousand steps); the bar counts the steps that fit;
    3. the judges score the share of test digits whose translation keeps its class, against doing nothing.
    """
    from unpaired.data import DataError, data_root, missing_files
    from unpaired.devices import cpu_name
    from unpaired.io import atomic_json
    from unpaired.training.trainer import Trainer

    root = data_root()
    missing = missing_files("mnist", root) + missing_files("usps", root)
    if missing:
        raise DataError(f"the demo needs MNIST and USPS in their original files under {root} (the data root: set "
                        "UNPAIRED_DATA to change it). Missing:\n" + "\n".join(f"  {m}" for m in missing) +
                        "\n  With internet access, `unpaired data download mnist usps` fetches them.")
    run_dir = _free_run_dir(out)
    started = time.perf_counter()
    sets = ["data.source=mnist:usps", *DEMO_OVERRIDES, *overrides]
    cfg = build_config("unit", ["unit_digits"], sets)  # checked before the judges spend any time
    click.echo(f"demo: UNIT between MNIST and USPS digits in {minutes:g} min on {cpu_name()} -> {run_dir}", err=True)
    judges = None
    if judge_steps > 0:
        from unpaired.metrics.digits import train_digit_judges

        click.echo("demo 1/3: digit judges learn real MNIST and USPS from their labels (they only score)", err=True)
        channels = cfg.data.channels or 1  # MNIST and USPS are gray
        judges = train_digit_judges(root, cfg.data.image_size, {"a": channels, "b": channels}, steps=judge_steps)
    left = minutes * 60 - (time.perf_counter() - started) - (DEMO_SCORING_SECONDS if judges else 0)
    if left <= 0:
        raise ConfigError(f"--minutes {minutes:g}: the judges took {time.perf_counter() - started:.0f} s and leave "
                          "no time to train; give more minutes or fewer --judge-steps")
    cfg = build_config("unit", ["unit_digits"], [*sets, f"train.max_minutes={left / 60:.3g}"])
    trainer = Trainer(cfg, run_dir)
    click.echo(f"demo 2/3: UNIT trains for {left / 60:.1f} min ({', '.join([*DEMO_OVERRIDES, *overrides])}, "
               f"{trainer.precision}); the bar counts the steps that fit at the speed measured", err=True)
    result = trainer.fit()
    click.echo(f"          {result.step} steps, {result.seconds / max(result.step, 1):.2f} s/step, "
               f"{result.images_per_second:.0f} images/s", err=True)
    scores = None
    if judges is not None:
        from unpaired.inference import load
        from unpaired.metrics.digits import score_digit_translation

        click.echo("demo 3/3: the judges read 1000 translated test digits each way", err=True)
        scores = score_digit_translation(load(result.checkpoint, device="cpu"), root, judges=judges)
        atomic_json(run_dir / "demo_scores.json", {**scores, "steps": result.step, "batch_size": cfg.train.batch_size,
                                                   "precision": trainer.precision, "cpu": cpu_name(),
                                                   "seconds": round(time.perf_counter() - started, 1)})
    click.echo(f"\ndemo finished in {time.perf_counter() - started:.0f} s: {result.step} steps of batch "
               f"{cfg.train.batch_size}, {result.images_per_second:.0f} images/s ({trainer.precision})")
    if scores is not None:
        click.echo(f"  class kept by translation (judges trained on real digits, test accuracy MNIST "
                   f"{scores['judge_accuracy_mnist']:.3f}, USPS {scores['judge_accuracy_usps']:.3f}):\n"
                   f"    MNIST -> USPS {scores['kept_mnist_to_usps']:.3f} "
                   f"(untranslated MNIST digits: {scores['untranslated_mnist_to_usps']:.3f}), "
                   f"USPS -> MNIST {scores['kept_usps_to_mnist']:.3f} "
                   f"(untranslated: {scores['untranslated_usps_to_mnist']:.3f})   ({run_dir / 'demo_scores.json'})")
    click.echo(f"  sample grid (rows x_a, x_ab, x_aba, x_b, x_ba, x_bab): {result.grid}")
    click.echo(f"  checkpoint:  {result.checkpoint}")
    click.echo(f"  loss log:    {run_dir / 'metrics.jsonl'}   (tensorboard --logdir {run_dir / 'tensorboard'})")
    click.echo(f"  translate:   unpaired translate --checkpoint {run_dir} --input DIGITS/ --output OUT/ "
               "--direction a2b")


def _free_run_dir(out: Path) -> Path:
    """``out``, or its first numbered sibling (out-2, out-3, ...) that is not a non-empty folder or a file."""
    run_dir, n = out, 2
    while run_dir.is_file() or (run_dir.is_dir() and any(run_dir.iterdir())):
        run_dir = out.with_name(f"{out.name}-{n}")
        n += 1
    return run_dir


@cli.group("eval")
def eval_group() -> None:
    """Score trained checkpoints."""


@eval_group.command("paired")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(path_type=Path, exists=True),
              help="Checkpoint file, or a run folder (its latest checkpoint is used).")
@click.option("--data", "data", required=True,
              help="Aligned pairs (pix2pix layout: A on the left half, B on the right): a folder (every image), "
                   "or pairs:DIR[@0.8] for the hold-out part that training on the same spec left out.")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="a2b translates the left halves and compares with the right ones; b2a the reverse.")
@click.option("--size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Evaluation size: the source half is translated at SIZE x SIZE and the ground truth resized to it.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Score only the first N images.")
@click.option("--deltas", default="5,10,20", show_default=True,
              help="Pixel-accuracy thresholds on the 0-255 scale, comma-separated (the GcGAN paper reports 5).")
@click.option("--gt-resize", type=click.Choice(["linear", "area"]), default="linear", show_default=True,
              help="How the ground truth is resized: bilinear without antialiasing (the GcGAN script) or box "
                   "average (better far below 256 px).")
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for report.json, report.md, per_image.csv and examples.png (default: print only).")
@click.option("--overwrite", is_flag=True, help="Replace report files that already exist in --out.")
@click.option("--device", default="auto", show_default=True, help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
@click.option("--no-ema", is_flag=True, help="Use the live generator weights even if the run kept EMA weights.")
def eval_paired(checkpoint: Path, data: str, direction: str, size: int, limit: int | None, deltas: str,
                gt_resize: str, out: Path | None, overwrite: bool, device: str, no_ema: bool) -> None:
    """RMSE and pixel accuracy of translations against aligned ground truth (GcGAN's maps protocol)."""
    from unpaired.data import data_root
    from unpaired.data.paired import pair_files
    from unpaired.inference import load
    from unpaired.metrics.paired import check_outputs, evaluate_pairs, parse_deltas, write_report

    thresholds = parse_deltas(deltas)
    if out is not None:
        check_outputs(out, overwrite)  # before the work, not after
    folder, indices, described = pair_files(data, data_root())
    translator = load(checkpoint, device=device, use_ema=not no_ema)
    if direction not in translator.method.directions:
        raise ConfigError(f"{checkpoint}: this {translator.config.method} model is one-sided, it translates "
                          f"{', '.join(translator.method.directions)} only, not --direction {direction}")
    report = evaluate_pairs(translator, folder, direction, size, indices, thresholds, gt_resize, limit,
                            data=described, checkpoint=checkpoint, progress=True)
    h, w = report.size
    click.echo(f"{report.method} step {report.step}, {direction}, {len(report.rows)} images of {described} "
               f"at {w}x{h} (ground truth: {gt_resize})\n{report.table()}")
    if out is not None:
        for path in write_report(report, out, overwrite).values():
            click.echo(f"wrote {path}")


def _inception_options(command: Callable) -> Callable:
    """The options of the Inception-based scores, shared by `eval fid` and `eval translation`."""
    options = [
        click.option("--inception-weights", type=click.Path(path_type=Path, dir_okay=False), default=None,
                     help="The FID Inception weights (pt_inception-2015-12-05-6726825d.pth of pytorch-fid, or "
                          "torch-fidelity's weights-inception-2015-12-05-6726825d.pth). Default: that file in "
                          "$UNPAIRED_HOME/weights (~/.cache/unpaired/weights). Never downloaded."),
        click.option("--kid-subset-size", type=click.IntRange(min=2), default=1000, show_default=True,
                     help="Images per KID subset (lowered to the smaller set, and said so, when a set is smaller)."),
        click.option("--kid-subsets", type=click.IntRange(min=1), default=100, show_default=True,
                     help="KID subsets averaged."),
        click.option("--isc-splits", type=click.IntRange(min=1), default=10, show_default=True,
                     help="Inception Score splits."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                     help="Images per Inception forward pass."),
        click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), default=None,
                     help="Folder for report.json and report.md (default: print only)."),
        click.option("--overwrite", is_flag=True, help="Replace report files that already exist in --out."),
        click.option("--device", default="auto", show_default=True, help="'auto', 'cpu', 'cuda' or 'cuda:N'."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _inception_settings(inception_weights: Path | None, kid_subset_size: int, kid_subsets: int, isc_splits: int,
                        batch_size: int, out: Path | None, overwrite: bool, device: str) -> tuple:
    """(network, weights file, Settings), after refusing report files that --out already holds."""
    from unpaired.devices import resolve_device
    from unpaired.metrics.fidelity import Settings, check_report_folder
    from unpaired.metrics.inception import find_weights, load_inception

    if out is not None:
        check_report_folder(out, overwrite)  # before the work, not after
    weights = find_weights(inception_weights)
    net = load_inception(weights, resolve_device(device))
    return net, weights, Settings(kid_subset_size=kid_subset_size, kid_subsets=kid_subsets, isc_splits=isc_splits,
                                  batch_size=batch_size)


def _show_report(report: dict, out: Path | None, overwrite: bool) -> None:
    from unpaired.metrics.fidelity import markdown, write_report

    click.echo(markdown(report))
    if out is not None:
        for path in write_report(report, out, overwrite):
            click.echo(f"wrote {path}")


@eval_group.command("fid")
@click.option("--real", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder of real images (their features are cached in $UNPAIRED_HOME/cache/inception).")
@click.option("--fake", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder of generated images.")
@_inception_options
def eval_fid(real: Path, fake: Path, inception_weights: Path | None, kid_subset_size: int, kid_subsets: int,
             isc_splits: int, batch_size: int, out: Path | None, overwrite: bool, device: str) -> None:
    """FID, KID and IS of a folder of generated images against a folder of real ones, computed as torch-fidelity
    and the papers compute them (the FID Inception network; see README, Metrics)."""
    from unpaired.metrics.fidelity import features_of_files, fid_report, files_of

    net, weights, settings = _inception_settings(inception_weights, kid_subset_size, kid_subsets, isc_splits,
                                                 batch_size, out, overwrite, device)
    real_files, fake_files = files_of(real), files_of(fake)
    real_features = features_of_files(net, real_files, weights, batch_size, desc="inception real")
    fake_features = features_of_files(net, fake_files, weights, batch_size, desc="inception fake", cache=False)
    _show_report(fid_report("FID, KID, IS", str(real), str(fake), real_features, fake_features, settings, weights),
                 out, overwrite)


@eval_group.command("translation")
@click.option("--checkpoint", "checkpoint", required=True, type=click.Path(path_type=Path, exists=True),
              help="Checkpoint file, or a run folder (its latest checkpoint), or a file written by `unpaired export`.")
@click.option("--data", "data", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder with testA/ and testB/: the source test split is translated and scored against the "
                   "target's; images of the same name in both are also scored as pairs (RMSE, pixel accuracy).")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="a2b translates testA and scores it against testB; b2a the reverse.")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Shorter side the inputs are translated at (default: the training size).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Translate only the first N test images.")
@click.option("--no-ema", is_flag=True, help="Use the live generator weights even if the run kept EMA weights.")
@click.option("--diversity", type=click.IntRange(min=2), default=None,
              help="Methods with a style prior (MUNIT): also the mean pairwise distance of K styles per input.")
@click.option("--vgg-weights", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="With --lpips-weights: the diversity is LPIPS v0.1 (torchvision-layout VGG16 state dict).")
@click.option("--lpips-weights", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="LPIPS v0.1's VGG channel weights (weights/v0.1/vgg.pth of the lpips package); without them the "
                   "diversity is the pixel L1 fallback, and the report says which.")
@_inception_options
def eval_translation(checkpoint: Path, data: Path, direction: str, size: int | None, limit: int | None, no_ema: bool,
                     diversity: int | None, vgg_weights: Path | None, lpips_weights: Path | None,
                     inception_weights: Path | None, kid_subset_size: int, kid_subsets: int, isc_splits: int,
                     batch_size: int, out: Path | None, overwrite: bool, device: str) -> None:
    """Translate the test split of --data and score it against the target test split: FID, KID, IS, and the
    paired metrics when pairs exist. Methods that draw styles (MUNIT) draw one per image from seed 0."""
    from unpaired.export import is_exported
    from unpaired.metrics.translation import evaluate_translation

    net, weights, settings = _inception_settings(inception_weights, kid_subset_size, kid_subsets, isc_splits,
                                                 batch_size, out, overwrite, device)
    if is_exported(checkpoint):
        translator = _exported_translator(checkpoint, direction, device, no_ema, {})
    else:
        translator, _ = _checkpoint_options(checkpoint, direction, device, no_ema, size, {})
        if translator.method.single_domain:
            raise ConfigError(f"{checkpoint}: a {translator.config.method} model translates within one collection "
                              "towards a reference; export it with --reference IMG and evaluate the exported file")
    options = None
    if diversity is not None:
        from unpaired.methods.base import StylePrior, require

        if (vgg_weights is None) != (lpips_weights is None):
            raise ConfigError("LPIPS needs both --vgg-weights and --lpips-weights (or neither: the pixel L1 fallback)")
        require(getattr(translator, "method", translator), StylePrior, "--diversity")
        options = {"k": diversity, "vgg_weights": vgg_weights, "lpips_weights": lpips_weights}
    report = evaluate_translation(translator, net, weights, data, direction, settings, size, limit, options)
    report["checkpoint"] = str(checkpoint)
    _show_report(report, out, overwrite)


@eval_group.command("adaptation")
@click.option("--source", default="mnist", show_default=True,
              help="Labelled source domain: mnist, usps, svhn, an .h5 file in the USPS layout, or a folder with "
                   "train/<class>/ and test/<class>/ image folders. Only its labels train the classifiers.")
@click.option("--target", default="usps", show_default=True,
              help="Target domain, same forms as --source. Its labels only score the test set (and train the "
                   "target_supervised upper-limit row).")
@click.option("--method", default="unit", show_default=True, help="Translator method.")
@click.option("--config", "config", default=None,
              help="Translator config (default: METHOD_adaptation where shipped, as for unit, else METHOD_digits).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Translator config overrides.")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder for translator/, report.json, report.md and examples.png. Running again into the same "
                   "folder reuses a finished translator and resumes a killed one.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the translator, the classifiers and the validation split.")
@click.option("--size", "image_size", type=click.IntRange(min=8), default=28, show_default=True,
              help="Image side (CoGAN/UNIT use 28 for MNIST<->USPS).")
@click.option("--translator-minutes", type=float, default=20.0, show_default=True,
              help="Translator training budget (0: steps only).")
@click.option("--translator-steps", type=click.IntRange(min=1), default=None,
              help="Translator training steps (default: the config's; whichever of steps and minutes ends first).")
@click.option("--classifier-steps", type=click.IntRange(min=1), default=6000, show_default=True,
              help="Training steps of each classifier row.")
@click.option("--variants", default=None,
              help="Classifier rows, comma-separated, from: " + ", ".join(VARIANTS_CLI) + " (default: "
                   + ",".join(DEFAULT_VARIANTS_CLI) + "; for a method that translates by an optimisation per image, "
                   "as cogan: source_only,discriminator_head,target_supervised).")
@click.option("--fid-steps", type=click.IntRange(min=0), default=None,
              help="Training steps of the digit feature network for the digit FID (0: no FID; default 1000, or 0 "
                   "for a method that translates by an optimisation per image).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use only the first N images of each split.")
@click.option("--precision", type=click.Choice(["auto", "fp32", "bf16"]), default="auto", show_default=True,
              help="Arithmetic of the translator and the classifiers (auto: bf16 where the CPU or GPU has it).")
@click.option("--device", default="auto", show_default=True, help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
def eval_adaptation(source: str, target: str, method: str, config: str | None, overrides: tuple[str, ...], out: Path,
                    seed: int, image_size: int, translator_minutes: float, translator_steps: int | None,
                    classifier_steps: int, variants: str | None, fid_steps: int | None, limit: int | None,
                    precision: str, device: str) -> None:
    """UNIT's domain-adaptation protocol: target test accuracy of classifiers trained with source labels only,
    helped by translation, next to the no-adaptation and target-supervised rows."""
    from unpaired.metrics.adaptation import AdaptationSettings, default_rows, markdown_report, run_adaptation

    rows, default_fid_steps = default_rows(method)
    variants = variants or ",".join(rows)
    fid_steps = default_fid_steps if fid_steps is None else fid_steps
    settings = AdaptationSettings(
        source=source, target=target, method=method, config=config, overrides=list(overrides),
        image_size=image_size, translator_steps=translator_steps, translator_minutes=translator_minutes or None,
        classifier_steps=classifier_steps, variants=[v.strip() for v in variants.split(",") if v.strip()],
        seed=seed, precision=precision, limit=limit, fid_steps=fid_steps)
    settings.check()
    report = run_adaptation(settings, out, device=device)
    click.echo(markdown_report(report).split("\n\nData:")[0])
    click.echo(f"\nwrote {out / 'report.json'}, {out / 'report.md'}")


@cli.group()
def data() -> None:
    """Inspect, check and download data sets."""


@data.command("check")
@click.argument("spec")
@click.option("--split", type=click.Choice(["train", "test"]), default="train", show_default=True,
              help="Which split to check: trainA/ trainB/ or testA/ testB/ (digit sets: their own split).")
def data_check(spec: str, split: str) -> None:
    """Decode every image of SPEC (a folder with trainA/trainB, or X:Y) and report unreadable files."""
    from unpaired.data import FolderSource, open_domains

    pair = open_domains(spec, split, image_size=1, channels=None, on_bad_image="skip")
    problems = []
    for side in (pair.a, pair.b):
        click.echo(f"{side.name}: {len(side)} images")
        if isinstance(side, FolderSource):
            problems += list(side.skipped) + [f"{p}: {why}" for p, why in side.check(progress=True)]
    for problem in problems:
        click.echo(f"  bad: {problem}")
    if problems:
        raise SystemExit(EXIT_ERROR)


@data.command("download")
@click.argument("names", nargs=-1, required=True)
@click.option("--root", type=click.Path(path_type=Path), default=None,
              help="Data root (default: $UNPAIRED_DATA or the user cache folder).")
def data_download(names: tuple[str, ...], root: Path | None) -> None:
    """Download digit sets (mnist, usps, svhn) from their official sources, verifying checksums."""
    from unpaired.data import data_root, download

    for name in names:
        for path in download(name, root or data_root()):
            click.echo(str(path))


@data.group("make")
def data_make() -> None:
    """Build a benchmark data set from the digit files in $UNPAIRED_DATA."""


@data_make.command("warped-digits")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="Folder to write trainA/ trainB/ testA/ testB/, labels.csv and warped_digits.json into.")
@click.option("--size", type=click.IntRange(min=28), default=32, show_default=True, help="Image side in pixels.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Write only the first N digits of each folder.")
def data_make_warped_digits(out: Path, size: int, limit: int | None) -> None:
    """MNIST halves with a large known shape change: A = digits as they are, B = other digits bent, rotated by 40
    degrees and restyled; testB/NAME is the true B version of testA/NAME (see unpaired.data.warped_digits)."""
    from unpaired.data import data_root
    from unpaired.data.warped_digits import write_warped_digits

    counts = write_warped_digits(out, data_root(), size, limit)
    click.echo(", ".join(f"{name}: {n}" for name, n in counts.items()) + f" images written to {out}")


@cli.command("clusters")
@click.argument("run", type=click.Path(path_type=Path, exists=True))
@click.option("--data", "data", default=None,
              help="The collection to assign (default: the run's own data.source).")
@click.option("--out", "out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for domains.png, styles_pca.png and clusters.json (default: RUN/clusters).")
@click.option("--per-domain", type=click.IntRange(min=1), default=8, show_default=True,
              help="Representative images per pseudo domain in domains.png (the most confidently assigned).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Assign only the first N images.")
@click.option("--score-folders", is_flag=True,
              help="Also score the assignment against the sub-folder names of the collection (majority mapping, "
                   "as the TUNIT paper); the names are read for this score only.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier report in --out.")
@click.option("--device", default="auto", show_default=True, help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
@click.option("--no-ema", is_flag=True, help="Use the live weights even if the run kept EMA weights.")
def clusters(run: Path, data: str | None, out: Path | None, per_domain: int, limit: int | None, score_folders: bool,
             overwrite: bool, device: str, no_ema: bool) -> None:
    """Show the domains a TUNIT run discovered: representative images per domain and a 2-D map of the style
    codes (RUN: a run folder or a checkpoint file)."""
    from unpaired.clusters import write_cluster_report
    from unpaired.data import open_collection
    from unpaired.inference import load
    from unpaired.methods.base import DiscoveredDomains, MissingCapabilityError, require
    from unpaired.training.checkpoint import CheckpointError

    translator = load(run, device=device, use_ema=not no_ema)
    try:
        require(translator.method, DiscoveredDomains, "`unpaired clusters`")
    except MissingCapabilityError as error:
        raise CheckpointError(f"{run}: a {translator.config.method} model: {error}") from None
    out = out or (run if run.is_dir() else run.parent.parent) / "clusters"
    written = [name for name in ("domains.png", "styles_pca.png", "clusters.json") if (out / name).exists()]
    if written and not overwrite:
        raise ConfigError(f"{out}: already holds {', '.join(written)}; pass --overwrite or choose another --out")
    cfg = translator.config.data
    collection = open_collection(data or cfg.source, "train", image_size=cfg.load_size or cfg.image_size,
                                 channels=translator.channels("a"), on_bad_image="skip",
                                 label_fraction=1.0 if score_folders else 0.0).a
    report = write_cluster_report(translator, collection, out, per_domain, limit, score_folders=score_folders,
                                  checkpoint=run)
    shares = ", ".join(f"{j}: {n}" for j, n in enumerate(report["counts"]) if n)
    click.echo(f"{report['images']} images in {sum(1 for n in report['counts'] if n)} of {report['k']} pseudo "
               f"domains ({shares})")
    if "folder_accuracy" in report:
        score = report["folder_accuracy"]
        click.echo(f"agreement with the sub-folder names (majority mapping): {score['accuracy']:.4f}")
    click.echo(f"wrote {out / 'domains.png'}, {out / 'styles_pca.png'}, {out / 'clusters.json'}")


WEB_MODULES = ("starlette", "uvicorn", "python_multipart")
"""What the web commands import: the ``unpaired[serve]`` extra."""


def _need_web_extra(command: str) -> None:
    """One clear error line when the web extra is not installed."""
    import importlib.util

    missing = [name for name in WEB_MODULES if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(f"`unpaired {command}` needs the web extra ({', '.join(missing)} not installed): "
                          "pip install 'unpaired[serve]'")


def _host_option(command: Callable) -> Callable:
    """--host and --port, shared by `serve` and `study serve`."""
    command = click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True,
                           help="TCP port to listen on.")(command)
    return click.option("--host", default="127.0.0.1", show_default=True,
                        help="Address to listen on: this machine only by default; 0.0.0.0 opens it to the network "
                             "(there is no login).")(command)


@cli.command("serve")
@click.option("--checkpoint", "checkpoints", required=True, multiple=True,
              type=click.Path(path_type=Path, exists=True),
              help="Checkpoint file or run folder to offer; repeat for several models.")
@_host_option
@click.option("--max-upload-mb", type=click.FloatRange(min=0.01), default=10.0, show_default=True,
              help="Largest upload (the request body), in MiB.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=25_000_000, show_default=True,
              help="Largest image in pixels (width x height, read before decoding; larger ones are refused as "
                   "decompression bombs).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Translations run at once (in threads, off the request loop).")
@click.option("--device", default="auto", show_default=True, help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
def serve(checkpoints: tuple[Path, ...], host: str, port: int, max_upload_mb: float, max_pixels: int, workers: int,
          device: str) -> None:
    """A web page to translate uploaded images with the given models (see README, Web page)."""
    _need_web_extra("serve")
    from unpaired.serve.translate_app import TranslateApp, load_models
    from unpaired.serve.uploads import UploadLimits
    from unpaired.serve.web import run_server

    limits = UploadLimits(max_bytes=round(max_upload_mb * 2**20), max_pixels=max_pixels)
    app = TranslateApp(load_models(list(checkpoints), device), limits, workers)
    run_server(app.app, host, port, lambda url: click.echo(f"serving {len(checkpoints)} model(s) on {url} "
                                                             "(Ctrl+C stops)", err=True))


@cli.group("study")
def study_group() -> None:
    """A blinded A/B study of several runs: create it, serve it to raters, report the preferences."""


@study_group.command("create")
@click.option("--runs", "runs", required=True, multiple=True, type=click.Path(path_type=Path, exists=True),
              help="Checkpoint files or run folders to compare; repeat the option or list them: --runs R1 R2.")
@click.argument("more_runs", nargs=-1, type=click.Path(path_type=Path, exists=True))
@click.option("--inputs", required=True, type=click.Path(path_type=Path, exists=True, file_okay=False),
              help="Folder of source-domain images; every run translates each of them.")
@click.option("--question", required=True, help="What raters answer, e.g. 'Which looks more like a zebra?'.")
@click.option("--out", required=True, type=click.Path(path_type=Path),
              help="Study folder to create (must not exist or be empty).")
@click.option("--raters", type=click.IntRange(min=1), default=10, show_default=True,
              help="Rater links to make (one token each; one vote per rater and pair).")
@click.option("--direction", type=click.Choice(["a2b", "b2a"]), default="a2b", show_default=True,
              help="Direction every run translates.")
@click.option("--size", type=click.IntRange(min=1), default=None,
              help="Shorter side the inputs are translated and shown at (default: the first run's training size).")
@click.option("--seed", type=int, default=None,
              help="Seed of the pairs' order and sides and of any random style (default: a fresh one, recorded).")
@click.option("--device", default="auto", show_default=True, help="'auto', 'cpu', 'cuda' or 'cuda:N'.")
def study_create(runs: tuple[Path, ...], more_runs: tuple[Path, ...], inputs: Path, question: str, out: Path,
                 raters: int, direction: str, size: int | None, seed: int | None, device: str) -> None:
    """Translate the inputs with every run and lay out the blinded pairs (every two runs per input, random order
    and sides) in a study folder; prints the results key once."""
    from unpaired.serve.study import create_study

    created = create_study([*runs, *more_runs], inputs, question, out, seed, raters, direction, size, device)
    click.echo(f"study {out}: {len(created.study.runs)} runs, {len(created.study.pairs)} pairs, {raters} rater "
               f"links (tokens in {out / 'raters.txt'})")
    click.echo(f"results key (shown once, only its hash is kept): {created.key}")


@study_group.command("serve")
@click.argument("study", type=click.Path(path_type=Path, exists=True, file_okay=False))
@_host_option
def study_serve(study: Path, host: str, port: int) -> None:
    """Serve the study to raters: one pair at a time, A / B / not sure; votes are kept in STUDY/votes.sqlite."""
    _need_web_extra("study serve")
    from unpaired.serve.study import Study
    from unpaired.serve.study_app import StudyApp
    from unpaired.serve.web import run_server

    opened = Study.open(study)
    raters = (study / "raters.txt").read_text().split()

    def announce(url: str) -> None:
        click.echo(f"study on {url} (Ctrl+C stops); rater links:", err=True)
        for token in raters:
            click.echo(f"  {url}r/{token}", err=True)
        click.echo(f"  results: {url}results (asks for the key)", err=True)

    run_server(StudyApp(opened).app, host, port, announce)


@study_group.command("report")
@click.argument("study", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Folder for report.md, report.png and report.json (default: STUDY/report; replaced each time).")
def study_report(study: Path, out: Path | None) -> None:
    """The preference table of the votes so far: each run's share of "better" against each other run, with 95 %
    Wilson intervals and the counts, as Markdown and a bar chart."""
    from unpaired.serve.study import Study, write_report

    opened = Study.open(study)
    paths = write_report(opened, out or study / "report")
    click.echo(paths["markdown"].read_text().split("\n\nRuns:")[0])
    click.echo(f"wrote {paths['markdown']}, {paths['chart']}, {paths['json']}")


def _one_line_data_warnings(show: Callable) -> Callable:
    """``warnings.showwarning`` that prints data problems the run works around (files left out) as one
    ``warning:`` line, and every other warning as ``show`` does."""

    def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: TextIO | None = None, line: str | None = None) -> None:
        from unpaired.data import DataWarning

        if issubclass(category, DataWarning):
            click.echo(f"warning: {message}", file=file, err=True)
        else:
            show(message, category, filename, lineno, file, line)

    return show_warning


def main() -> None:
    """Entry point: runs the CLI, turning known errors into one-line messages and exit codes."""
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_data_warnings(warnings.showwarning)
        try:
            cli(standalone_mode=False)
        except click.exceptions.Abort:
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted; the last checkpoint is kept (resume with --resume RUN_DIR)", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except _known_errors() as err:
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_ERROR)
        except ValueError as err:  # invalid option values found while building networks
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_ERROR)
        except OSError as err:
            if err.filename is None:  # no file to name: not a problem of the user's paths
                raise
            # a write the machine refused (read-only file system, full disk, no permission) that no command
            # turned into its own message: the path and the system's reason, in one line
            click.echo(f"error: {err.filename}: {err.strerror or err}", err=True)
            sys.exit(EXIT_ERROR)


if __name__ == "__main__":
    main()
