"""Typed run configuration: dataclass defaults, YAML files and dotted command-line overrides.

A run's configuration is one tree with five sections::

    method: unit
    model:        the method's own architecture options (a dataclass each method declares)
    loss_weights: one weight per named loss term of the method (0 switches a term off)
    optim:        optimiser and learning-rate schedule shared by every network group
    data:         where the images come from and how they are cropped
    train:        steps, batch size, seed, precision, logging and checkpoint cadence

Values are merged in this order: dataclass defaults (the method's paper/official defaults), then each
``--config`` YAML file, then each ``--set key=value``. OmegaConf checks every key and type, so a typo or
a wrong type fails loudly with the full key in the message.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

PACKAGED_CONFIGS = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message says which key and why."""


@dataclass
class DataConfig:
    source: str = ""
    """What to train on: a folder with trainA/ trainB/ (testA/ testB/), or 'X:Y' with digit-set names
    (mnist, usps, svhn) or image folders; see `unpaired train --help`."""
    image_size: int = 256
    """Side of the square crops fed to the networks."""
    load_size: int | None = None
    """Shorter image side after resizing, before cropping (None: equal to image_size)."""
    channels: int | None = None
    """1 or 3; None keeps digit sets' own channels and uses 3 for image folders."""
    flip: bool = True
    """Random horizontal flips while training (switch off for digits and text)."""
    on_bad_image: str = "fail"
    """'fail': stop at the first unreadable image, naming it; 'skip': report it and leave it out."""
    num_workers: int = 0
    """Background processes that decode images (0: decode in the training process)."""


@dataclass
class OptimConfig:
    """Adam for every network group, with a learning-rate schedule.

    Defaults are UNIT's official ones (mingyuliutw/UNIT configs): lr 1e-4, betas (0.5, 0.999),
    weight decay 1e-4, lr halved every 100k iterations.
    """

    lr: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    weight_decay: float = 1e-4
    lr_policy: str = "step"
    """'constant', 'step' (multiply by gamma every step_size steps) or 'linear' (to 0 from decay_start)."""
    step_size: int = 100_000
    gamma: float = 0.5
    decay_start: int = 0
    """'linear': the step from which the learning rate falls linearly to 0 at ``train.max_steps``."""
    decay_fraction: float | None = None
    """'linear': start the decay after this fraction of ``train.max_steps`` instead of at ``decay_start`` (0.5:
    CycleGAN's niter = niter_decay), so that a run given more or fewer steps keeps the shape of its schedule."""


@dataclass
class TrainConfig:
    max_steps: int = 1_000_000
    max_minutes: float | None = None
    """Stop (with a checkpoint) after this much wall time, whatever max_steps says."""
    batch_size: int = 1
    seed: int = 0
    device: str = "auto"
    """'auto' (CUDA when available), 'cpu', 'cuda' or 'cuda:N'."""
    precision: str = "fp32"
    """'fp32', 'bf16' (autocast; on CPUs with AVX-512 BF16 about 2-3x the training speed, see
    bench/results/train_speed.md) or 'auto' (bf16 on a GPU with bf16, or on a CPU with AVX-512 BF16 / AMX where one
    timed convolution ran >= 1.2x as fast as in fp32, else fp32; a resumed run keeps its first choice)."""
    channels_last: bool = False
    """Keep activations in NHWC memory layout (faster convolutions on CPU and on tensor cores)."""
    low_memory: bool = False
    """Return freed activation memory to the OS after every step (CPU, Linux): peak RSS stays flat
    instead of growing with heap fragmentation, at the cost of page faults (slower at small images)."""
    threads: int | None = None
    """torch intra-op threads (None: torch's default, one per core)."""
    ema_decay: float = 0.0
    """Exponential moving average of the inference networks (0: off); samples and export use it."""
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    num_samples: int = 8
    """Images per domain in the sample grids."""
    tensorboard: bool = True
    progress: bool = True


@dataclass
class RunConfig:
    method: str = ""
    model: Any = None
    loss_weights: Any = None
    optim: OptimConfig = field(default_factory=OptimConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


def _schema(method: str) -> DictConfig:
    from unpaired.methods import METHODS  # function-local: the CLI imports config at start-up; methods load torch

    cls = METHODS.get(method)
    return OmegaConf.structured(RunConfig(method=method, model=cls.Config(), loss_weights=cls.Weights()))


def find_config_file(name: str | Path) -> Path:
    """A YAML path as given, or the name of a config shipped with the package (e.g. 'unit_digits')."""
    path = Path(name)
    if path.is_file():
        return path
    packaged = PACKAGED_CONFIGS / f"{Path(name).stem}.yaml"
    if packaged.is_file() and path.suffix in ("", ".yaml"):
        return packaged
    shipped = ", ".join(sorted(p.stem for p in PACKAGED_CONFIGS.glob("*.yaml")))
    raise ConfigError(f"{name}: no such config file (shipped configs: {shipped})")


def _read_yaml(path: Path) -> DictConfig:
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:  # yaml.YAMLError and friends: report the file
        raise ConfigError(f"{path}: not valid YAML ({err})") from err
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return loaded


def _explain(err: OmegaConfBaseException, origin: str) -> ConfigError:
    key = getattr(err, "full_key", None)
    reason = str(err).splitlines()[0]
    where = f" (key '{key}')" if key else ""
    return ConfigError(f"{origin}{where}: {reason}")


def build_config(
    method: str | None = None,
    files: list[str | Path] = (),  # type: ignore[assignment]
    overrides: list[str] = (),  # type: ignore[assignment]
) -> DictConfig:
    """Resolve a run's configuration; see the module docstring for the merge order.

    `method` may be omitted when a config file names it; if both are given they must agree.
    """
    layers: list[tuple[str, DictConfig]] = [(str(p), _read_yaml(find_config_file(p))) for p in files]
    try:
        dotted = OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as err:
        raise _explain(err, "--set") from err
    layers.append(("--set", dotted))

    named = [(origin, layer.get("method")) for origin, layer in layers if layer.get("method")]
    for origin, name in named:
        if method and name != method:
            raise ConfigError(f"{origin}: config is for method '{name}', but --method is '{method}'")
        method = method or name
    if not method:
        raise ConfigError("no method given: pass --method NAME or a config file with a 'method:' key")

    try:
        cfg = _schema(method)
    except KeyError as err:
        raise ConfigError(str(err.args[0])) from err
    for origin, layer in layers:
        try:
            cfg = OmegaConf.merge(cfg, layer)
        except OmegaConfBaseException as err:
            raise _explain(err, origin) from err
    _validate(cfg)
    return cfg


def _validate(cfg: DictConfig) -> None:
    choices = {
        "optim.lr_policy": ("constant", "step", "linear"),
        "train.precision": ("fp32", "bf16", "auto"),
        "data.on_bad_image": ("fail", "skip"),
    }
    for key, allowed in choices.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            raise ConfigError(f"{key}={value!r} is not one of {', '.join(allowed)}")
    positive = ["train.batch_size", "data.image_size", "train.log_every", "train.sample_every",
                "train.checkpoint_every", "train.num_samples"]
    for key in positive:
        if OmegaConf.select(cfg, key) <= 0:
            raise ConfigError(f"{key} must be positive, got {OmegaConf.select(cfg, key)}")
    fraction = cfg.optim.decay_fraction
    if fraction is not None and not 0 <= fraction < 1:
        raise ConfigError(f"optim.decay_fraction must lie in [0, 1), got {fraction}")
    if fraction is not None and cfg.optim.decay_start:  # one of the two would be ignored without a word
        raise ConfigError(f"optim.decay_start={cfg.optim.decay_start} and optim.decay_fraction={fraction} both set "
                          "the start of the decay: set one, the other to 0 / null")
    if cfg.data.channels not in (None, 1, 3):
        raise ConfigError(f"data.channels must be 1, 3 or null, got {cfg.data.channels}")
    for name, weight in cfg.loss_weights.items():
        if weight < 0:
            raise ConfigError(f"loss_weights.{name} must be >= 0, got {weight}")


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``cfg`` with dotted ``--set`` overrides merged in, checked like a new configuration (resuming a run)."""
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except OmegaConfBaseException as err:
        raise _explain(err, "--set") from err
    _validate(cfg)
    return cfg


def config_from_dict(data: dict[str, Any], drop_removed: bool = False) -> DictConfig:
    """Rebuild a resolved configuration (e.g. stored in a checkpoint), validating it against the schema.

    With ``drop_removed`` (inference from a checkpoint an earlier version saved), keys of the ``model`` and
    ``loss_weights`` sections that the method no longer has are left out with a warning that names them: loss
    weights do not change inference, and a removed option that built other networks shows as weights that do not
    fit. Resuming a run keeps the strict check: the objective it trained with must be the one it goes on with.
    """
    if "method" not in data:
        raise ConfigError("stored configuration has no 'method' key")
    try:
        schema = _schema(data["method"])
        if drop_removed:
            data = _without_removed_options(data, schema)
        return OmegaConf.merge(schema, OmegaConf.create(data))
    except OmegaConfBaseException as err:
        raise _explain(err, "stored configuration") from err
    except KeyError as err:
        raise ConfigError(str(err.args[0])) from err


def _without_removed_options(data: dict[str, Any], schema: DictConfig) -> dict[str, Any]:
    kept = {section: {k: v for k, v in (data.get(section) or {}).items() if k in schema[section]}
            for section in ("model", "loss_weights")}
    removed = [f"{section}.{k}={v}" for section in kept for k, v in (data.get(section) or {}).items()
               if k not in kept[section]]
    if removed:
        warnings.warn(f"this checkpoint's method {data['method']} no longer has the options {', '.join(removed)} "
                      "(removed since the run was saved); loading without them", stacklevel=3)
    return {**data, **kept}


def to_dict(cfg: DictConfig) -> dict[str, Any]:
    """Plain nested dict of the configuration (what checkpoints and config.yaml store)."""
    return OmegaConf.to_container(cfg, resolve=True)  # type: ignore[return-value]


def to_object(cfg: DictConfig, section: str) -> Any:
    """One section as its dataclass instance, e.g. ``to_object(cfg, 'model')``."""
    return OmegaConf.to_object(cfg[section])


def weights_dict(cfg: DictConfig) -> dict[str, float]:
    return {k: float(v) for k, v in to_dict(cfg)["loss_weights"].items()}


def dataclass_fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
