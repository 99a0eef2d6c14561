"""Reasoning steps (differential, plan), their output schemas and the evidence catalogue they cite."""
