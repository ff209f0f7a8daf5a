"""`mlpatterns operator run`: the Kubernetes operator (kopf), in a pod or locally
against the current kubeconfig."""

from __future__ import annotations

import os
import sys

import typer

__all__ = ["operator_app", "run"]

operator_app = typer.Typer(help="Run the Kubernetes operator (kopf).", no_args_is_help=True)


@operator_app.command("run")
def run(
    namespace: list[str] = typer.Option(
        [], "-n", "--namespace", help="Watch this namespace (repeatable)."
    ),
    all_namespaces: bool = typer.Option(
        False, "-A", "--all-namespaces", help="Watch every namespace (needs the ClusterRole)."
    ),
    router: str = typer.Option(
        "auto", help="auto (Istio when its CRDs exist, else the gateway), istio or gateway."
    ),
    image: str | None = typer.Option(None, help="The serving image the pods run."),
    seldon_image: str | None = typer.Option(
        None, help="The image of spec.router seldon's predictors (Seldon's wrapper)."
    ),
    image_pull_policy: str = typer.Option("IfNotPresent", help="The pods' imagePullPolicy."),
    image_pull_secret: list[str] = typer.Option(
        [], help="A Secret the pods pull their images with; repeatable."
    ),
    storage_secret: str | None = typer.Option(
        None, help="Secret with MLPATTERNS_S3_* for model load, unless a spec names one."
    ),
    redis_url: str | None = typer.Option(None, help="The asynchronous pattern's default Redis."),
    redis_secret: str | None = typer.Option(
        None, help="Secret whose key redis-password is that Redis' password."
    ),
    allow_registry: list[str] = typer.Option(
        [],
        help="A registry (or registry/path) a spec's image may come from; repeatable. "
        "None given: a spec may name no image.",
    ),
    allow_secret: list[str] = typer.Option(
        [],
        help="A Secret a spec may name (storage, queue); repeatable. None given: none.",
    ),
    prometheus_url: str | None = typer.Option(
        None, help="Prometheus a rollout's analysis reads the candidate's figures from."
    ),
    rollout_tick: float = typer.Option(
        5.0,
        min=0.1,
        help="Seconds between two looks at each rollout (its analysis has its own interval).",
    ),
    registry_poll: float = typer.Option(
        30.0,
        min=0.1,
        help="Seconds between two looks at the registry: pods roll when an alias they serve moves.",
    ),
    verbose: bool = typer.Option(False, "--verbose", help="Log kopf's debug details."),
    liveness: str | None = typer.Option(
        None, help="Serve kopf's liveness probe here, e.g. http://0.0.0.0:8080/healthz."
    ),
) -> None:
    """Reconcile ModelServices into Deployments, Services, routes and monitors."""
    import kopf

    from mlpatterns.logsetup import level_from, wants_json
    from mlpatterns.operator import handlers, timers
    from mlpatterns.operator.policy import AdmissionPolicy

    if bool(namespace) == all_namespaces:
        raise typer.BadParameter("give --namespace NS (repeatable) or --all-namespaces")
    if router not in ("auto", "istio", "gateway"):
        raise typer.BadParameter("auto, istio or gateway", param_hint="--router")
    defaults = handlers.OperatorConfig()
    config = handlers.OperatorConfig(
        router="istio" if router == "istio" else "gateway" if router == "gateway" else "auto",
        image=image or defaults.image,
        seldon_image=seldon_image or defaults.seldon_image,
        image_pull_policy=image_pull_policy,
        image_pull_secrets=tuple(image_pull_secret),
        storage_secret=storage_secret,
        redis_url=redis_url or defaults.redis_url,
        redis_secret=redis_secret,
        admission=AdmissionPolicy(tuple(allow_registry), tuple(allow_secret)),
        prometheus_url=prometheus_url,
    )
    timers.register_timers(rollout_tick, registry_poll)
    # INFO by default: what was handled, and how it went; JSON lines off a terminal, as
    # every mlpatterns process writes them (kopf's own setup, which owns its loggers)
    debug = level_from(os.environ) == "DEBUG"
    log_format = kopf.LogFormat.JSON if wants_json(sys.stderr) else kopf.LogFormat.FULL
    kopf.configure(debug=debug, verbose=verbose, log_format=log_format)
    kopf.run(
        standalone=True,
        clusterwide=all_namespaces,
        namespaces=namespace,
        liveness_endpoint=liveness,
        memo=kopf.Memo(operator=handlers.Operator(config)),
    )
