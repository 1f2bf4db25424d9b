"""Where the data vtdui ships beside its code is: ``profiles/`` and the HAPI launcher's sources.

The repository keeps both at its top level (``profiles/``, ``docker/hapi-launcher/``), where people look for
them. A built wheel carries copies inside the package (``vtdui/_bundled/profiles``, ``vtdui/_bundled/hapi-launcher``,
put there by the build step in ``setup.py``), read through :mod:`importlib.resources`. An editable install of a
checkout runs the package from ``plugin/vtdui`` without that build step, so the checkout's own folders are used
there.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Final

__all__ = ["BUNDLED_PACKAGE", "bundled_path"]

#: Sub-package directory of the wheel that holds the copies.
BUNDLED_PACKAGE: Final = "_bundled"

#: Each shipped folder: its name inside ``vtdui/_bundled`` and its place in a checkout.
_CHECKOUT: Final = {"profiles": ("profiles",), "hapi-launcher": ("docker", "hapi-launcher")}


def bundled_path(name: str) -> Path | None:
    """Return the shipped folder ``name`` (``profiles`` or ``hapi-launcher``), or ``None`` when neither exists.

    The copy inside the installed package comes first; otherwise the folder of the checkout this package is
    imported from (editable install, or ``plugin/`` on ``sys.path``).
    """
    packaged = resources.files("vtdui").joinpath(BUNDLED_PACKAGE, name)
    # Wheels install as plain files, so the traversable is a real directory (a zipped install has none).
    if isinstance(packaged, Path) and packaged.is_dir():
        return packaged
    # plugin/vtdui/bundled.py -> the checkout's root is two levels above the package
    checkout = Path(__file__).resolve().parents[2].joinpath(*_CHECKOUT[name])
    return checkout if checkout.is_dir() else None
