"""The base of every resource model: unknown fields refused, values frozen, fields
readable by their YAML names (aliases) and their Python names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Strict"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
