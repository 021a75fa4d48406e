"""Every delivery format by kind (a target's `kind` column)."""

from __future__ import annotations

from serving.connectors.base import Format
from serving.connectors.bitrix24 import Bitrix24
from serving.connectors.dynamics365 import Dynamics365
from serving.connectors.hubspot import HubSpot
from serving.connectors.mautic import Mautic
from serving.connectors.standard import Standard


def formats() -> dict[str, Format]:
    return {
        "standard": Standard(),
        "bitrix24": Bitrix24(),
        "hubspot": HubSpot(),
        "mautic": Mautic(),
        "dynamics365": Dynamics365(),
    }
