"""Translation methods; importing this package registers every method in ``METHODS``.

Each module of this package other than ``base`` (and private ``_*`` modules) is imported here, so a method
registers itself with ``@METHODS.register(name)``: adding a method is adding its file (``template.py`` is the
example to copy). No list of methods is kept by hand.
"""

import importlib
import pkgutil

from unpaired.methods.base import METHODS, Method, build_method

for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module != "base" and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["METHODS", "Method", "build_method"]
