"""Scores back out: Standard Webhooks signing, the targets (subscriptions and CRM
connectors), and the dispatcher that delivers the outbox (`serving.store.outbox`)."""
