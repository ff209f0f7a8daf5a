"""A lint report as programs read it: JSON, and SARIF 2.1.0 for code-scanning UIs."""

from __future__ import annotations

from typing import Any

from mlpatterns import __version__
from mlpatterns.lint.rules import RULES, Finding
from mlpatterns.lint.scan import LintReport

__all__ = ["SARIF_SCHEMA", "as_json", "as_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
DOCS = "https://github.com/mlpatterns/mlpatterns/blob/main/docs/lint.md"


def _finding(finding: Finding) -> dict[str, Any]:
    return {
        "rule": finding.rule,
        "pattern": finding.pattern,
        "path": finding.path,
        "line": finding.line,
        "message": finding.message,
        "fix": finding.fix,
    }


def as_json(report: LintReport) -> dict[str, Any]:
    return {
        "findings": [_finding(f) for f in report.findings],
        "problems": report.problems,
        "notes": report.notes,
        "checked": report.checked,
    }


def as_sarif(report: LintReport) -> dict[str, Any]:
    rule_ids = list(RULES)
    rules = [
        {
            "id": rule.id,
            "name": rule.id.title().replace("-", ""),
            "shortDescription": {"text": rule.summary},
            "help": {"text": f"Avoided by: {rule.pattern}. Fix: {rule.fix}."},
            "helpUri": f"{DOCS}#{rule.id}",
            "defaultConfiguration": {"level": "warning"},
            "properties": {"family": rule.family, "pattern": rule.pattern},
        }
        for rule in RULES.values()
    ]
    results = [
        {
            "ruleId": finding.rule,
            "ruleIndex": rule_ids.index(finding.rule),
            "level": "warning",
            "message": {"text": f"{finding.message}. Fix: {finding.fix}."},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": finding.path},
                        "region": {"startLine": finding.line},
                    }
                }
            ],
        }
        for finding in report.findings
    ]
    notifications = [
        {"level": "error", "message": {"text": problem}} for problem in report.problems
    ] + [{"level": "note", "message": {"text": note}} for note in report.notes]
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mlpatterns-lint",
                        "version": __version__,
                        "informationUri": DOCS,
                        "rules": rules,
                    }
                },
                "results": results,
                "invocations": [
                    {
                        "executionSuccessful": not report.problems,
                        "toolExecutionNotifications": notifications,
                    }
                ],
            }
        ],
    }
