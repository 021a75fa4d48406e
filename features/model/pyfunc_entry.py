"""The script MLflow runs to build a leadscore model (MLflow "models from code").

MLflow stores this file with the model and runs it when the model is loaded as a
pyfunc; `set_model` hands it the pyfunc object. It is never imported by the project
itself (that would register a model as a side effect). The model's state is read in
`LeadScorerModel.load_context` from plain files: nothing is unpickled.
"""

import mlflow.models

from features.model.pyfunc import LeadScorerModel

mlflow.models.set_model(LeadScorerModel())
