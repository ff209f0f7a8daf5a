"""`mlpatterns models` and `mlpatterns datasets`: read the registry, move aliases."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape

from mlpatterns.cli.output import OUTPUT, Output, emit, new_table
from mlpatterns.registry.registry import Registry
from mlpatterns.registry.store import StoreError
from mlpatterns.settings import load_settings

__all__ = [
    "console",
    "datasets_app",
    "datasets_ls",
    "datasets_show",
    "models_alias",
    "models_app",
    "models_ls",
    "models_show",
    "promote",
    "storage_app",
    "storage_grant",
]

console = Console()
models_app = typer.Typer(help="List and show model versions; move aliases.", no_args_is_help=True)
datasets_app = typer.Typer(help="List and show dataset versions.", no_args_is_help=True)


def _registry() -> Registry:
    return Registry.from_settings(load_settings())


def _fail(error: Exception) -> typer.Exit:
    console.print(f"[red]{escape(str(error))}[/red]")
    return typer.Exit(1)


@models_app.command("ls")
def models_ls(
    name: str = typer.Argument("", help="Only this model's versions."), output: Output = OUTPUT
) -> None:
    """List model versions with their accuracy and aliases (-o json|yaml: with every
    metric, the digest and the time each was made)."""
    registry = _registry()
    rows = []
    for model in [name] if name else registry.models():
        aliases = registry.aliases(model)
        for meta in registry.versions(model):
            tags = sorted(a for a, v in aliases.items() if v == meta.version)
            rows.append((meta, tags))
    listed = [
        {
            "name": m.name,
            "version": m.version,
            "model_type": m.model_type,
            "metrics": m.metrics,
            "aliases": tags,
            "sha256": m.sha256,
            "created_at": m.created_at.isoformat(),
        }
        for m, tags in rows
    ]
    if emit(listed, output):
        return
    table = new_table(title="models")
    for column in ("name", "version", "type", "accuracy", "aliases"):
        table.add_column(column, no_wrap=column == "version", overflow="fold")
    for meta, tags in rows:
        accuracy = meta.metrics.get("accuracy")
        table.add_row(
            meta.name,
            meta.version,
            meta.model_type,
            f"{accuracy:.4f}" if accuracy is not None else "",
            ", ".join(tags),
        )
    console.print(table)


@models_app.command("show")
def models_show(
    reference: str = typer.Argument(..., help="models:/<name>/<version> or models:/<name>@<alias>"),
    output: Output = OUTPUT,
) -> None:
    """Show a version's complete metadata."""
    try:
        meta = _registry().resolve(reference)
    except (StoreError, ValueError) as error:
        raise _fail(error) from None
    from mlpatterns.registry.promotion import promotions

    moves = [p for p in promotions(_registry(), meta.name) if p.version == meta.version]
    if emit({**meta.model_dump(mode="json"), "promotions": moves}, output):
        return
    console.print(f"[bold]{meta.ref}[/bold]  sha256 {meta.sha256}")
    console.print(f"type {meta.model_type}  parameters {json.dumps(meta.parameters)}")
    console.print(f"metrics {json.dumps({k: round(v, 4) for k, v in meta.metrics.items()})}")
    console.print(
        f"data {meta.dataset.name} sha256 {meta.dataset.sha256} ({meta.dataset.rows} rows)"
    )
    console.print(f"split {meta.split.method} test {meta.split.test_ratio} seed {meta.split.seed}")
    console.print(f"labels {meta.labels}  features {meta.feature_names}")
    console.print(
        f"code {meta.code_version}  run {meta.pipeline_run_id}  files {sorted(meta.files)}"
    )
    for move in moves:
        console.print(
            f"promoted to {move.alias} {move.at:%Y-%m-%d %H:%M:%S} UTC by {escape(move.by)}"
            f" (from {escape(move.source)}, was {move.previous or 'unset'})"
        )


@models_app.command("alias")
def models_alias(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. production, staging or candidate."),
    version: str = typer.Argument(..., help="Version to point the alias at."),
    expect: str | None = typer.Option(
        None, help="Move only if the alias points at this version now ('' : unset)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Point an alias at a version in one atomic write."""
    try:
        record = _registry().move_alias(name, alias, version, expected=expect)
    except (StoreError, ValueError) as error:
        raise _fail(error) from None
    if not emit(record, output):
        console.print(f"{name}@{alias} -> {record.version} (was {record.previous or 'unset'})")


def _actor() -> str:
    """Who promotes: MLPATTERNS_ACTOR (a CI job sets it), else user@host."""
    import getpass
    import os
    import socket

    return os.environ.get("MLPATTERNS_ACTOR") or f"{getpass.getuser()}@{socket.gethostname()}"


def promote(
    reference: str = typer.Argument(
        ..., help="What to promote: name@alias (iris@candidate) or name/version."
    ),
    to: str = typer.Option(..., "--to", help="The alias to move, e.g. production."),
    expect: str | None = typer.Option(
        None, help="Move only if the alias points at this version now ('': unset)."
    ),
    output: Output = OUTPUT,
) -> None:
    """Point an alias at a registered version (compare-and-swap), unless its training
    run failed its gate; who, when and from which run are kept in its lineage."""
    from mlpatterns.registry.promotion import promote as move

    name, sep, source = reference.removeprefix("models:/").replace("/", "@", 1).partition("@")
    if not sep or not name or not source:
        raise typer.BadParameter(
            f"{reference!r}: write name@alias (iris@candidate) or name/version",
            param_hint="REFERENCE",
        )
    try:
        record = move(_registry(), name, source, to, by=_actor(), expected=expect)
    except (StoreError, ValueError) as error:
        raise _fail(error) from None
    if not emit(record, output):
        console.print(
            f"{name}@{to} -> {record.version} (was {record.previous or 'unset'}), "
            f"by {escape(record.by)}, from run {record.run or 'unknown'}"
        )


@datasets_app.command("ls")
def datasets_ls(
    name: str = typer.Argument("", help="Only this dataset's versions."),
    output: Output = OUTPUT,
) -> None:
    """List dataset snapshots."""
    found = _registry().datasets(name or None)
    if emit(found, output):
        return
    table = new_table(title="datasets")
    for column in ("name", "sha256", "rows", "features", "source", "created"):
        table.add_column(column)
    for d in found:
        table.add_row(
            d.name,
            d.sha256[:12],
            str(d.rows),
            str(len(d.schema_.features)),
            d.source,
            d.created_at.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)


@datasets_app.command("show")
def datasets_show(
    name: str = typer.Argument(..., help="Dataset name."),
    digest: str = typer.Argument(..., help="Its sha256, or a unique prefix of it."),
    output: Output = OUTPUT,
) -> None:
    """Show a dataset snapshot's schema and provenance."""
    try:
        found = _registry().dataset(name, digest)
    except StoreError as error:
        raise _fail(error) from None
    if emit(found, output):
        return
    console.print(f"[bold]{found.ref}[/bold]  {found.rows} rows  from {found.source}")
    for feature in found.schema_.features:
        console.print(f"  {feature.name}: {feature.dtype} [{feature.minimum}, {feature.maximum}]")
    console.print(f"  label {found.schema_.label}: {found.schema_.classes}")


storage_app = typer.Typer(help="The object store's users and policies.", no_args_is_help=True)


@storage_app.command("grant")
def storage_grant() -> None:
    """Create the serving (read, plus prediction logs) and training (read-write) users
    in MinIO, with the root credentials of MLPATTERNS_S3_*. Each user's keys come from
    MLPATTERNS_GRANT_<ROLE>_ACCESS_KEY and _SECRET_KEY (never from arguments)."""
    import os

    from minio.error import MinioAdminException, S3Error

    from mlpatterns.registry.access import ROLES, Credentials, grant

    settings = load_settings()
    if settings.s3_endpoint is None or not settings.s3_access_key or not settings.s3_secret_key:
        raise _fail(ValueError("set MLPATTERNS_S3_ENDPOINT, _ACCESS_KEY and _SECRET_KEY (root)"))
    users = {}
    for role in ROLES:
        access = os.environ.get(f"MLPATTERNS_GRANT_{role.upper()}_ACCESS_KEY")
        secret = os.environ.get(f"MLPATTERNS_GRANT_{role.upper()}_SECRET_KEY")
        if access and secret:
            users[role] = Credentials(access, secret)
    if not users:
        raise _fail(ValueError("set MLPATTERNS_GRANT_SERVING_* or MLPATTERNS_GRANT_TRAINING_*"))
    root = Credentials(
        settings.s3_access_key.get_secret_value(), settings.s3_secret_key.get_secret_value()
    )
    try:
        made = grant(
            settings.s3_endpoint, root, settings.s3_bucket, users, secure=settings.s3_secure
        )
    except (MinioAdminException, S3Error, OSError) as error:
        raise _fail(ValueError(f"cannot grant on {settings.s3_endpoint}: {error}")) from None
    console.print(f"granted {', '.join(users)} on bucket {settings.s3_bucket}: {', '.join(made)}")
