"""The operator's edge to the API server (the kubernetes client's dynamic API):
discovery, list by label, server-side apply under one field manager, delete, and
the status subresource."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client, config
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from kubernetes.dynamic.resource import Resource

from mlpatterns.operator.reconcile import FIELD_MANAGER, MANAGED_KINDS, Changes, Key
from mlpatterns.render.common import SERVICE_LABEL

__all__ = ["Kube", "load_client"]

GROUP, VERSION, PLURAL = "mlpatterns.io", "v1alpha1", "modelservices"


def load_client() -> client.ApiClient:
    """In a pod, its ServiceAccount; elsewhere, the kubeconfig (KUBECONFIG)."""
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    return client.ApiClient()


class Kube:
    def __init__(self, api_client: client.ApiClient | None = None) -> None:
        self.dynamic = DynamicClient(api_client or load_client())
        self._resources: dict[tuple[str, str], Resource | None] = {}

    def resource(self, api_version: str, kind: str) -> Resource | None:
        """The API resource, or None when the cluster does not serve it (no CRD)."""
        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = self.dynamic.resources.get(
                    api_version=api_version, kind=kind
                )
            except ResourceNotFoundError:
                self._resources[key] = None
        return self._resources[key]

    def serves(self, api_version: str, kind: str) -> bool:
        return self.resource(api_version, kind) is not None

    def owned(self, namespace: str, service: str) -> list[dict[str, Any]]:
        """Every object labelled as this ModelService's, of the kinds the operator makes,
        as the API server's cache has them (possibly a moment behind)."""
        selector = f"{SERVICE_LABEL}={service},app.kubernetes.io/managed-by=mlpatterns"
        served = [
            (api_version, kind, resource)
            for api_version, kind in MANAGED_KINDS
            if (resource := self.resource(api_version, kind)) is not None
        ]

        def listed(entry: tuple[str, str, Resource]) -> list[dict[str, Any]]:
            api_version, kind, resource = entry
            items = resource.get(
                namespace=namespace, label_selector=selector, resource_version="0"
            ).to_dict()
            return [{"apiVersion": api_version, "kind": kind, **i} for i in items.get("items", [])]

        # from the API server's cache (resourceVersion 0): a consistent LIST right
        # after a write waits ~100 ms for that cache; the caller makes up for its lag
        with ThreadPoolExecutor(max_workers=len(served) or 1) as pool:
            return [item for items in pool.map(listed, served) for item in items]

    def get(self, api_version: str, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One object, or None when it or its kind does not exist."""
        resource = self.resource(api_version, kind)
        if resource is None:
            return None
        try:
            found: dict[str, Any] = resource.get(name=name, namespace=namespace).to_dict()
        except NotFoundError:
            return None
        return found

    def deployments(self, namespace: str, service: str) -> list[dict[str, Any]]:
        return self._labelled("apps/v1", "Deployment", namespace, service)

    def pods(self, namespace: str, service: str) -> list[dict[str, Any]]:
        return self._labelled("v1", "Pod", namespace, service)

    def _labelled(
        self, api_version: str, kind: str, namespace: str, service: str
    ) -> list[dict[str, Any]]:
        """Objects of `kind` labelled as this ModelService's, from the API server's cache."""
        resource = self.resource(api_version, kind)
        assert resource is not None
        selector = f"{SERVICE_LABEL}={service},app.kubernetes.io/managed-by=mlpatterns"
        items: list[dict[str, Any]] = (
            resource.get(namespace=namespace, label_selector=selector, resource_version="0")
            .to_dict()
            .get("items", [])
        )
        return items

    def apply(self, namespace: str, changes: Changes) -> None:
        for item in changes.apply:
            resource = self.resource(item["apiVersion"], item["kind"])
            if resource is None:
                raise LookupError(
                    f"the cluster does not serve {item['kind']} ({item['apiVersion']}); "
                    "install its CRDs or choose another router"
                )
            self.dynamic.server_side_apply(
                resource,
                body=item,
                namespace=namespace,
                field_manager=FIELD_MANAGER,
                force_conflicts=True,
            )
        for api_version, kind, name in changes.delete:
            self.delete(namespace, (api_version, kind, name))

    def delete(self, namespace: str, key: Key) -> None:
        api_version, kind, name = key
        resource = self.resource(api_version, kind)
        if resource is None:
            return
        with contextlib.suppress(NotFoundError):  # already gone is what we wanted
            resource.delete(name=name, namespace=namespace, propagation_policy="Background")

    def patch_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        client.CustomObjectsApi(self.dynamic.client).patch_namespaced_custom_object_status(
            GROUP, VERSION, namespace, PLURAL, name, {"status": status}
        )

    def annotate(self, namespace: str, name: str, annotations: dict[str, str | None]) -> None:
        """Merge `annotations` into a ModelService's (None removes one)."""
        client.CustomObjectsApi(self.dynamic.client).patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, {"metadata": {"annotations": annotations}}
        )

    def get_model_service(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            found: dict[str, Any] = client.CustomObjectsApi(
                self.dynamic.client
            ).get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return found
