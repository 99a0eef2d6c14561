"""Evaluation: trace analysis now; the case-suite harness and scorers build on it."""
