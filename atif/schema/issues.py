"""What validation and reading report: an :class:`Issue` at a JSON pointer, with a stable code."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Issue", "escape_pointer"]


@dataclass(frozen=True, slots=True)
class Issue:
    """One problem found in a document."""

    path: str
    """JSON pointer to the offending value (``""`` is the whole document)."""
    code: str
    """Stable machine-readable code (see ``CODES``; shape errors are ``schema.<type>``)."""
    message: str
    """Human-readable explanation."""
    severity: Literal["error", "warning"] = "error"
    """``error`` makes the document invalid; ``warning`` does not."""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form."""
        return {"path": self.path, "code": self.code, "severity": self.severity, "message": self.message}

    def __str__(self) -> str:
        return f"{self.path or '/'}: {self.severity} [{self.code}] {self.message}"


def escape_pointer(token: object) -> str:
    """Escape one JSON-pointer reference token."""
    return str(token).replace("~", "~0").replace("/", "~1")
