"""Translation methods; importing this package registers every method in ``METHODS``."""

from unpaired.methods import unit as _unit  # noqa: F401  (registers)
from unpaired.methods.base import METHODS, Method, build_method

__all__ = ["METHODS", "Method", "build_method"]
