"""Regular expressions in RE2 syntax, as Istio's Envoy evaluates them: linear time in
the input, so a rule's regex cannot be turned against the gateway (no backtracking,
hence no lookaround or backreferences). A regex RE2 rejects is a validation error,
the same for both routers."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import re2

__all__ = ["RegexError", "compile_regex", "fullmatch"]

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # the message is raised, not printed


class RegexError(ValueError):
    pass


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> Any:
    """The compiled RE2 pattern, or `RegexError` saying why RE2 refuses it."""
    try:
        return re2.compile(pattern, options=_OPTIONS)
    except re2.error as error:
        reason = error.args[0].decode() if isinstance(error.args[0], bytes) else str(error)
        raise RegexError(
            f"regex {pattern!r} is not RE2 syntax ({reason}); Istio and the gateway use RE2: "
            "no lookaround, no backreferences"
        ) from None


def fullmatch(pattern: str, value: str) -> bool:
    return compile_regex(pattern).fullmatch(value) is not None
