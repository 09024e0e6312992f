"""Layer 4: the scorer and its model kinds, explanations, the model card, and MLflow save, load
and aliases. Imports only `features`."""
