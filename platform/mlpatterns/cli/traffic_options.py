"""The traffic flags `mlpatterns traffic set` and `kubectl mlpatterns traffic` share,
declared once so both say the same."""

from __future__ import annotations

import typer

__all__ = ["NO_SHADOW", "NO_STICKY", "OFF", "ON", "SHADOW", "SPLIT", "STICKY"]

SPLIT = typer.Option(None, help="New weights, e.g. a=90,b=10.")
SHADOW = typer.Option(None, help="Copy requests to a version: b or b:50.")
NO_SHADOW = typer.Option(False, "--no-shadow", help="Stop the shadow copies.")
OFF = typer.Option([], help="Switch a version off (kill switch); repeatable.")
ON = typer.Option([], help="Switch a version back on; repeatable.")
STICKY = typer.Option(None, help="Keep users on one version by this header.")
NO_STICKY = typer.Option(False, "--no-sticky", help="Stop keeping users on one version.")
