"""The registry's contract, run against both stores: a local folder and a real MinIO."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from minio import Minio

from mlpatterns.registry.promotion import PromotionRefused, promote, promotions
from mlpatterns.registry.registry import IntegrityError, Registry
from mlpatterns.registry.s3 import S3Store
from mlpatterns.registry.store import ArtifactStore, ConflictError, LocalStore, NotFoundError
from mlpatterns.training.steps import TrainingRequest, run_directly
from tests.support.servers import S3Server

pytestmark = pytest.mark.integration


@pytest.fixture(params=["local", "s3"])
def store(
    request: pytest.FixtureRequest, tmp_path: Path, s3_server: S3Server
) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield LocalStore(tmp_path / "store")
        return
    client = Minio(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
    )
    yield S3Store(client, f"t-{abs(hash(request.node.nodeid)) % 10**12}", prefix="registry")


@pytest.fixture
def registry(store: ArtifactStore, monkeypatch: pytest.MonkeyPatch) -> Registry:
    # run_directly reads the registry from settings: point it at the same store
    monkeypatch.setattr(Registry, "from_settings", classmethod(lambda cls, settings: cls(store)))
    return Registry(store)


def test_store_round_trip_and_listing(store: ArtifactStore, tmp_path: Path) -> None:
    store.put("a/b/one.json", b"1")
    source = tmp_path / "payload.bin"
    source.write_bytes(b"x" * 100_000)
    store.put_file("a/two.bin", source)
    assert store.get("a/b/one.json").data == b"1"
    assert store.list("a/") == ["a/b/one.json", "a/two.bin"]
    assert store.exists("a/two.bin")
    assert not store.exists("a/three")
    store.get_file("a/two.bin", tmp_path / "copy" / "two.bin")
    assert (tmp_path / "copy" / "two.bin").read_bytes() == source.read_bytes()
    with pytest.raises(NotFoundError, match=r"missing\.json not found"):
        store.get("missing.json")


def test_conditional_write_detects_a_concurrent_change(store: ArtifactStore) -> None:
    store.put_if("alias.json", b"v1", None)
    with pytest.raises(ConflictError):
        store.put_if("alias.json", b"again", None)  # create-only: it exists now
    seen = store.get("alias.json").revision
    store.put_if("alias.json", b"v2", seen)
    with pytest.raises(ConflictError, match="changed since it was read"):
        store.put_if("alias.json", b"v3", seen)  # stale revision
    assert store.get("alias.json").data == b"v2"


def test_train_register_show(registry: Registry) -> None:
    version = run_directly(TrainingRequest(dataset="iris", name="iris", gate="accuracy>=0.8"))
    meta = registry.model("iris", version)
    assert meta.version == version
    assert version.startswith("0.1.0-")
    assert meta.ref == f"models:/iris/{version}"
    # everything the data/model versioning pattern asks a version to name
    assert meta.dataset.name == "iris"
    assert meta.dataset.rows == 150
    assert meta.split.test_rows_sha256
    assert meta.parameters == {}
    assert set(meta.metrics) >= {"accuracy", "f1_macro", "log_loss", "roc_auc"}
    assert meta.labels == ["setosa", "versicolor", "virginica"]
    assert [i.name for i in meta.signature.inputs] == ["input"]
    assert meta.frameworks["scikit-learn"]
    assert meta.pipeline_run_id == "direct"
    assert meta.profile is not None
    assert len(meta.profile.features) == 4
    assert set(meta.files) == {"model.onnx", "preprocess.onnx", "predictor.onnx"}
    data = registry.read_file(meta)
    assert len(data) == meta.size_bytes
    assert meta.sha256 == meta.files["model.onnx"]
    assert registry.aliases("iris") == {"candidate": version}
    assert registry.resolve("models:/iris@candidate") == meta
    snapshot = registry.dataset("iris", meta.dataset.sha256[:8])
    assert snapshot.schema_.label == "label"
    assert len(registry.dataset_bytes(snapshot)) > 0


def test_rerun_returns_the_same_version(registry: Registry) -> None:
    request = TrainingRequest(dataset="iris", name="iris", model_type="random_forest")
    first = run_directly(request)
    assert run_directly(request) == first
    assert [m.version for m in registry.versions("iris")] == [first]
    changed = run_directly(TrainingRequest(dataset="iris", name="iris", parameters='{"C": 0.5}'))
    assert changed != first


def test_gate_keeps_a_model_out_and_says_why(registry: Registry) -> None:
    assert run_directly(TrainingRequest(dataset="iris", name="iris", gate="accuracy>=1.01")) == ""
    assert registry.versions("iris") == []
    assert registry.runs()[-1]["reason"].endswith("fails the gate accuracy>=1.01")


def test_concurrent_alias_moves_one_wins_one_fails_clearly(registry: Registry) -> None:
    first = run_directly(TrainingRequest(dataset="iris", name="iris"))
    second = run_directly(TrainingRequest(dataset="iris", name="iris", model_type="svc"))
    registry.move_alias("iris", "production", first, expected="")
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def move(target: str) -> None:
        barrier.wait()
        try:
            registry.move_alias("iris", "production", target, expected=first)
            outcomes.append("moved")
        except ConflictError as error:
            outcomes.append(str(error))

    threads = [threading.Thread(target=move, args=(second,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert outcomes.count("moved") == 1
    [failure] = [o for o in outcomes if o != "moved"]
    assert "someone moved it first" in failure or "changed since it was read" in failure
    assert registry.aliases("iris")["production"] == second


def test_promotion_moves_an_alias_once_and_keeps_who_and_which_run(registry: Registry) -> None:
    first = run_directly(TrainingRequest(dataset="iris", name="iris"))
    record = promote(registry, "iris", "candidate", "production", by="ada@ci")
    assert (record.version, record.previous, record.run) == (first, None, "direct")
    assert registry.aliases("iris")["production"] == first
    with pytest.raises(PromotionRefused, match="already points at"):
        promote(registry, "iris", "candidate", "production", by="ada@ci")
    assert run_directly(TrainingRequest(dataset="iris", name="iris", gate="accuracy>=1.01")) == ""
    with pytest.raises(PromotionRefused, match=f"failed its gate.*still names {first}"):
        promote(registry, "iris", "candidate", "staging", by="ada@ci")
    promote(registry, "iris", first, "staging", by="bob")  # a version named outright
    second = run_directly(TrainingRequest(dataset="iris", name="iris", model_type="svc"))
    with pytest.raises(ConflictError, match="someone moved it first"):
        promote(registry, "iris", "candidate", "production", by="eve", expected="")
    moved = promote(registry, "iris", "candidate", "production", by="eve", expected=first)
    assert moved.previous == first
    assert [(p.alias, p.version, p.by) for p in promotions(registry, "iris")] == [
        ("production", first, "ada@ci"),
        ("staging", first, "bob"),
        ("production", second, "eve"),
    ]


def test_corrupt_artifact_is_refused(registry: Registry, store: ArtifactStore) -> None:
    meta = registry.model("iris", run_directly(TrainingRequest(dataset="iris", name="iris")))
    store.put(f"models/iris/blobs/{meta.sha256}", b"not the model")
    with pytest.raises(IntegrityError, match=r"is corrupt: sha256 .* does not match"):
        registry.read_file(meta)
    with pytest.raises(IntegrityError):
        registry.fetch(meta.ref, Path("/nonexistent/never-written"))


def test_fetch_from_the_registry_a_folder_and_s3(
    registry: Registry, s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    meta = registry.model("iris", run_directly(TrainingRequest(dataset="iris", name="iris")))
    fetched = tmp_path / "fetched"
    assert registry.fetch("models:/iris@candidate", fetched) == meta
    assert sorted(p.name for p in fetched.iterdir()) == [
        "metadata.json",
        "model.onnx",
        "predictor.onnx",
        "preprocess.onnx",
    ]
    assert registry.fetch(str(fetched), tmp_path / "copy") == meta  # a local folder

    monkeypatch.setenv("MLPATTERNS_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("MLPATTERNS_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("MLPATTERNS_S3_SECRET_KEY", s3_server.secret_key)
    monkeypatch.setenv("MLPATTERNS_S3_SECURE", "false")
    client = Minio(
        s3_server.endpoint,
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        secure=False,
    )
    shipped = S3Store(client, "shipped", prefix="iris/1")
    for path in fetched.iterdir():
        shipped.put_file(path.name, path)
    assert registry.fetch("s3://shipped/iris/1", tmp_path / "from-s3") == meta

    shipped.put("model.onnx", b"tampered")
    with pytest.raises(IntegrityError, match="does not match the sha256"):
        registry.fetch("s3://shipped/iris/1", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    with pytest.raises(NotFoundError):
        registry.fetch("s3://no-such-bucket/iris", tmp_path / "missing")
