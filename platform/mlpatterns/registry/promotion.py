"""Train-then-serve's promotion: an alias moved to a registered version by a person
or a job, in one compare-and-swap write, and kept as a record of who moved what,
when, from which run (`models/<name>/promotions/`). Only a version that passed its
gate is ever registered; promoting through an alias (iris@candidate) is refused
when the model's latest training run failed its gate, because the alias then still
names an earlier run's version."""

from __future__ import annotations

from datetime import UTC

from mlpatterns.registry.metadata import Promotion
from mlpatterns.registry.references import check_alias, check_name
from mlpatterns.registry.registry import Registry
from mlpatterns.registry.store import StoreError

__all__ = ["PromotionRefused", "promote", "promotions"]


class PromotionRefused(StoreError):
    pass


def _stale_alias(registry: Registry, name: str, alias: str, version: str) -> str | None:
    """Why promoting through `alias` would be a mistake: the latest training run of
    `name` failed its gate, so the alias still names an earlier run's version."""
    runs = [r for r in registry.runs() if r.get("name") == name]
    if not runs:
        return None
    latest = max(runs, key=lambda r: str(r.get("recorded_at", "")))
    if latest.get("registered") is not False:
        return None
    return (
        f"the latest training run of {name} ({latest.get('run_id')}) failed its gate: "
        f"{latest.get('reason')}; {name}@{alias} still names {version} from an earlier "
        f"run: promote {name}/{version} to mean that one"
    )


def promote(
    registry: Registry,
    name: str,
    source: str,
    to: str,
    *,
    by: str,
    expected: str | None = None,
) -> Promotion:
    """Point alias `to` of model `name` at the version `source` names (an alias such
    as candidate, or a version). With `expected`, only if `to` points there now ("":
    unset); without, only if nobody moves it between this read and the write."""
    check_alias(to)
    aliases = registry.aliases(name)
    version = aliases.get(source) or registry.model(name, source).version
    metadata = registry.model(name, version)
    if source in aliases:
        stale = _stale_alias(registry, name, source, version)
        if stale is not None:
            raise PromotionRefused(stale)
    current = aliases.get(to, "")
    if current == version:
        raise PromotionRefused(f"{name}@{to} already points at {version}")
    moved = registry.move_alias(
        name, to, version, expected=current if expected is None else expected
    )
    record = Promotion(
        name=name,
        alias=to,
        version=version,
        previous=moved.previous,
        source=source,
        by=by,
        at=moved.moved_at,
        run=metadata.pipeline_run_id,
    )
    stamp = moved.moved_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    registry.store.put(
        f"models/{name}/promotions/{stamp}-{to}.json",
        record.model_dump_json(indent=2).encode(),
    )
    return record


def promotions(registry: Registry, name: str) -> list[Promotion]:
    """Every promotion of `name`, oldest first."""
    keys = sorted(registry.store.list(f"models/{check_name(name)}/promotions/"))
    return [Promotion.model_validate_json(registry.store.get(k).data) for k in keys]
