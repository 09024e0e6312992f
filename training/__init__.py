"""Layer 3: from closed leads to a judged, registered model: dataset, guard, split, candidates,
metrics, gate, MLflow tracking, the train service. Imports `models`, `store`, `features`."""
