"""Layer 5, the bottom: the lead schema, its inference from exports, request validation, and the
feature encoder training and serving share. Imports no other leadloop package."""
