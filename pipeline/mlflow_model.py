"""MLflow pyfunc wrapper of the churn model, logged as "models from code" (no cloudpickle).

MLflow imports this file when the model is loaded (`mlflow.pyfunc.load_model("models:/<name>@champion")`);
the last line registers the model object, as that approach requires. The logged model holds this
file, the package source (`code_paths`), the MLmodel/requirements/input-example text files and the
bundle as its artifact: JSON and LightGBM text only, nothing pickled (models from code need no
cloudpickle of the Python model). Loading verifies the bundle (format, signature when
`CHURN_BUNDLE_KEY` is set, checksums) and parses it with `pipeline.bundle.load_bundle`; `predict`
returns the calibrated churn probability per input row. The pipeline itself never imports this module
(`churn score` downloads the run's "bundle" artifacts and loads them with the same function).
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel

from pipeline.bundle import load_bundle

BUNDLE_ARTIFACT = "bundle"


class ChurnProbabilityModel(PythonModel):
    """pyfunc: a frame of feature columns -> Series `churn_probability` (calibrated, same index)."""

    def load_context(self, context) -> None:
        self.model = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT])).model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.Series:
        return pd.Series(self.model.predict_proba(model_input), index=model_input.index, name="churn_probability")


mlflow.models.set_model(ChurnProbabilityModel())
