"""The model and dataset registry, on any `ArtifactStore`.

Layout in the store:

    datasets/<name>/<sha256>/data.csv        the snapshot, content-addressed
    datasets/<name>/<sha256>.json            its record, written last
    models/<name>/blobs/<sha256>             model files, content-addressed, immutable
    models/<name>/versions/<X.Y.Z>.json      a version's metadata, written last, create-only
    models/<name>/fingerprints/<fp>.json     rerun index: same inputs -> same version
    models/<name>/aliases/<alias>.json       alias -> version, moved by compare-and-swap

A version exists once its metadata exists; its files were written before it, so a
reader never sees a version whose files are missing or half-written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel

from mlpatterns.registry.metadata import (
    MODEL_FILE,
    AliasRecord,
    DatasetSchema,
    DatasetVersion,
    ModelDraft,
    ModelMetadata,
)
from mlpatterns.registry.references import (
    PathRef,
    RegistryRef,
    S3Ref,
    check_alias,
    check_name,
    parse_ref,
)
from mlpatterns.registry.store import (
    ArtifactStore,
    ConflictError,
    LocalStore,
    NotFoundError,
    StoreError,
    check_key,
    digest,
)
from mlpatterns.registry.versions import Version, next_version
from mlpatterns.settings import Settings, load_settings

__all__ = ["METADATA_FILE", "IntegrityError", "Registry", "model_fingerprint"]

METADATA_FILE = "metadata.json"


class IntegrityError(StoreError):
    """A stored file's digest does not match its metadata: it is refused, never loaded."""


def model_fingerprint(draft: ModelDraft, file_digests: Mapping[str, str]) -> str:
    """What identifies a model for reruns: its files, data, split, type and parameters."""
    identity = {
        "files": dict(sorted(file_digests.items())),
        "dataset": draft.dataset.sha256,
        "split": draft.split.model_dump(),
        "model_type": draft.model_type,
        "parameters": draft.parameters,
    }
    return digest(json.dumps(identity, sort_keys=True, default=str).encode())


def _dump(model: BaseModel) -> bytes:
    return model.model_dump_json(indent=2, by_alias=True).encode()


class Registry:
    def __init__(self, store: ArtifactStore) -> None:
        self.store = store

    @classmethod
    def from_settings(cls, settings: Settings) -> Registry:
        """S3/MinIO when an endpoint is configured, else a folder under MLPATTERNS_HOME."""
        if settings.uses_object_storage:
            from mlpatterns.registry.s3 import S3Store  # only S3 users need minio

            return cls(S3Store.from_settings(settings))
        return cls(LocalStore(settings.home / "registry"))

    # ---- datasets -------------------------------------------------------------

    def register_dataset(
        self, name: str, csv_bytes: bytes, schema: DatasetSchema, rows: int, source: str
    ) -> DatasetVersion:
        """Store a snapshot under its digest; registering the same bytes again is a no-op."""
        check_name(name, "dataset name")
        sha = digest(csv_bytes)
        record_key = f"datasets/{name}/{sha}.json"
        if self.store.exists(record_key):
            return self._dataset_at(record_key)
        self.store.put(f"datasets/{name}/{sha}/data.csv", csv_bytes)
        record = DatasetVersion(
            name=name,
            sha256=sha,
            format="csv",
            rows=rows,
            schema=schema,
            source=source,
            created_at=datetime.now(UTC),
        )
        self.store.put(record_key, _dump(record))
        return record

    def _dataset_at(self, key: str) -> DatasetVersion:
        return DatasetVersion.model_validate_json(self.store.get(key).data)

    def datasets(self, name: str | None = None) -> list[DatasetVersion]:
        prefix = f"datasets/{check_name(name, 'dataset name')}/" if name else "datasets/"
        keys = [k for k in self.store.list(prefix) if k.endswith(".json")]
        found = [self._dataset_at(k) for k in keys]
        return sorted(found, key=lambda d: (d.name, d.created_at))

    def dataset(self, name: str, sha_prefix: str) -> DatasetVersion:
        matches = [d for d in self.datasets(name) if d.sha256.startswith(sha_prefix)]
        if len(matches) != 1:
            what = "no" if not matches else "more than one"
            raise NotFoundError(f"{what} dataset {name} with digest starting {sha_prefix!r}")
        return matches[0]

    def dataset_bytes(self, dataset: DatasetVersion) -> bytes:
        data = self.store.get(f"datasets/{dataset.name}/{dataset.sha256}/data.csv").data
        if digest(data) != dataset.sha256:
            raise IntegrityError(f"dataset {dataset.ref} does not match its digest; refusing it")
        return data

    # ---- models ---------------------------------------------------------------

    def register_model(
        self, draft: ModelDraft, files: Mapping[str, bytes], *, release: int = 0
    ) -> ModelMetadata:
        """Store `files` (model.onnx among them) and claim the next version for `draft`.

        Registering the same files with the same data, split and parameters again
        returns the version registered before, so reruns are safe.
        """
        name = check_name(draft.name)
        if MODEL_FILE not in files:
            raise ValueError(f"a model version needs {MODEL_FILE}")
        digests = {file_name: digest(data) for file_name, data in files.items()}
        fingerprint = model_fingerprint(draft, digests)
        existing = self._by_fingerprint(name, fingerprint)
        if existing is not None:
            return existing
        for file_name, data in files.items():
            self.store.put(f"models/{name}/blobs/{digests[file_name]}", data)
        for _ in range(20):  # another writer may claim the same number first
            previous = [(Version.parse(m.version), m.signature) for m in self.versions(name)]
            version = next_version(
                previous,
                draft.signature,
                release=release,
                data_sha256=draft.dataset.sha256,
                split_label=draft.split.label,
            )
            metadata = ModelMetadata(
                **draft.model_dump(),
                version=str(version),
                sha256=digests[MODEL_FILE],
                size_bytes=len(files[MODEL_FILE]),
                files=digests,
                created_at=datetime.now(UTC),
                fingerprint=fingerprint,
            )
            key = f"models/{name}/versions/{version.core}.json"
            try:
                self.store.put_if(key, _dump(metadata), None)
            except ConflictError:
                continue
            self.store.put(
                f"models/{name}/fingerprints/{fingerprint}.json",
                json.dumps({"version": metadata.version}).encode(),
            )
            return metadata
        raise ConflictError(f"could not claim a version number for {name}: too many writers")

    def _by_fingerprint(self, name: str, fingerprint: str) -> ModelMetadata | None:
        key = f"models/{name}/fingerprints/{fingerprint}.json"
        if not self.store.exists(key):
            return None
        return self.model(name, json.loads(self.store.get(key).data)["version"])

    def models(self) -> list[str]:
        return sorted(
            {key.split("/")[1] for key in self.store.list("models/") if "/versions/" in key}
        )

    def versions(self, name: str) -> list[ModelMetadata]:
        keys = [
            k
            for k in self.store.list(f"models/{check_name(name)}/versions/")
            if k.endswith(".json")
        ]
        found = [ModelMetadata.model_validate_json(self.store.get(k).data) for k in keys]
        return sorted(found, key=lambda m: Version.parse(m.version))

    def model(self, name: str, version: str) -> ModelMetadata:
        core = Version.parse(version).core
        try:
            blob = self.store.get(f"models/{check_name(name)}/versions/{core}.json")
        except NotFoundError:
            raise NotFoundError(f"model {name} has no version {version}") from None
        metadata = ModelMetadata.model_validate_json(blob.data)
        if version != core and version != metadata.version:
            raise NotFoundError(f"model {name} has {metadata.version}, not {version}")
        return metadata

    def read_file(self, metadata: ModelMetadata, file_name: str = MODEL_FILE) -> bytes:
        """A version's file, refused when its bytes do not match the recorded digest."""
        expected = metadata.files.get(file_name)
        if expected is None:
            raise NotFoundError(f"{metadata.ref} has no {file_name}")
        data = self.store.get(f"models/{metadata.name}/blobs/{expected}").data
        actual = digest(data)
        if actual != expected:
            raise IntegrityError(
                f"{file_name} of {metadata.ref} is corrupt: sha256 {actual} does not match "
                f"the recorded {expected}; refusing to load it"
            )
        return data

    # ---- aliases ----------------------------------------------------------------

    def aliases(self, name: str) -> dict[str, str]:
        keys = self.store.list(f"models/{check_name(name)}/aliases/")
        records = [AliasRecord.model_validate_json(self.store.get(k).data) for k in keys]
        return {r.alias: r.version for r in records}

    def move_alias(
        self, name: str, alias: str, version: str, *, expected: str | None = None
    ) -> AliasRecord:
        """Point `alias` at `version` in one atomic write.

        With `expected`, the move happens only if the alias still points there (or,
        for "", does not exist yet); a concurrent mover makes it fail with ConflictError.
        """
        target = self.model(name, version)
        key = f"models/{name}/aliases/{check_alias(alias)}.json"
        try:
            current = self.store.get(key)
        except NotFoundError:
            current_record, revision = None, None
        else:
            current_record = AliasRecord.model_validate_json(current.data)
            revision = current.revision
        current_version = current_record.version if current_record else ""
        if expected is not None and expected != current_version:
            raise ConflictError(
                f"alias {name}@{alias} points at {current_version or 'nothing'}, "
                f"not {expected}: someone moved it first"
            )
        record = AliasRecord(
            alias=alias,
            version=target.version,
            moved_at=datetime.now(UTC),
            previous=current_version or None,
        )
        self.store.put_if(key, _dump(record), revision)
        return record

    # ---- training runs ------------------------------------------------------------

    def record_run(self, run_id: str, outcome: Mapping[str, object]) -> None:
        """Keep what a training run decided (registered or not, and why)."""
        record = {"run_id": run_id, "recorded_at": datetime.now(UTC).isoformat(), **outcome}
        self.store.put(f"runs/{check_key(run_id)}.json", json.dumps(record, indent=2).encode())

    def runs(self) -> list[dict[str, object]]:
        return [json.loads(self.store.get(k).data) for k in self.store.list("runs/")]

    # ---- references -------------------------------------------------------------

    def resolve(self, reference: str) -> ModelMetadata:
        """The metadata of a `models:/` reference (other forms are folders, see `fetch`)."""
        ref = parse_ref(reference)
        if not isinstance(ref, RegistryRef):
            raise ValueError(f"{reference} is not a registry reference (models:/...)")
        if ref.alias is not None:
            version = self.aliases(ref.name).get(ref.alias)
            if version is None:
                raise NotFoundError(f"model {ref.name} has no alias {ref.alias}")
            return self.model(ref.name, version)
        assert ref.version is not None
        return self.model(ref.name, ref.version)

    def fetch(self, reference: str, destination: Path) -> ModelMetadata:
        """Write a model's files and metadata.json into `destination`, every digest checked.

        `models:/` references resolve in this registry; `s3://bucket/prefix` and local
        folders must hold what a fetch writes (metadata.json and the files it names).
        """
        ref = parse_ref(reference)
        if isinstance(ref, RegistryRef):
            metadata = self.resolve(reference)
            files = {name: self.read_file(metadata, name) for name in metadata.files}
        else:
            source = self._folder_store(ref)
            try:
                metadata = ModelMetadata.model_validate_json(source.get(METADATA_FILE).data)
            except NotFoundError:
                raise NotFoundError(f"{reference} has no {METADATA_FILE}") from None
            files = {name: source.get(name).data for name in metadata.files}
            for name, data in files.items():
                if digest(data) != metadata.files[name]:
                    raise IntegrityError(
                        f"{name} in {reference} does not match the sha256 in its "
                        f"{METADATA_FILE}; refusing to load it"
                    )
        destination.mkdir(parents=True, exist_ok=True)
        folder = LocalStore(destination)
        for name, data in files.items():
            folder.put(name, data)
        folder.put(METADATA_FILE, _dump(metadata))
        return metadata

    def _folder_store(self, ref: S3Ref | PathRef) -> ArtifactStore:
        if isinstance(ref, PathRef):
            if not ref.path.is_dir():
                raise NotFoundError(f"{ref.path} is not a folder")
            return LocalStore(ref.path)
        from mlpatterns.registry.s3 import S3Store

        settings = load_settings()
        # only the endpoint and credentials: no request to, or bucket made in, the store
        configured = S3Store.from_settings(settings, create_bucket=False)
        return S3Store(configured.client, ref.bucket, ref.prefix, create_bucket=False)
