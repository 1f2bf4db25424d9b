"""vtdui: HAPI FHIR as the repository of a DUI, connected to ViaTrajectoire (IG ans.fhir.fr.sdo 4.0.7).

Public API: :data:`hookimpl` to write plugins, :data:`hookspec` for the contract, and the error tree
in :mod:`vtdui.errors`.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

PROJECT_NAME = "vtdui"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
"""Marker for hook specifications (used only in :mod:`vtdui.hookspecs`)."""

hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
"""Marker for hook implementations: ``from vtdui import hookimpl``."""

__all__ = ["PROJECT_NAME", "__version__", "hookimpl", "hookspec"]
