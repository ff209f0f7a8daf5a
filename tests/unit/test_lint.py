"""`mlpatterns lint`: each anti-pattern found in a failing example and not in a passing
one, at the right line, in every output format; the project's own files are clean."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mlpatterns.cli.main import app
from mlpatterns.lint.formats import as_json, as_sarif
from mlpatterns.lint.rules import RULES
from mlpatterns.lint.scan import lint_paths

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
ANNOTATED = """\
  annotations:
    mlpatterns.io/owner: iris-team
    mlpatterns.io/description: Iris species from four flower measurements.
"""


def service(spec: str, *, annotations: str = ANNOTATED, name: str = "iris") -> str:
    return (
        "apiVersion: mlpatterns.io/v1alpha1\nkind: ModelService\n"
        f"metadata:\n  name: {name}\n{annotations}spec:\n" + textwrap.indent(spec, "  ")
    )


ONE_VERSION = "versions:\n  - name: v1\n    model: {uri: 'models:/iris@production'}\n"
TWO_VERSIONS = (
    "versions:\n"
    "  - name: old\n    model: {uri: 'models:/iris@production'}\n"
    "  - name: new\n    model: {uri: 'models:/iris@candidate'}\n"
)
SERVING_RUN = 'RUN pip install --no-cache-dir "mlpatterns[serving]"'
ENTRY = 'ENTRYPOINT ["mlpatterns", "serve", "model"]'


def pipeline(images: list[str], uris: tuple[str, ...] = ()) -> str:
    """A compiled KFP pipeline with one step per image, each taking the last's output."""
    components: dict[str, Any] = {}
    executors: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    for index, image in enumerate(images):
        components[f"comp-s{index}"] = {"executorLabel": f"exec-s{index}"}
        executors[f"exec-s{index}"] = {"container": {"image": image, "command": ["run"]}}
        task: dict[str, Any] = {
            "componentRef": {"name": f"comp-s{index}"},
            "taskInfo": {"name": f"s{index}"},
        }
        if index:
            task["dependentTasks"] = [f"s{index - 1}"]
        tasks[f"s{index}"] = task
    for index, uri in enumerate(uris):
        components[f"comp-import{index}"] = {"executorLabel": f"exec-import{index}"}
        executors[f"exec-import{index}"] = {"importer": {"artifactUri": {"constant": uri}}}
    spec = {
        "pipelineInfo": {"name": "tangled"},
        "components": components,
        "deploymentSpec": {"executors": executors},
        "root": {"dag": {"tasks": tasks}},
        "schemaVersion": "2.1.0",
    }
    return json.dumps(spec, indent=1)


# rule, file name, failing content, passing content, the failing line's text
CASES = [
    (
        "no-logging",
        "svc.yaml",
        service(ONE_VERSION + "logging:\n  predictions: false\n"),
        service(ONE_VERSION + "logging:\n  predictions: true\n"),
        "predictions: false",
    ),
    (
        "nobody-knows",
        "svc.yaml",
        service(ONE_VERSION, annotations="  annotations: {mlpatterns.io/owner: iris-team}\n"),
        service(ONE_VERSION),
        "annotations:",
    ),
    (
        "all-in-one",
        "svc.yaml",
        service(
            "versions:\n  - name: iris\n    model: {uri: 'models:/iris@production'}\n"
            "  - name: wine\n    model: {uri: 'models:/wine@production'}\n"
            "traffic:\n  split: [{version: iris, weight: 50}, {version: wine, weight: 50}]\n"
        ),
        service(
            TWO_VERSIONS
            + "traffic:\n  split: [{version: old, weight: 50}, {version: new, weight: 50}]\n"
        ),
        "models:/wine@production",
    ),
    (
        "offline-only",
        "svc.yaml",
        service(TWO_VERSIONS + "traffic:\n  split: [{version: new, weight: 100}]\n"),
        service(
            TWO_VERSIONS
            + "traffic:\n  split: [{version: old, weight: 100}]\n"
            + "  shadow: {version: new, percent: 100}\n"
        ),
        "split:",
    ),
    (
        "offline-only",
        "svc.yaml",
        service("versions:\n  - name: v1\n    model: {uri: 'models:/iris@candidate'}\n"),
        service(ONE_VERSION),
        "- name: v1",
    ),
    (
        "training-code-in-serving",
        "Dockerfile",
        f"FROM python:3.11-slim\n{SERVING_RUN}\nRUN pip install scikit-learn==1.9\n{ENTRY}\n",
        f"FROM python:3.11-slim\n{SERVING_RUN}\n{ENTRY}\n",
        "RUN pip install scikit-learn",
    ),
    (
        "training-code-in-serving",
        "server.Dockerfile",
        f"FROM python:3.11-slim\n{SERVING_RUN}\nCOPY train.py /app/\n{ENTRY}\n",
        f"FROM python:3.11-slim\n{SERVING_RUN}\nCOPY model/ /model/\n{ENTRY}\n",
        "COPY train.py",
    ),
    (
        "training-code-in-serving",
        "pyproject.toml",
        '[project]\nname = "svc"\ndependencies = []\n[project.optional-dependencies]\n'
        'serving = [\n  "onnxruntime>=1.32",\n  "xgboost>=2",\n]\ntraining = ["xgboost>=2"]\n',
        '[project]\nname = "svc"\ndependencies = []\n[project.optional-dependencies]\n'
        'serving = [\n  "onnxruntime>=1.32",\n]\ntraining = ["xgboost>=2"]\n',
        '"xgboost>=2",',
    ),
    (
        "training-code-in-serving",
        "requirements-serving.txt",
        "onnxruntime==1.32.0\ntorch==2.9.0  # for the tokenizer\n",
        "onnxruntime==1.32.0\n",
        "torch==2.9.0",
    ),
    (
        "too-many-pipes",
        "pipeline.yaml",
        pipeline(["a:1", "b:1", "c:1", "d:1"]),
        pipeline(["a:1", "a:1", "a:1", "a:1"]),
        '"image": "d:1"',
    ),
    (
        "too-many-pipes",
        "pipeline.yaml",
        pipeline(["a:1"], ("s3://one/x.csv", "gs://two/y.csv", "https://three/z.csv")),
        pipeline(["a:1"], ("s3://one/x.csv",)),
        '"root"',
    ),
]


def line_of(text: str, needle: str) -> int:
    return next(n for n, line in enumerate(text.splitlines(), 1) if needle in line)


@pytest.mark.parametrize(
    ("rule", "name", "failing", "passing", "at"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_each_anti_pattern_is_found_where_it_is_and_only_there(
    tmp_path: Path, rule: str, name: str, failing: str, passing: str, at: str
) -> None:
    (tmp_path / "bad").mkdir()
    (tmp_path / "good").mkdir()
    (tmp_path / "bad" / name).write_text(failing)
    (tmp_path / "good" / name).write_text(passing)

    bad = lint_paths([tmp_path / "bad"])
    good = lint_paths([tmp_path / "good"])

    assert not bad.problems
    assert not good.problems
    assert [f.rule for f in bad.findings] == [rule], bad.findings
    assert good.findings == []
    [finding] = bad.findings
    assert finding.line == line_of(failing, at)
    assert finding.fix
    assert finding.pattern == RULES[rule].pattern  # type: ignore[index]


def test_a_serving_image_may_start_from_a_training_image_name_but_a_training_image_is_left_alone(
    tmp_path: Path,
) -> None:
    training = 'FROM python:3.11\nRUN pip install "mlpatterns[training]" scikit-learn\n'
    (tmp_path / "training.Dockerfile").write_text(training + 'CMD ["train", "--help"]\n')
    assert lint_paths([tmp_path]).findings == []


def test_an_extra_that_gathers_the_projects_own_extras_is_not_a_serving_set(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "svc"\n[project.optional-dependencies]\n'
        'dev = ["svc[serving,training]", "pytest"]\nserving = ["onnxruntime"]\n'
    )
    assert lint_paths([tmp_path]).findings == []


def test_the_base_dependencies_count_for_every_serving_extra(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "svc"\ndependencies = [\n  "lightgbm>=4",\n]\n'
        '[project.optional-dependencies]\nserving = ["onnxruntime"]\n'
    )
    [finding] = lint_paths([tmp_path]).findings
    assert finding.line == 4
    assert "installed with serving" in finding.message


def test_an_annotation_ignores_a_rule_for_one_service(tmp_path: Path) -> None:
    ignoring = ANNOTATED + "    mlpatterns.io/lint-ignore: no-logging, offline-only\n"
    text = service(ONE_VERSION + "logging: {predictions: false}\n", annotations=ignoring)
    (tmp_path / "svc.yaml").write_text(text)
    assert lint_paths([tmp_path]).findings == []


def test_chart_values_are_checked_as_the_service_they_render_but_a_charts_defaults_are_not(
    tmp_path: Path,
) -> None:
    values = "name: iris\nspec:\n  " + textwrap.indent(ONE_VERSION, "  ").strip() + "\n"
    (tmp_path / "chart").mkdir()
    (tmp_path / "chart" / "Chart.yaml").write_text("name: model-service\n")
    (tmp_path / "chart" / "values.yaml").write_text(values)
    (tmp_path / "iris-values.yaml").write_text(values)

    [finding] = lint_paths([tmp_path]).findings

    assert (finding.rule, finding.path, finding.line) == (
        "nobody-knows",
        str(tmp_path / "iris-values.yaml"),
        1,
    )
    # named on the command line, a chart's defaults are checked too
    assert len(lint_paths([tmp_path / "chart" / "values.yaml"]).findings) == 1


def test_what_cannot_be_checked_is_a_problem_not_a_pass(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("kind: [unclosed\n")
    (tmp_path / "invalid.yaml").write_text(service("versions: []\n"))

    explicit = lint_paths([tmp_path / "broken.yaml", tmp_path / "missing.yaml"])
    walked = lint_paths([tmp_path])

    assert len(explicit.problems) == 2
    assert "cannot read it as YAML" in explicit.problems[0]
    assert "no such file" in explicit.problems[1]
    # walking a folder, a file that is not YAML at all is not ours; a broken ModelService is
    [problem] = walked.problems
    assert "invalid.yaml is not a valid ModelService" in problem


def test_sarif_names_each_rule_and_each_finding_with_its_place(tmp_path: Path) -> None:
    text = service(ONE_VERSION + "logging: {predictions: false}\n")
    (tmp_path / "svc.yaml").write_text(text)
    line = line_of(text, "logging:")
    report = lint_paths([tmp_path], relative_to=tmp_path)

    sarif = as_sarif(report)
    plain = as_json(report)

    assert sarif["version"] == "2.1.0"
    [run] = sarif["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(RULES)
    [result] = run["results"]
    assert rules[result["ruleIndex"]]["id"] == result["ruleId"] == "no-logging"
    location = result["locations"][0]["physicalLocation"]
    assert location == {"artifactLocation": {"uri": "svc.yaml"}, "region": {"startLine": line}}
    assert run["invocations"][0]["executionSuccessful"] is True
    assert plain["findings"][0]["pattern"] == "Prediction log"
    assert plain["findings"][0]["line"] == line


def test_the_command_exits_0_clean_1_with_findings_2_when_it_could_not_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    monkeypatch.setenv("MLPATTERNS_HOME", str(tmp_path / "home"))
    (tmp_path / "good.yaml").write_text(service(ONE_VERSION))
    (tmp_path / "bad.yaml").write_text(service(ONE_VERSION + "logging: {predictions: false}\n"))

    clean = runner.invoke(app, ["lint", str(tmp_path / "good.yaml")])
    found = runner.invoke(app, ["lint", str(tmp_path), "--format", "json"])
    broken = runner.invoke(app, ["lint", str(tmp_path / "nothing-here")])
    sarif = runner.invoke(app, ["lint", str(tmp_path / "bad.yaml"), "--format", "sarif"])

    assert clean.exit_code == 0, clean.output
    assert "0 findings" in clean.output
    assert found.exit_code == 1
    assert [f["rule"] for f in json.loads(found.output)["findings"]] == ["no-logging"]
    assert broken.exit_code == 2
    assert sarif.exit_code == 1
    assert json.loads(sarif.output)["runs"][0]["results"][0]["ruleId"] == "no-logging"


def test_the_projects_own_services_pipelines_images_and_extras_are_clean() -> None:
    report = lint_paths([ROOT], relative_to=ROOT)
    assert report.problems == []
    assert report.findings == []
    checked = {
        "manifests/patterns/shadow-ab/modelservice.yaml",
        "charts/model-service/examples/online-ab.yaml",
        "pipelines/compiled/training_to_serving.yaml",
        "hack/images/serving.Dockerfile",
        "pyproject.toml",
    }
    assert checked <= set(report.checked)
    assert len(report.checked) >= 30
