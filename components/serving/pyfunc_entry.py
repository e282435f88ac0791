"""Models-from-code entry point of the pyfunc model (no pickled Python object).

MLflow runs this file when it loads a logged forecaster; `set_model` names the
object that answers `predict`.
"""

from mlflow.models import set_model

from components.serving.pyfunc import ForecasterModel

set_model(ForecasterModel())
