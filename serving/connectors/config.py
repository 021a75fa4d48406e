"""The connectors file: which CRMs scores go to (and come from), where, and with what.

    # connectors.yaml (LEADSCORE_CONNECTORS=connectors.yaml)
    connectors:
      - name: bitrix24                  # its intake: POST /v1/connectors/bitrix24/events
        kind: bitrix24
        env:                            # environment variables that hold the credentials
          url: BITRIX24_WEBHOOK_URL     # https://yours.bitrix24.ru/rest/1/abc123/
          application_token: BITRIX24_APPLICATION_TOKEN
        fields:                         # our value -> the CRM's field
          probability: UF_CRM_LEADSCORE_PROBABILITY
          mql: UF_CRM_LEADSCORE_MQL
        events: [lead.mql_reached, lead.mql_lost, lead.grade_changed, lead.score_changed]
        min_change: 0.01

Every key but `name` and `kind` has a default per kind (`KINDS`). Credentials never go
into the file or the store: only the names of the variables that hold them. A file that
names a variable which is not set is refused at start-up, saying which.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serving.store.engine import Store
from serving.store.outbox import LEAD_EVENTS
from serving.webhooks.targets import retire_connectors, sync_connector

#: our values a field mapping may name (see `serving.connectors.base.score_fields`)
VALUES: Final = ("probability", "points", "grade", "mql", "scored_at", "model_version", "reasons")

#: per kind: the credentials it needs (env keys), which of them only the intake needs,
#: the default field mapping and the default contact id prefix
KINDS: Final[dict[str, dict[str, Any]]] = {
    "bitrix24": {
        "env": ("url",),
        "intake_env": ("application_token",),
        "prefix": "b24-lead-",
        "fields": {
            "probability": "UF_CRM_LEADSCORE_PROBABILITY",
            "points": "UF_CRM_LEADSCORE_POINTS",
            "grade": "UF_CRM_LEADSCORE_GRADE",
            "mql": "UF_CRM_LEADSCORE_MQL",
        },
    },
    "hubspot": {
        "env": ("token",),
        "intake_env": ("client_secret",),
        "prefix": "hubspot-",
        "fields": {
            "probability": "leadscore_probability",
            "points": "leadscore_points",
            "grade": "leadscore_grade",
            "mql": "leadscore_mql",
        },
    },
    "mautic": {
        "env": ("url", "user", "password"),
        "intake_env": ("webhook_secret",),
        "prefix": "mautic-",
        "fields": {
            "probability": "leadscore_probability",
            "points": "leadscore_points",
            "grade": "leadscore_grade",
            "mql": "leadscore_mql",
        },
    },
    "dynamics365": {
        "env": ("url", "token"),
        "intake_env": (),
        "prefix": "",
        "fields": {},
    },
}


class ConnectorConfigError(ValueError):
    """The connectors file cannot be used (the message says where and why)."""


class ConnectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$")
    kind: Literal["bitrix24", "hubspot", "mautic", "dynamics365"]
    events: list[str] = Field(default_factory=lambda: list(LEAD_EVENTS))
    min_change: float = Field(default=0.01, ge=0, le=1)
    #: which contacts are this CRM's, and their id in it: contact id = prefix + CRM id
    contact_prefix: str | None = None
    env: dict[str, str] = Field(default_factory=dict)
    fields: dict[str, str] = Field(default_factory=dict)
    #: anything else the kind reads (e.g. hubspot `base_url`, dynamics365 `api_version`,
    #: bitrix24 `sources`, `touchpoint_types`; see docs/integrations.md)
    options: dict[str, Any] = Field(default_factory=dict)

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(LEAD_EVENTS))
        if unknown:
            raise ValueError(f"unknown event {unknown[0]!r}; a connector takes {LEAD_EVENTS}")
        if not value:
            raise ValueError("at least one event")
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(VALUES))
        if unknown:
            raise ValueError(f"unknown value {unknown[0]!r}; fields map some of {VALUES}")
        return value

    @property
    def webhook_id(self) -> str:
        return f"conn_{self.name}"

    @property
    def prefix(self) -> str:
        default: str = KINDS[self.kind]["prefix"]
        return default if self.contact_prefix is None else self.contact_prefix

    @property
    def field_map(self) -> dict[str, str]:
        return {**KINDS[self.kind]["fields"], **self.fields}

    def stored(self) -> dict[str, Any]:
        """What the store keeps of it (no credential, only the variables' names)."""
        return self.model_dump(include={"name", "kind", "env", "fields", "options"}) | {
            "prefix": self.prefix,
            "fields": self.field_map,
        }


def credential(config: dict[str, Any], key: str) -> str:
    """A credential of a connector, read from its environment variable when it is used."""
    from serving.connectors.base import ConnectorError

    variable = config.get("env", {}).get(key)
    value = os.environ.get(variable) if variable else None
    if not value:
        raise ConnectorError(
            f"connector {config.get('name')!r}: set the environment variable "
            f"{variable or '(none named for ' + key + ')'} ({key})"
        )
    return value


def load_connectors(path: str | Path | None) -> list[ConnectorSpec]:
    """The connectors of the file (none without one); `ConnectorConfigError` names the
    entry and key that are wrong, or the variable that is not set."""
    if not path:
        return []
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConnectorConfigError(
            f"cannot read the connectors file {file}: {exc.strerror}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConnectorConfigError(f"the connectors file {file} is not valid YAML: {exc}") from None
    items = data.get("connectors") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ConnectorConfigError(f"{file}: expected a `connectors:` list")
    out: list[ConnectorSpec] = []
    for i, item in enumerate(items):
        try:
            spec = ConnectorSpec.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ConnectorConfigError(
                f"{file}: connectors[{i}]{'.' + where if where else ''}: {first['msg']}"
            ) from None
        needed = KINDS[spec.kind]["env"]
        missing_keys = [k for k in needed if k not in spec.env]
        if missing_keys:
            raise ConnectorConfigError(
                f"{file}: connector {spec.name!r} ({spec.kind}) needs env.{missing_keys[0]}: "
                "the name of the environment variable that holds it"
            )
        unset = [v for k, v in spec.env.items() if k in needed and not os.environ.get(v)]
        if unset:
            raise ConnectorConfigError(
                f"{file}: connector {spec.name!r}: the environment variable {unset[0]} is not set"
            )
        if any(s.name == spec.name for s in out):
            raise ConnectorConfigError(f"{file}: two connectors are named {spec.name!r}")
        out.append(spec)
    return out


def sync_connectors(store: Store, specs: list[ConnectorSpec]) -> None:
    """The connectors file into the targets table (the dispatcher reads targets there)."""
    with store.write() as connection:
        for spec in specs:
            sync_connector(
                connection,
                spec.name,
                spec.kind,
                spec.events,
                spec.min_change,
                spec.prefix,
                spec.stored(),
            )
        retire_connectors(connection, {spec.webhook_id for spec in specs})
