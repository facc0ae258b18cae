"""Checkpoints: one self-contained file per save, written atomically, loaded without running code.

A checkpoint is plain data (tensors, numbers, strings, lists, dicts) so ``torch.load(weights_only=True)``
opens it: loading a downloaded checkpoint never executes anything from it. Layout::

    format_version  int, FORMAT_VERSION when written
    method          registered method name
    config          the resolved run configuration (nested dict)
    channels        {'a': C_a, 'b': C_b}
    step            number of completed training steps
    nets            method state_dict (every network group)
    ema             state_dict of the EMA copy of the 'gen' group, or None
    optimizers      {group: optimizer state_dict}
    schedulers      {group: scheduler state_dict}
    rng             {'torch': ByteTensor, 'cuda': [ByteTensor, ...]}

Writes go to a temporary file in the same folder, are fsynced, then renamed over the target, and the
folder is fsynced: a crash or a full disk at any moment leaves the previous checkpoint intact.
``checkpoints/latest`` names the newest file.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from unpaired.io import atomic_write

FORMAT_VERSION = 1
LATEST = "latest"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def _problem(err: OSError) -> str:
    """'no space left on device', 'read-only file system', ...: what went wrong, for a message."""
    return (err.strerror or str(err)).lower()


def _save(path: Path, state: dict[str, Any]) -> None:
    state = {"format_version": FORMAT_VERSION, **state}
    atomic_write(path, lambda handle: torch.save(state, handle))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    try:
        _save(path, state)
    except OSError as err:
        raise CheckpointError(f"{path}: could not write checkpoint ({_problem(err)}); "
                              "the previous checkpoint is untouched") from err


def load_checkpoint(path: Path, method: str | None = None, map_location: str | torch.device = "cpu") -> dict:
    """Read and validate a checkpoint; ``method`` (if given) must match the one that wrote it."""
    path = Path(path)
    if path.is_dir():
        found = latest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: no checkpoint in this folder")
        path = found
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # unpickling errors, truncated zip archives, foreign files
        raise CheckpointError(f"{path}: not a readable unpaired checkpoint ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from err
    if not isinstance(state, dict) or "format_version" not in state or "method" not in state:
        raise CheckpointError(f"{path}: not an unpaired checkpoint (no format_version/method fields)")
    version = state["format_version"]
    if version > FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {version} is newer than this unpaired "
                              f"(reads up to {FORMAT_VERSION}); upgrade unpaired to load it")
    if method is not None and state["method"] != method:
        raise CheckpointError(f"{path}: checkpoint is from method '{state['method']}', not '{method}'")
    state["path"] = str(path)
    return state


def latest_checkpoint(run_or_folder: Path) -> Path | None:
    """The newest checkpoint of a run folder (or of its checkpoints/ folder), or None."""
    folder = Path(run_or_folder)
    if (folder / "checkpoints").is_dir():
        folder = folder / "checkpoints"
    pointer = folder / LATEST
    if pointer.is_file():
        target = folder / pointer.read_text().strip()
        if target.is_file():
            return target
    candidates = sorted(folder.glob("step_*.pt"))
    return candidates[-1] if candidates else None


def write_run_checkpoint(folder: Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Save ``step_XXXXXXXX.pt``, point ``latest`` at it, then prune all but the newest ``keep``.

    A failed write (a full disk, a read-only folder) raises CheckpointError naming the folder, the file and the
    problem; the new file is not left behind, and the previous checkpoint and ``latest`` stay as they were."""
    path = folder / f"step_{step:08d}.pt"
    previous = latest_checkpoint(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob(".step_*.tmp"):  # left by a process killed while writing
            with contextlib.suppress(OSError):
                stale.unlink()
        _save(path, state)
        try:
            atomic_write(folder / LATEST, lambda handle: handle.write(path.name.encode()))
        except OSError:
            if path != previous:  # complete, but `latest` does not name it: not left behind either
                with contextlib.suppress(OSError):
                    path.unlink()
            raise
    except OSError as err:
        kept = f"the last checkpoint {previous.name} is intact" if previous else "there is no earlier checkpoint"
        raise CheckpointError(f"{folder}: {_problem(err)} while writing {path.name}; {kept}") from err
    if keep > 0:
        for old in sorted(folder.glob("step_*.pt"))[:-keep]:
            with contextlib.suppress(OSError):
                old.unlink()
    return path


def rng_state() -> dict[str, Any]:
    cuda = [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else []
    return {"torch": torch.get_rng_state(), "cuda": cuda}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
