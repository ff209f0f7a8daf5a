"""Files in the repository that are generated, never edited by hand: the CRD (in
the chart and the Kustomize base), the model-service chart's values schema and
examples (from manifests/patterns), the training pipelines as KFP objects, and the
CLI reference (docs/cli.md).
`hack/generate` writes them; a test fails when a committed one differs."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

import yaml

from mlpatterns.api.load import load_model_service
from mlpatterns.api.schema import crd, openapi_v3_schema
from mlpatterns.cli.main import app as main_app
from mlpatterns.cli.pipeline_files import HEADER, documents, pipeline_manifest_files
from mlpatterns.cli.reference import cli_reference

__all__ = ["expected_files", "main", "model_service_values_schema"]


def _draft7(node: Any) -> Any:
    """OpenAPI 3.0's boolean exclusive bounds as JSON Schema draft 7's numeric ones
    (what Helm checks values with); `nullable` is left, draft 7 ignores it."""
    if isinstance(node, list):
        return [_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _draft7(value) for key, value in node.items()}
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if result.get(exclusive) is True:
            result[exclusive] = result.pop(bound)
    return result


def model_service_values_schema() -> dict[str, Any]:
    spec = _draft7(copy.deepcopy(openapi_v3_schema()["properties"]["spec"]))
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "model-service chart values: one ModelService",
        "type": "object",
        "required": ["spec"],
        "additionalProperties": False,
        "properties": {
            "name": {
                "type": "string",
                "description": "The ModelService's name (default: the release's).",
                "pattern": r"^([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)?$",
            },
            "labels": {"type": "object", "additionalProperties": {"type": "string"}},
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            "spec": spec,
            "tests": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "image": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "repository": {"type": "string", "minLength": 1},
                            "tag": {"type": "string"},
                            "digest": {"type": "string", "pattern": "^(sha256:[0-9a-f]{64})?$"},
                        },
                    },
                    "imagePullSecrets": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["name"],
                            "properties": {"name": {"type": "string", "minLength": 1}},
                        },
                    },
                },
            },
        },
    }


def expected_files(root: Path) -> dict[Path, str]:
    crd_text = documents([crd()], "mlpatterns.api.schema")
    files = {
        root / "charts/mlpatterns/crds/modelservices.mlpatterns.io.yaml": crd_text,
        root / "manifests/base/crd.yaml": crd_text,
        root / "charts/model-service/values.schema.json": json.dumps(
            model_service_values_schema(), indent=2
        )
        + "\n",
    }
    for manifest in sorted((root / "manifests/patterns").glob("*/modelservice.yaml")):
        service = load_model_service(manifest)
        meta = service.metadata
        values = {
            "name": meta.name,
            **({"labels": meta.labels} if meta.labels else {}),
            **({"annotations": meta.annotations} if meta.annotations else {}),
            "spec": service.spec.model_dump(mode="json", by_alias=True, exclude_none=True),
        }
        source = manifest.relative_to(root)
        files[root / "charts/model-service/examples" / f"{manifest.parent.name}.yaml"] = (
            HEADER.format(source=source) + yaml.safe_dump(values, sort_keys=False)
        )
    files[root / "docs/cli.md"] = cli_reference(main_app)
    compiled = root / "pipelines/compiled"
    files.update(pipeline_manifest_files(compiled, root / "manifests/pipelines"))
    for path, text in pipeline_manifest_files(
        compiled, root / "charts/mlpatterns/files/pipelines"
    ).items():
        if path.name != "kustomization.yaml":
            files[path] = text
    return files


def main(argv: list[str]) -> int:
    root = Path.cwd()
    check = "--check" in argv
    stale = []
    for path, text in expected_files(root).items():
        current = path.read_text() if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(root))
        if not check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'stale' if check else 'wrote'} {path}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
