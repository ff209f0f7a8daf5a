"""Who routes a ModelService's traffic, and the objects that say so.

- Istio: the Service `<name>` in front of every version's routed pods, with a
  DestinationRule (a subset per `version` label) and a VirtualService rendered from
  the route table. What Istio cannot express (sticky weighted splits, time windows,
  thresholds) adds the mlpatterns gateway `<name>-gateway`, which decides and sets
  `x-mlpatterns-route`, on which the VirtualService then routes.
- Gateway: the Service `<name>` in front of the mlpatterns gateway, whose route
  table is the ModelService itself in a ConfigMap; the kubelet updates the mounted
  file when the ConfigMap changes and the gateway reloads it, with no restart.
"""

from __future__ import annotations

from typing import Any

from mlpatterns import topology
from mlpatterns.api.load import dump_model_service
from mlpatterns.api.modelservice import ModelService, Version
from mlpatterns.render.common import (
    METRICS_LABEL,
    PORT,
    ROUTED_LABEL,
    SERVICE_LABEL,
    RenderOptions,
    container,
    labels,
    listening,
    metadata,
    pod_security,
    pod_volumes,
    pull_secrets,
    router_of,
    selector,
    service_object,
)
from mlpatterns.routing import istio
from mlpatterns.routing.table import compile_table
from mlpatterns.topology import Slot

__all__ = [
    "CONFIG",
    "Objects",
    "gateway_objects",
    "monitoring_objects",
    "routes_reader",
    "routing_objects",
]

Objects = list[dict[str, Any]]
CONFIG = "/etc/mlpatterns"


def _front_service(
    service: ModelService, pod_selector: dict[str, str], options: RenderOptions
) -> dict[str, Any]:
    name = service.metadata.name
    return service_object(service, name, labels(service, "router", name), pod_selector, options)


def gateway_objects(
    service: ModelService, options: RenderOptions, upstreams: dict[str, str]
) -> Objects:
    name = f"{service.metadata.name}-gateway"
    routes = f"{service.metadata.name}-routes"
    # the ModelService as the gateway reads it: no status, no namespace
    file = service.model_copy(update={"status": None})
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(routes, labels(service, "gateway", name), options),
        "data": {"modelservice.yaml": dump_model_service(file)},
    }
    front = topology.gateway()
    places = {
        # kubelet refreshes a mounted ConfigMap once a minute: the watch applies a switch
        Slot.ROUTES: [f"{CONFIG}/modelservice.yaml", "--watch-configmap", routes],
        Slot.HOST: ["0.0.0.0"],  # noqa: S104 (the pod's own address)
        Slot.PORT: [str(PORT)],
        Slot.UPSTREAMS: topology.upstream_options(upstreams),
    }
    # the gateway's own resources are the first version's; it is light next to a model
    first: Version = service.spec.versions[0]
    main = container(
        front.name,
        options.image,
        topology.expand(front.args, places.__getitem__),
        service,
        first,
        options,
        command=["mlpatterns"],
        mounts=[{"name": "routes", "mountPath": CONFIG, "readOnly": True}],
    )
    assert front.port is not None
    listening(main, front.port, PORT)
    pod = {
        "metadata": {"labels": labels(service, "gateway", name)},
        "spec": {
            "serviceAccountName": name,  # its identity in Istio's mTLS (AuthorizationPolicy)
            # its token reads its routes ConfigMap, and nothing else (the Role below)
            "automountServiceAccountToken": True,
            "securityContext": pod_security(),
            **pull_secrets(options),
            "containers": [main],
            "volumes": pod_volumes({"name": "routes", "configMap": {"name": routes}}),
        },
    }
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, labels(service, "gateway", name), options),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": selector(service, name)},
            "template": pod,
        },
    }
    gateway_service = service_object(
        service,
        name,
        {**labels(service, "gateway", name), METRICS_LABEL: "gateway"},
        selector(service, name),
        options,
    )
    account = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": metadata(name, labels(service, "gateway", name), options),
        "automountServiceAccountToken": False,
    }
    return [account, *routes_reader(service, name, routes, options), config_map, deployment,
            gateway_service]  # fmt: skip


def routes_reader(
    service: ModelService, account: str, routes: str, options: RenderOptions
) -> Objects:
    """A Role that reads the one routes ConfigMap, bound to the gateway's account."""
    name, own = f"{account}-routes", labels(service, "gateway", account)
    subject = {"kind": "ServiceAccount", "name": account}
    if options.namespace:
        subject["namespace"] = options.namespace
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": metadata(name, own, options),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [routes],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": metadata(name, own, options),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [subject],
    }
    return [role, binding]


def routing_objects(service: ModelService, options: RenderOptions) -> Objects:
    if service.spec.pattern == "batch":
        return []
    name = service.metadata.name
    table = compile_table(service)
    if router_of(service, options) == "gateway":
        upstreams = {v.name: f"http://{name}-{v.name}:8080" for v in service.spec.versions}
        *gateway, _ = gateway_objects(service, options, upstreams)
        front = _front_service(service, selector(service, f"{name}-gateway"), options)
        front["metadata"]["labels"][METRICS_LABEL] = "gateway"
        return [*gateway, front]  # clients reach the gateway as `<name>`
    routed = {SERVICE_LABEL: name, ROUTED_LABEL: "true"}
    objects: Objects = [_front_service(service, routed, options)]
    rendered = istio.render(table, options.namespace, f"{name}-gateway")
    for item in rendered:
        if options.owner:
            item["metadata"]["ownerReferences"] = [options.owner]
        item["metadata"]["labels"] = labels(service, "router", name)
    objects.extend(rendered)
    if table.needs_gateway:  # it decides; Istio routes on its header to `<name>`
        upstreams = {v.name: f"http://{name}:8080" for v in service.spec.versions}
        objects.extend(gateway_objects(service, options, upstreams))
    return objects


def monitoring_objects(service: ModelService, options: RenderOptions) -> Objects:
    """ServiceMonitors (the Prometheus Operator) for the model servers and the gateway."""
    if not options.monitoring or service.spec.pattern == "batch":
        return []
    name = service.metadata.name

    def monitor(suffix: str, kind: str, path: str) -> dict[str, Any]:
        return {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "ServiceMonitor",
            "metadata": metadata(f"{name}{suffix}", labels(service, "monitoring", name), options),
            "spec": {
                "selector": {"matchLabels": {SERVICE_LABEL: name, METRICS_LABEL: kind}},
                "endpoints": [{"port": "http", "path": path, "interval": "30s"}],
            },
        }

    found = [monitor("", "model", "/metrics")]
    if router_of(service, options) == "gateway" or compile_table(service).needs_gateway:
        found.append(monitor("-gateway", "gateway", "/-/metrics"))
    return found
