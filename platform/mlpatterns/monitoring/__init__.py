"""Drift and prediction monitoring, alert rules and reports."""
