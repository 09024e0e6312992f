"""Drift and source-quality reports for marketers (issue 5); nothing is built here yet."""
