"""The model artifact that training writes and serving loads: `LeadScorer` and its plain-file
state, its MLflow pyfunc, the registered names, and batch scoring of an export or a table."""
