"""`mlpatterns up` (a ModelService as local processes) and `mlpatterns traffic`
(show and switch its traffic live, writing the file back)."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import httpx
import typer
from rich.console import Console

from mlpatterns.api.edits import apply_changes
from mlpatterns.api.load import ModelServiceError, dump_model_service, load_model_service
from mlpatterns.cli.output import OUTPUT, Output, emit, new_table
from mlpatterns.cli.traffic_options import (
    NO_SHADOW,
    NO_STICKY,
    OFF,
    ON,
    SHADOW,
    SPLIT,
    STICKY,
)
from mlpatterns.files import write_text_atomically
from mlpatterns.routing.table import RoutingError, compile_table
from mlpatterns.settings import load_settings

__all__ = ["console", "traffic_app", "traffic_set", "traffic_show", "up"]

console = Console()
traffic_app = typer.Typer(help="Show and switch a ModelService's traffic.", no_args_is_help=True)


def _images(pairs: list[str]) -> dict[str, Path]:
    images = {}
    for pair in pairs:
        image, separator, folder = pair.rpartition("=")
        if not separator or not image:
            raise typer.BadParameter("write IMAGE=FOLDER", param_hint="--image")
        images[image] = Path(folder)
    return images


def up(
    file: Path = typer.Option(..., "-f", "--file", help="The ModelService (YAML)."),
    port: int = typer.Option(8080, help="The gateway's port: where clients send requests."),
    image: list[str] = typer.Option(
        [], help="IMAGE=FOLDER: a build context to run for a model-in-image version."
    ),
    timeout: float = typer.Option(120.0, help="Seconds to wait for every process to be ready."),
    registry_poll: float = typer.Option(
        10.0,
        min=0.1,
        help="Seconds between two looks at the registry: a version whose alias moved "
        "restarts with the new model.",
    ),
) -> None:
    """Run a ModelService as local processes (the embedded mode) until Ctrl-C or SIGTERM."""
    from mlpatterns.local.plan import PlanError
    from mlpatterns.local.runtime import embedded
    from mlpatterns.local.supervisor import StartError

    home = load_settings().home
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    try:
        with embedded(
            file,
            home,
            port=port,
            images=_images(image),
            timeout=timeout,
            registry_poll=registry_poll,
        ) as running:
            table = new_table(title=f"ModelService {running.plan.service}: running")
            for column in ("process", "pid", "log"):
                table.add_column(column)
            for process in running.supervisor.processes:
                pid = str(process.process.pid) if process.process else "-"
                table.add_row(process.spec.name, pid, str(process.log_path))
            console.print(table)
            for version, url in running.plan.upstreams.items():
                console.print(f"  version [bold]{version}[/bold]: {url}")
            if running.gateway_url:
                console.print(f"Send requests to [bold]{running.gateway_url}[/bold]")
            console.print("Ctrl-C stops everything.")
            running.supervise(stopping)
            console.print("stopping ...")
    except (ModelServiceError, PlanError, StartError, RoutingError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    console.print("stopped")


def _service_file(name: str, file: Path | None) -> tuple[Path, str | None]:
    """The file to edit and the running gateway's URL (None when not running)."""
    from mlpatterns.local.runtime import NotRunningError, read_state

    try:
        state = read_state(load_settings().home.resolve(), name)
    except NotRunningError as error:
        if file is None:
            console.print(f"[red]{error}; or give -f FILE to edit a file[/red]")
            raise typer.Exit(1) from None
        return file, None
    return file or Path(state["file"]), state.get("gateway_url")


@traffic_app.command("set")
def traffic_set(
    name: str = typer.Argument(..., help="The ModelService's name."),
    split: str | None = SPLIT,
    shadow: str | None = SHADOW,
    no_shadow: bool = NO_SHADOW,
    off: list[str] = OFF,
    on: list[str] = ON,
    sticky: str | None = STICKY,
    no_sticky: bool = NO_STICKY,
    file: Path | None = typer.Option(None, "-f", "--file", help="Edit this file instead."),
) -> None:
    """Change the traffic (validated), write the file back, and apply it live."""
    path, gateway_url = _service_file(name, file)
    try:
        current = load_model_service(path)
        changed = apply_changes(
            current,
            split=split,
            shadow=shadow,
            no_shadow=no_shadow,
            off=off,
            on=on,
            sticky=sticky,
            no_sticky=no_sticky,
        )
        compile_table(changed)  # e.g. every version switched off is refused here
    except (ModelServiceError, RoutingError) as error:
        console.print(f"[red]{error}[/red]")
        raise typer.Exit(1) from None
    write_text_atomically(path, dump_model_service(changed))  # the gateway never reads a part
    if gateway_url is not None:
        httpx.post(f"{gateway_url}/-/reload", timeout=10).raise_for_status()
        console.print(f"applied to the running gateway at {gateway_url}")
    _show_table(changed.metadata.name, path, gateway_url, Output.TABLE)


@traffic_app.command("show")
def traffic_show(
    name: str = typer.Argument(..., help="The ModelService's name."),
    file: Path | None = typer.Option(None, "-f", "--file", help="Read this file instead."),
    output: Output = OUTPUT,
) -> None:
    """The routes in force: from the running gateway, else from the file."""
    path, gateway_url = _service_file(name, file)
    _show_table(name, path, gateway_url, output)


def _show_table(name: str, path: Path, gateway_url: str | None, output: Output) -> None:
    if gateway_url is not None:
        routes = httpx.get(f"{gateway_url}/-/routes", timeout=10).json()
        source = f"running gateway {gateway_url}"
    else:
        routes = compile_table(load_model_service(path)).describe()
        source = str(path)
    if emit({"source": source, **routes}, output):
        return
    view = new_table(title=f"{name}: routes in force ({source})")
    view.add_column("route")
    view.add_column("weights")
    for route in routes["routes"]:
        weights = ", ".join(f"{v}={w}" for v, w in route["destinations"].items())
        view.add_row(route["name"], weights)
    console.print(view)
    shadow = routes.get("shadow")
    console.print(f"shadow: {f'{shadow[0]} at {shadow[1]:g}%' if shadow else 'none'}")
    console.print(f"sticky header: {routes.get('sticky') or 'none'}")
