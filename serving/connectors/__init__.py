"""CRM connectors: how a score message is written into a CRM (Bitrix24, HubSpot, Mautic,
Dynamics 365, or a Standard Webhooks receiver), and how a CRM's own events come in.

Each outbound format turns outbox messages into the vendor's documented request; the
dispatcher (`serving.webhooks.dispatch`) sends them and keeps the log. The connectors
file (`connectors.yaml`, LEADSCORE_CONNECTORS) says which are on, where they point and
which environment variables hold their credentials.
"""
