"""Serving: the FastAPI app that loads a registered model by URI and scores leads.

It computes features with `features` and never imports `training`.
"""
