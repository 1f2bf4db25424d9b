"""ViaTrajectoire client of the DUI: mTLS, OAuth2 client credentials, ``struct_idnat``, flux 1 to 5.

Typical use::

    with ViaTrajectoireClient(config.viatrajectoire, entity, config.retry) as vt:
        for hit in vt.search_decisions(eg.finess_eg, since):
            document = vt.read_document(eg.finess_eg, hit.id)
"""

from vtdui.viatrajectoire.auth import TokenProvider
from vtdui.viatrajectoire.client import (
    ConsentRequiredError,
    CreatedResource,
    DeliveryUncertainError,
    SearchHit,
    SearchResults,
    ViaTrajectoireClient,
    format_instant,
    last_updated_gt,
)
from vtdui.viatrajectoire.tls import build_ssl_context
from vtdui.viatrajectoire.trace import Exchange, ExchangeCallback

__all__ = [
    "ConsentRequiredError",
    "CreatedResource",
    "DeliveryUncertainError",
    "Exchange",
    "ExchangeCallback",
    "SearchHit",
    "SearchResults",
    "TokenProvider",
    "ViaTrajectoireClient",
    "build_ssl_context",
    "format_instant",
    "last_updated_gt",
]
