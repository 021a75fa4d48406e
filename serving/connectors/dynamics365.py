"""Dynamics 365 Sales: scores as `msdyn_predictivescore` records, so the score, the grade,
the trend and the reasons show in Dynamics' own lead scoring widget.

One upsert per lead: `PATCH msdyn_predictivescores(msdyn_entityid='{lead
guid}',msdyn_entitytype='lead')` (the alternate key: Dataverse creates the record when
there is none, as Microsoft's "populate predictive scores" page shows), with
`msdyn_score` (0-100), `msdyn_grade` (A-D as 0-3), `msdyn_scoretrend` (0 improving,
1 steady, 2 declining, 3 not enough info) and `msdyn_scorereasons`. The contact id is
the lead's GUID (after the connector's prefix, empty by default).

Authentication: a bearer token from the environment variable the connector names
(an Azure AD application's token for the Dataverse API). Tokens expire (about an hour):
whatever issues them must refresh the variable's source; see docs/integrations.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Final
from urllib.parse import quote

from serving.connectors.base import Message, Outbound, http_failure, score_fields
from serving.connectors.config import credential
from serving.webhooks.targets import Target

GRADES: Final = {"A": 0, "B": 1, "C": 2, "D": 3}
#: the probability must move this much for the trend to be more than steady
TREND_STEP: Final = 0.01
REASONS_CHARS: Final = 10_000  # msdyn_scorereasons is a memo of this length


def trend(data: dict[str, Any]) -> int:
    before = data.get("previous")
    if not before:
        return 3
    moved = float(data["probability"]) - float(before["probability"])
    if moved >= TREND_STEP:
        return 0
    if moved <= -TREND_STEP:
        return 2
    return 1


def predictive_score(data: dict[str, Any]) -> dict[str, Any]:
    values = score_fields(data)
    body: dict[str, Any] = {
        "msdyn_score": round(float(data["probability"]) * 100),
        "msdyn_scoretrend": trend(data),
    }
    grade = str(data.get("grade") or "")[:1].upper()
    if grade in GRADES:
        body["msdyn_grade"] = GRADES[grade]
    if values["reasons"]:
        body["msdyn_scorereasons"] = values["reasons"][:REASONS_CHARS]
    return body


class Dynamics365:
    batch_size = 1

    def requests(self, target: Target, messages: Sequence[Message]) -> list[Outbound]:
        config = target.config
        base = credential(config, "url").rstrip("/")
        version = str(config.get("options", {}).get("api_version", "v9.2"))
        headers = {
            "authorization": "Bearer " + credential(config, "token"),
            "content-type": "application/json",
            "odata-version": "4.0",
            "odata-maxversion": "4.0",
        }
        prefix = config.get("prefix", "")
        out = []
        for message in messages:
            lead = message.lead_key[len(prefix) :]
            key = quote(f"msdyn_entityid='{lead}',msdyn_entitytype='lead'", safe="=,")
            out.append(
                Outbound(
                    "PATCH",
                    f"{base}/api/data/{version}/msdyn_predictivescores({key})",
                    json.dumps(predictive_score(message.data)).encode(),
                    (message.message_id,),
                    headers,
                )
            )
        return out

    def failure(self, status: int, body: bytes) -> str | None:
        return http_failure(status)
