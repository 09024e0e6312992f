"""Pieces of `make bench`: the bare endpoint it compares with, and the load generator."""
