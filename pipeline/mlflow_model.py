"""MLflow pyfunc wrapper of the churn model, logged as "models from code" (no cloudpickle).

MLflow imports this file when the model is loaded (`mlflow.pyfunc.load_model("models:/<name>@champion")`);
the last line registers the model object, as that approach requires. Loading verifies the bundle's
checksums (`pipeline.bundle.load_bundle`) before unpickling; `predict` returns the calibrated churn
probability per input row. The pipeline itself never imports this module.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

BUNDLE_ARTIFACT = "bundle"


class ChurnProbabilityModel(PythonModel):
    """pyfunc: a frame of feature columns -> Series `churn_probability` (calibrated, same index)."""

    def load_context(self, context) -> None:
        from pipeline.bundle import load_bundle

        self.model = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT])).model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:
        return pd.Series(self.model.predict_proba(model_input), index=model_input.index, name="churn_probability")


mlflow.models.set_model(ChurnProbabilityModel())
