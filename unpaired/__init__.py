"""unpaired: unsupervised image-to-image translation (UNIT, ...) under one trainer.

    import unpaired
    translator = unpaired.load("runs/h2z")            # a checkpoint file or a run folder
    zebra = translator.translate_image("horse.jpg", "a2b")[0]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from unpaired.inference import Translator


def load(checkpoint: Any, device: str = "auto", use_ema: bool = True) -> Translator:
    """Load a checkpoint for inference; see ``unpaired.inference.load``."""
    from unpaired.inference import load as _load  # function-local: `import unpaired` stays light (no torch)

    return _load(checkpoint, device=device, use_ema=use_ema)


__all__ = ["__version__", "load"]
