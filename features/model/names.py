"""The MLflow names of the models (DESIGN.md: names are part of the contract).

A light module on purpose: the CLI and the serving settings read these defaults
without importing MLflow or LightGBM.
"""

from __future__ import annotations

from typing import Final

MODEL_NAME: Final = "lead-scorer"
#: a model trained on a flat lead table is registered apart: `promote` compares a
#: challenger with the champion on one holdout, which needs models of one kind
TABLE_MODEL_NAME: Final = "lead-scorer-table"
CHAMPION_URI: Final = f"models:/{MODEL_NAME}@champion"
TABLE_CHAMPION_URI: Final = f"models:/{TABLE_MODEL_NAME}@champion"

#: which leads of a batch get reasons when nobody says: the MQLs and the best 5 % by
#: probability, what a CRM user opens (TreeSHAP costs ~100x a prediction)
DEFAULT_REASONS_FOR = "mql,top:5%"
#: registered-model tags that record each move of the champion alias, one per move:
#: ``promotion.<UTC time>`` = JSON {version, previous, why} (training writes, the
#: workspace reads the history)
PROMOTION_TAG_PREFIX = "promotion."
