"""Standard Webhooks: the message's JSON as it is, signed (see `serving.webhooks.signing`)."""

from __future__ import annotations

from collections.abc import Sequence

from serving.connectors.base import ConnectorError, Message, Outbound, http_failure
from serving.webhooks import signing
from serving.webhooks.targets import Target


class Standard:
    batch_size = 1

    def requests(self, target: Target, messages: Sequence[Message]) -> list[Outbound]:
        if not target.url or not target.secret:
            raise ConnectorError("the webhook has no URL or no secret")
        out = []
        for message in messages:
            content = message.body.encode()
            headers = {
                "content-type": "application/json",
                "user-agent": "leadscore-webhooks/1",
                **signing.headers(target.secret, message.msg_id, content),
            }
            out.append(Outbound("POST", target.url, content, (message.message_id,), headers))
        return out

    def failure(self, status: int, body: bytes) -> str | None:
        return http_failure(status)
