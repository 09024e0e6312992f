"""The model-quality page of a training run: rendered from the run's numbers and logged to MLflow
beside them, so `make mlflow` shows it with the run.

Training measures and reports render: `leadloop train` calls this after `train_and_register`.
"""

from __future__ import annotations

from mlflow import MlflowClient

from reports.pages import model_quality_page
from training.service import TrainingRun

QUALITY_REPORT_HTML = "quality_report.html"


def log_quality_page(client: MlflowClient, run: TrainingRun) -> str:
    """Log the run's model-quality page as an artifact of its MLflow run; return its URI."""
    client.log_text(run.run_id, model_quality_page(run.quality_report), QUALITY_REPORT_HTML)
    root = client.get_run(run.run_id).info.artifact_uri
    return f"{root.rstrip('/')}/{QUALITY_REPORT_HTML}"
