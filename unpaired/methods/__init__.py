"""Translation methods; importing this package registers every method in ``METHODS``."""

from unpaired.methods import cyclegan as _cyclegan  # noqa: F401
from unpaired.methods import distancegan as _distancegan  # noqa: F401
from unpaired.methods import gcgan as _gcgan  # noqa: F401
from unpaired.methods import munit as _munit  # noqa: F401
from unpaired.methods import tunit as _tunit  # noqa: F401
from unpaired.methods import unit as _unit  # noqa: F401  (registers)
from unpaired.methods.base import METHODS, Method, build_method

__all__ = ["METHODS", "Method", "build_method"]
