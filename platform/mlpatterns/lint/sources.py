"""Reading the files the lint checks, keeping where each value came from: YAML
documents with the line of any field path, Dockerfile instructions with theirs, and
the line of a text in a file."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["Document", "FieldPath", "line_of_text", "yaml_documents"]

FieldPath = Sequence[str | int]


@dataclass(frozen=True)
class Document:
    """One YAML document: its data and its node tree, for lines."""

    data: Any
    node: yaml.Node
    start_line: int

    def line(self, path: FieldPath) -> int:
        """The 1-based line of `path` (keys and list indexes), or of the deepest part of
        it that exists."""
        node, line = self.node, self.start_line
        for part in path:
            found = _child(node, part)
            if found is None:
                break
            key, node = found
            line = key.start_mark.line + 1
        return line


def _child(node: yaml.Node, part: str | int) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        item = node.value[part]
        return item, item
    return None


def yaml_documents(text: str) -> list[Document]:
    """Every document of a YAML stream; raises yaml.YAMLError when it is not YAML."""
    loader = yaml.SafeLoader(text)
    found = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            found.append(Document(loader.construct_document(node), node, node.start_mark.line + 1))
    finally:
        loader.dispose()
    return found


def line_of_text(text: str, needle: str, after: int = 0) -> int:
    """The 1-based line where `needle` first appears at or after line `after`; 1 if
    it does not."""
    for number, line in enumerate(text.splitlines(), start=1):
        if number >= after and needle in line:
            return number
    return 1
