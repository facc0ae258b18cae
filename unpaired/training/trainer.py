"""The one training loop every method shares.

Per step: ``method.forward_step(batch)`` once, then for each network group in order: only that group's
parameters require gradients, ``method.loss_terms(group, step)`` gives raw terms, the trainer weighs
them with ``loss_weights``, checks they are finite, backpropagates and steps the group's optimiser and
schedule. The trainer also owns devices, bf16 autocast, channels_last, EMA, logging, sample grids,
checkpoints and exact resume; it knows no method by name.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn
from tqdm import tqdm

from unpaired.config import ConfigError, apply_overrides, config_from_dict, to_dict, to_object, weights_dict
from unpaired.data import open_collection, open_domains
from unpaired.devices import resolve_device, resolve_precision
from unpaired.images import image_grid, save_grid
from unpaired.io import atomic_write
from unpaired.methods import METHODS, Method, build_method
from unpaired.training.batches import StepBatches, fixed_batch, iterate_steps, mix_seed
from unpaired.training.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    restore_rng,
    rng_state,
    write_run_checkpoint,
)
from unpaired.training.distributed import (
    any_process,
    average_gradients,
    broadcast_module,
    gather_objects,
    init_world,
    wait_for_all,
)
from unpaired.training.logging import MetricsLog
from unpaired.training.memory import fix_malloc_mmap_threshold

RUN_FILES = ("config.yaml", "metrics.jsonl", "samples", "tensorboard", "checkpoints")
"""What a run writes into its folder."""


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or infinite; the message names the step and the term."""


class RunFolderError(FileExistsError):
    """The output folder holds an earlier run and --resume was not given."""


def lr_multiplier(cfg: DictConfig) -> Any:
    """The schedule as a function of the step, for ``LambdaLR`` (rebuilt from the config on resume)."""
    optim, total = cfg.optim, cfg.train.max_steps
    if optim.lr_policy == "constant":
        return lambda step: 1.0
    if optim.lr_policy == "step":
        return lambda step: optim.gamma ** (step // optim.step_size)
    start = optim.decay_start if optim.decay_fraction is None else int(optim.decay_fraction * total)
    span = max(1, total - start)
    return lambda step: 1.0 - max(0, step - start) / span


def set_trainable(method: Method, group: str | None) -> None:
    """Only ``group``'s parameters require grad (all of them for None): no wasted weight gradients."""
    for name, module in method.nets.items():
        module.requires_grad_(group is None or name == group)


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    checkpoint: Path
    grid: Path | None
    seconds: float
    images_per_second: float
    stopped_by: str


class Trainer:
    """Builds data, method, optimisers from a resolved config; ``fit()`` trains into ``run_dir``."""

    def __init__(self, cfg: DictConfig, run_dir: Path, resume: bool = False) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        train = cfg.train
        if train.threads:
            torch.set_num_threads(train.threads)
        self.world = init_world(train.device)
        self.device = resolve_device(train.device, self.world.local_rank if self.world.distributed else None)
        if train.low_memory:
            fix_malloc_mmap_threshold()
        torch.manual_seed(train.seed)
        self.resume_state = self._prepare_run_dir(resume)
        # 'auto' measures the CPU; a resumed run keeps the precision its checkpoint was trained with instead
        started_with = (self.resume_state or {}).get("precision") if train.precision == "auto" else None
        # every process takes process 0's choice: 'auto' measures, and a borderline CPU could answer differently
        self.precision = gather_objects(started_with or resolve_precision(train.precision, self.device), self.world)[0]

        data = cfg.data
        # a single-collection method reads one folder (and labels only when its config asks for them)
        method_class = METHODS.get(cfg.method)
        options = {"image_size": data.load_size or data.image_size, "channels": data.channels,
                   "on_bad_image": data.on_bad_image}
        model_cfg = to_object(cfg, "model")
        labelled_domains = method_class.labelled_domains(model_cfg)
        if method_class.single_domain:
            self.domains = open_collection(data.source, "train", label_fraction=method_class.label_fraction(model_cfg),
                                           **options)
            self.display_domains = open_collection(data.source, "test", **options)
        else:  # a method trained on pairs gets them aligned, and refuses unpaired data
            paired = method_class.paired_data
            self.domains = open_domains(data.source, "train", aligned=paired, **options)
            self.display_domains = open_domains(data.source, "test", aligned=paired, **options)
        sources = self.domains.sources()
        unlabelled = [f"{d} ({sources[d].name})" for d in labelled_domains if sources[d].labels is None]
        if unlabelled:
            raise ConfigError(f"method {cfg.method} with this model config trains on the labels of domain "
                              f"{', '.join(unlabelled)}, which has none: use a labelled digit set there")
        self.channels = {d: src.channels for d, src in sources.items()}
        self.batches = StepBatches(sources, train.batch_size, data.image_size, train.seed, data.flip,
                                   self.world.rank, self.world.size, labels=labelled_domains,
                                   aligned=method_class.paired_data)
        self.display = {k: v.to(self.device) for k, v in fixed_batch(
            self.display_domains.sources(), train.num_samples, data.image_size).items()}

        self.method = build_method(cfg.method, model_cfg, weights_dict(cfg), self.channels,
                                   data.image_size).to(self.device)
        if self.resume_state is None:
            self.method.prepare(sources)
        self.memory_format = torch.channels_last if train.channels_last else torch.contiguous_format
        self.method.to(memory_format=self.memory_format)
        optim = cfg.optim
        self.optimizers = {
            group: torch.optim.Adam(self._parameter_groups(group), lr=optim.lr, betas=(optim.beta1, optim.beta2),
                                    weight_decay=optim.weight_decay, fused=True)
            for group in self.method.groups
        }
        self.schedulers = {g: torch.optim.lr_scheduler.LambdaLR(o, lr_multiplier(cfg))
                           for g, o in self.optimizers.items()}
        self.ema: nn.Module | None = None
        if train.ema_decay > 0:
            self.ema = copy.deepcopy(self.method.nets["gen"]).requires_grad_(False).eval()
        self.step = 0
        self._half_step = False  # some group updated, self.step not yet advanced: don't save
        self._saved_step = -1
        self._stop_signal: int | None = None
        self.log: MetricsLog | None = None
        self._created_dirs: list[Path] | None = None  # a fresh run's folders, once created (None: resumed)
        if self.resume_state is not None:
            self._load_state(self.resume_state)
        elif self.world.is_main:  # only now that data and networks are set up: a failed start leaves no folder
            self._create_run_dir()
        if self.world.distributed:
            broadcast_module(self.method, self.world)
            if self.resume_state is None:  # independent noise per process from here on
                torch.manual_seed(mix_seed(train.seed, self.world.rank))

    def _parameter_groups(self, group: str) -> list[dict[str, Any]]:
        """The method's parameter groups of ``group`` with ``lr_scale`` turned into a learning rate."""
        groups = []
        for entry in self.method.parameter_groups(group):
            entry = dict(entry)
            entry["lr"] = self.cfg.optim.lr * entry.pop("lr_scale", 1.0)
            groups.append(entry)
        return groups

    # -- run folder and state ------------------------------------------------------------------------
    def _prepare_run_dir(self, resume: bool) -> dict | None:
        problem: Exception | None = None
        try:
            state = self._check_run_dir(resume)
        except (CheckpointError, RunFolderError) as err:
            problem = err
        if any_process(problem is not None, self.world, torch.device("cpu")):  # all processes stop together
            raise problem or RunFolderError(f"{self.run_dir}: another process could not start (see its message)")
        return state

    def _check_run_dir(self, resume: bool) -> dict | None:
        if resume:
            found = latest_checkpoint(self.run_dir)
            if found is None:
                raise CheckpointError(f"{self.run_dir}: nothing to resume (no checkpoints/ with a checkpoint)")
            return load_checkpoint(found, method=self.cfg.method)
        if self.world.is_main and self.run_dir.exists() and not self.run_dir.is_dir():
            raise RunFolderError(f"{self.run_dir}: is a file, not a folder; choose another --out (a new or empty "
                                 "folder for the run)")
        if self.world.is_main and self.run_dir.exists() and any(self.run_dir.iterdir()):
            raise RunFolderError(f"{self.run_dir}: folder exists and is not empty; pass --resume {self.run_dir} "
                                 "to continue that run, or choose another --out")
        return None

    def _create_run_dir(self) -> None:
        self._created_dirs = [p for p in (self.run_dir, *self.run_dir.parents) if not p.exists()]  # deepest first
        text = OmegaConf.to_yaml(self.cfg).encode()
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write(self.run_dir / "config.yaml", lambda handle: handle.write(text))
        except OSError as err:
            self._remove_run_dir()
            raise RunFolderError(f"{self.run_dir}: cannot create the run folder here ({err.strerror or err}); "
                                 "choose another --out") from err

    def _remove_run_dir(self) -> None:
        """Delete what this run wrote into its folder, which was empty or absent when it started, and the folders
        it created: a run that fails before its first checkpoint leaves nothing in the way of the next try."""
        for name in RUN_FILES:
            path = self.run_dir / name
            with contextlib.suppress(OSError):  # e.g. absent, or on a read-only file system
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
        for folder in self._created_dirs or []:
            with contextlib.suppress(OSError):
                folder.rmdir()

    def state_dict(self) -> dict[str, Any]:
        return {
            "method": self.cfg.method,
            "config": to_dict(self.cfg),
            "channels": self.channels,
            "step": self.step,
            "precision": self.precision,
            "nets": self.method.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "optimizers": {g: o.state_dict() for g, o in self.optimizers.items()},
            "schedulers": {g: s.state_dict() for g, s in self.schedulers.items()},
            "rng": rng_state(),
            "rng_by_rank": gather_objects(rng_state(), self.world) if self.world.distributed else None,
        }

    def _load_state(self, state: dict[str, Any]) -> None:
        where = state["path"]
        try:
            self.method.load_state_dict(state["nets"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            elif self.ema is not None:  # EMA switched on while resuming: start it from the weights
                self.ema.load_state_dict(self.method.nets["gen"].state_dict())
            for group, optimizer in self.optimizers.items():
                optimizer.load_state_dict(state["optimizers"][group])
            for group, scheduler in self.schedulers.items():
                scheduler.load_state_dict(state["schedulers"][group])
        except (RuntimeError, KeyError, ValueError) as err:
            raise CheckpointError(f"{where}: does not fit this configuration ({str(err).splitlines()[0]}); "
                                  "architecture keys cannot change when resuming") from err
        by_rank = state.get("rng_by_rank")
        if self.world.distributed and by_rank and len(by_rank) == self.world.size:
            restore_rng(by_rank[self.world.rank])
        else:
            restore_rng(state["rng"])
            if self.world.distributed:  # resumed with another number of processes: fresh per-process streams
                torch.manual_seed(mix_seed(self.cfg.train.seed, self.world.rank, int(state["step"])))
        self.step = self._saved_step = int(state["step"])
        if self.world.is_main:
            self._truncate_metrics(self.step)

    def _truncate_metrics(self, step: int) -> None:
        """Drop log lines written after the checkpoint we resume from (a killed run's tail)."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    kept.append(line + "\n")
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
        data = "".join(kept).encode()
        atomic_write(path, lambda handle: handle.write(data))

    def save(self) -> Path | None:
        """Write a checkpoint (process 0; every process must call this, for the random states)."""
        state = self.state_dict()
        self._saved_step = self.step
        if not self.world.is_main:
            return None
        return write_run_checkpoint(self.run_dir / "checkpoints", self.step, state, self.cfg.train.keep_checkpoints)

    # -- one step ------------------------------------------------------------------------------------
    def autocast(self) -> contextlib.AbstractContextManager:
        enabled = self.precision == "bf16"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _to_device(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """Images (4-D) in the run's memory format; anything else (labels) as it is."""
        return {k: v.to(self.device, non_blocking=True).contiguous(
                    memory_format=self.memory_format if v.dim() == 4 else torch.contiguous_format)
                for k, v in batch.items()}

    def train_step(self, batch: dict[str, Tensor]) -> dict[str, Tensor]:
        """One optimisation step of every group; returns the detached raw terms and weighted totals."""
        method = self.method
        method.train()
        logged: dict[str, Tensor] = {}
        set_trainable(method, None)
        batch = self._to_device(batch)
        with self.autocast():
            step = method.forward_step(batch)
        for group in method.groups:
            set_trainable(method, group)
            with self.autocast():
                terms = method.loss_terms(group, step)
            # A term whose weight is 0 is switched off for the run: it is neither summed (0 x term would still be
            # backpropagated, and a non-finite one would stop training) nor logged, so the logs list the run's
            # objective only. Methods skip such a term's work themselves (``Method.active``); this keeps the
            # convention for any that does not.
            terms = {name: value for name, value in terms.items() if method.weight_of(name) != 0}
            if not terms:  # the group waits this step (e.g. while another warms up alone): no update
                self.optimizers[group].step()  # a no-op without gradients; keeps the schedule in step
                self.schedulers[group].step()
                continue
            total = sum((method.weight_of(name) * value for name, value in terms.items()),
                        torch.zeros((), device=self.device))
            if any_process(not torch.isfinite(total), self.world, self.device):
                bad = [name for name, value in terms.items() if not torch.isfinite(value)] or ["total"]
                value = float(terms.get(bad[0], total).detach())
                raise NonFiniteLossError(f"step {self.step + 1}: loss term '{group}/{bad[0]}' is {value} "
                                         f"(group '{group}'); training stopped. "
                                         f"Last checkpoint: {latest_checkpoint(self.run_dir)}")
            optimizer = self.optimizers[group]
            total.backward()
            average_gradients(self.method.nets[group], self.world)
            self._half_step = True
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)  # free the gradients now, not at this group's next turn
            self.schedulers[group].step()
            logged.update({f"loss/{group}/{name}": value.detach() for name, value in terms.items()})
            logged[f"total/{group}"] = total.detach()
        set_trainable(method, None)
        if self.ema is not None:
            self._update_ema(batch)
        self.step += 1
        method.after_step(self.step)
        self._half_step = False
        return logged

    @torch.no_grad()
    def _update_ema(self, batch: dict[str, Tensor]) -> None:
        """Move the EMA copy's weights towards the live ones. Batch-norm statistics must belong to the weights
        they normalise (copied or averaged live statistics mis-normalise the averaged weights), and only the
        method knows which inputs its networks see: where it has batch norm it re-estimates the copy's own
        (``Method.refresh_ema_statistics``); else the buffers are copied."""
        decay = self.cfg.train.ema_decay
        for ema_p, p in zip(self.ema.parameters(), self.method.nets["gen"].parameters(), strict=True):
            ema_p.lerp_(p, 1.0 - decay)
        with self.autocast():
            refreshed = self.method.refresh_ema_statistics(self.ema, batch)
        if not refreshed:
            for ema_b, b in zip(self.ema.buffers(), self.method.nets["gen"].buffers(), strict=True):
                ema_b.copy_(b)

    @contextlib.contextmanager
    def inference_weights(self) -> Iterator[Method]:
        """The method in eval mode with EMA generator weights swapped in (when EMA is on)."""
        method, live = self.method, self.method.nets["gen"]
        if self.ema is not None:
            method.nets["gen"] = self.ema
        method.eval()
        try:
            yield method
        finally:
            method.nets["gen"] = live
            method.train()

    def sample(self) -> Path:
        devices = [self.device] if self.device.type == "cuda" else []
        # visuals may draw random styles: keep them off the training random stream
        with torch.random.fork_rng(devices=devices), self.inference_weights() as method, self.autocast():
            visuals = method.visuals(self.display)
        path = save_grid(visuals, self.run_dir / "samples" / f"step_{self.step:08d}.png")
        if self.log is not None:
            self.log.add_image("samples", np.asarray(image_grid(visuals)), self.step)
        return path

    # -- the loop ------------------------------------------------------------------------------------
    def _catch_stop_signals(self) -> dict[int, Any]:
        """Ctrl-C / SIGTERM finish the current step, save a checkpoint and stop; a second one stops at once."""
        self._stop_signal = None
        if not _main_thread():
            return {}

        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_signal is not None:
                raise KeyboardInterrupt(f"signal {signum}")
            self._stop_signal = signum

        return {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}

    def fit(self) -> TrainResult:
        """Train until ``train.max_steps``, the time budget or a stop signal; a fresh run whose first checkpoint
        cannot be written (a full disk) is removed, as if it had not started."""
        try:
            return self._fit()
        except CheckpointError as err:
            if self._created_dirs is None or not self.world.is_main or latest_checkpoint(self.run_dir) is not None:
                raise
            self._remove_run_dir()
            raise CheckpointError(f"{err}, so the run's files in {self.run_dir} were removed") from err

    def _fit(self) -> TrainResult:
        train, main = self.cfg.train, self.world.is_main
        self.log = MetricsLog(self.run_dir, tensorboard=train.tensorboard) if main else None
        start_step, started = self.step, time.perf_counter()
        deadline = started + train.max_minutes * 60 if train.max_minutes else math.inf
        sums: dict[str, Tensor] = {}
        window, window_start = 0, time.perf_counter()
        grid: Path | None = None
        stopped_by = "max_steps"
        bar = tqdm(total=train.max_steps, initial=self.step, disable=not (train.progress and main), unit="step",
                   dynamic_ncols=True, desc=f"{self.cfg.method} -> {self.run_dir.name}"
                   + (f" ({train.max_minutes:g} min budget)" if train.max_minutes else ""))
        previous_handlers = self._catch_stop_signals()
        try:
            if self.step == 0 and main:
                grid = self.sample()
            for batch in iterate_steps(self.batches, self.step, train.max_steps, self.cfg.data.num_workers):
                logged = self.train_step(batch)
                for key, value in logged.items():
                    sums[key] = sums.get(key, 0) + value
                window += 1
                if deadline < math.inf:  # a time budget: the bar counts the steps it will allow, not max_steps
                    bar.total = steps_by_deadline(self.step, start_step, started, deadline, train.max_steps)
                bar.update(1)
                if self.step % train.log_every == 0 or self.step == train.max_steps:
                    seconds = time.perf_counter() - window_start
                    values = {k: float(v) / window for k, v in sums.items()}
                    values["speed/images_per_second"] = (window * train.batch_size * self.world.size
                                                         / max(seconds, 1e-9))
                    values.update({f"lr/{g}": s.get_last_lr()[0] for g, s in self.schedulers.items()})
                    if self.log is not None:
                        self.log.write(self.step, values)
                    bar.set_postfix({k.split("/")[-1]: f"{v:.3f}" for k, v in values.items() if k.startswith("total/")}
                                    | {"img/s": f"{values['speed/images_per_second']:.1f}"})
                    sums, window, window_start = {}, 0, time.perf_counter()
                if self.step % train.sample_every == 0 and main:
                    grid = self.sample()
                if self.step % train.checkpoint_every == 0:
                    self.save()
                # every process must agree on stopping at this step (signals and clocks differ)
                if any_process(self._stop_signal is not None, self.world, self.device):
                    stopped_by = "interrupted"
                    break
                if any_process(time.perf_counter() > deadline, self.world, self.device):
                    stopped_by = "max_minutes"
                    break
        except KeyboardInterrupt:
            stopped_by = "interrupted"
            raise
        finally:
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
            bar.close()
            try:
                # Whatever stopped the loop (budget, Ctrl-C, SIGTERM, an error), keep the progress made; but not a
                # step stopped half-way (some groups updated, others not): then the last checkpoint stands.
                if self.step > start_step and not self._half_step and self._saved_step != self.step:
                    self.save()
                sampled = grid is not None and grid.name.endswith(f"{self.step:08d}.png")
                if main and stopped_by != "interrupted" and not sampled:
                    with contextlib.suppress(Exception):
                        grid = self.sample()
            finally:  # also when that last checkpoint cannot be written (a full disk)
                if self.log is not None:
                    self.log.close()
        # Process 0 alone writes the last grid (and the checkpoint's files) above. Leave together, so no process
        # tears the process group down while another still works: Gloo then aborts ("terminate called without
        # an active exception", 1 torchrun run in 6 on 2 CPU processes). Not after an error: the others may
        # never get here.
        wait_for_all(self.world)
        if stopped_by == "interrupted":
            raise KeyboardInterrupt(f"stopped after step {self.step}, checkpoint saved")
        seconds = time.perf_counter() - started
        checkpoint = latest_checkpoint(self.run_dir)
        images = (self.step - start_step) * train.batch_size * self.world.size
        return TrainResult(self.run_dir, self.step, checkpoint, grid, seconds, images / max(seconds, 1e-9),
                           stopped_by)


def steps_by_deadline(step: int, start_step: int, started: float, deadline: float, max_steps: int) -> int:
    """The step a run will stop at: ``max_steps``, or the first step to end past ``deadline`` at the speed
    measured since ``started`` (when it was at ``start_step``), whichever comes first."""
    now = time.perf_counter()
    if step <= start_step or now <= started:
        return max_steps
    rate = (step - start_step) / (now - started)
    return min(max_steps, step + max(0, math.ceil((deadline - now) * rate)))


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def config_for_resume(run_dir: Path, overrides: list[str]) -> DictConfig:
    """The stored config.yaml of a run, with ``--set`` overrides (e.g. a larger train.max_steps)."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: no config.yaml, so this is not an unpaired run folder")
    stored = OmegaConf.to_container(OmegaConf.load(path))
    cfg = config_from_dict(stored)  # type: ignore[arg-type]
    return apply_overrides(cfg, overrides)


def train(cfg: DictConfig, run_dir: Path, resume: bool = False) -> TrainResult:
    return Trainer(cfg, run_dir, resume=resume).fit()


__all__ = ["NonFiniteLossError", "RunFolderError", "TrainResult", "Trainer", "config_for_resume", "train"]
