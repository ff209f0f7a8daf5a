"""`mlpatterns render`: the Kubernetes objects a ModelService becomes, as YAML, for
GitOps users who run no operator (the operator applies exactly these)."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console

from mlpatterns.api.load import ModelServiceError, load_model_service
from mlpatterns.routing.table import RoutingError

__all__ = ["console", "dump_documents", "render"]

console = Console(stderr=True)


def render(
    file: Path | None = typer.Option(None, "-f", "--file", help="The ModelService (YAML)."),
    namespace: str | None = typer.Option(None, "-n", "--namespace", help="Namespace to set."),
    router: str = typer.Option(
        "istio", help="istio or gateway, when the ModelService's spec.router does not say."
    ),
    monitoring: bool = typer.Option(False, help="Add ServiceMonitors (Prometheus Operator)."),
    image: str | None = typer.Option(None, help="The serving image (default: this version's)."),
    seldon_image: str | None = typer.Option(
        None, help="The seldon image, for spec.router seldon (default: this version's)."
    ),
    storage_secret: str | None = typer.Option(
        None, help="Secret with MLPATTERNS_S3_* for model load, unless the spec names one."
    ),
    crd: bool = typer.Option(False, "--crd", help="Print the ModelService CRD instead."),
) -> None:
    """Print the Kubernetes objects of a ModelService (or the CRD) as YAML."""
    from mlpatterns.api.schema import crd as make_crd
    from mlpatterns.render import RenderOptions
    from mlpatterns.render import render as render_objects

    if crd:
        typer.echo(dump_documents([make_crd()]), nl=False)
        return
    if file is None:
        raise typer.BadParameter("give -f FILE (or --crd)", param_hint="-f")
    if router not in ("istio", "gateway"):
        raise typer.BadParameter("istio or gateway", param_hint="--router")
    try:
        service = load_model_service(file)
        defaults = RenderOptions()
        options = RenderOptions(
            namespace=namespace,
            router="gateway" if router == "gateway" else "istio",
            monitoring=monitoring,
            image=image or defaults.image,
            seldon_image=seldon_image or defaults.seldon_image,
            storage_secret=storage_secret,
        )
        objects = render_objects(service, options)
    except (ModelServiceError, RoutingError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    typer.echo(dump_documents(objects), nl=False)


def dump_documents(objects: list[dict[str, object]]) -> str:
    return "".join(
        "---\n" + yaml.safe_dump(item, sort_keys=False, default_flow_style=False)
        for item in objects
    )
