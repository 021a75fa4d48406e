"""The API's routes by subject: scoring, the model, operations (health, metrics, admin)."""
