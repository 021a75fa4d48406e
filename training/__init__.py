"""Training: builds training sets with `features`, fits and evaluates models, logs to MLflow.

Only this package writes to the model registry. It never imports `serving`.
"""
