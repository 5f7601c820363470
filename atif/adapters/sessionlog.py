"""What the coding-agent session-log adapters share (Claude Code, Codex CLI): one JSONL file per session.

A session log is a JSON Lines file whose records carry a marker of their tool; a folder of them
(however deep: ``~/.claude/projects``, ``~/.codex/sessions/YYYY/MM/DD``) converts to one trial
per session file. :class:`SessionLogAdapter` does the sniffing, the folder walk and the
tolerant reading (a line cut off or not JSON is reported with its number, and the good lines
still convert); a subclass says what its records look like (``_marker``) and converts one
file's records (``_convert_session``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from atif.adapters.base import Converted, ConvertOptions, Failure, Sniff
from atif.adapters.jsonio import iter_jsonl_lenient, sniff_jsonl_first
from atif.errors import AtifError
from atif.schema.jsonio import load_json

__all__ = ["Line", "SessionLogAdapter"]

SNIFF_LINES = 20
"""Records looked at when sniffing a file (the first ones may be summaries or snapshots)."""
SNIFF_FILES = 5
"""Session files looked at when sniffing a folder."""

Line = tuple[int, Any, str | None]
"""``(line number, record or None, parse error or None)``."""


class SessionLogAdapter:
    """Base of the session-log adapters: sniff, walk folders, read JSONL leniently, one trial per file."""

    name = ""
    description = ""

    def _marker(self, record: Any) -> str | None:
        """Why ``record`` is one of this tool's records (a short reason), or None."""
        raise NotImplementedError

    def _is_session_file(self, path: Path) -> bool:
        """Whether a file found in a folder is a session of its own (not, e.g., a subagent transcript)."""
        return path.suffix.lower() == ".jsonl"

    def _convert_session(self, path: Path, lines: list[Line], options: ConvertOptions) -> Iterator[Converted | Failure]:
        raise NotImplementedError

    def _sniff_file(self, path: Path) -> Sniff:
        if path.suffix.lower() not in (".jsonl", ".ndjson"):
            return Sniff(False, "not a .jsonl file")
        _, why = sniff_jsonl_first(path)
        if why:
            return Sniff(False, why)
        for record in self._head(path):
            reason = self._marker(record)
            if reason:
                return Sniff(True, reason)
        return Sniff(False, f"no {self.description} record among the first {SNIFF_LINES} lines")

    @staticmethod
    def _head(path: Path) -> Iterator[Any]:
        try:
            with path.open("rb") as fh:
                for n, line in enumerate(fh):
                    if n >= SNIFF_LINES:
                        return
                    if line.strip():
                        doc, issues = load_json(line)
                        if not any(i.severity == "error" for i in issues):
                            yield doc
        except OSError:
            return

    def session_files(self, folder: Path) -> list[Path]:
        """The session files under ``folder`` (any depth), sorted; hidden entries are passed over."""
        found = [p for p in folder.rglob("*.jsonl")
                 if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
        return sorted(p for p in found if self._is_session_file(p))

    def sniff(self, path: Path) -> Sniff:
        """Accept a session file, or a folder whose first session files are this tool's."""
        if path.is_file():
            return self._sniff_file(path)
        if not path.is_dir():
            return Sniff(False, "not a file or directory")
        files = self.session_files(path)
        if not files:
            return Sniff(False, "no .jsonl session files in this directory")
        for f in files[:SNIFF_FILES]:
            verdict = self._sniff_file(f)
            if not verdict.ok:
                return Sniff(False, f"{f.name}: {verdict.reason}")
        return Sniff(True, f"a folder of {len(files)} {self.description} session file(s)")

    def convert(self, path: Path, options: ConvertOptions) -> Iterator[Converted | Failure]:
        """One trial per session file (each file of a folder in turn; a bad file never stops the rest)."""
        for f in self.session_files(path) if path.is_dir() else [path]:
            try:
                lines = list(iter_jsonl_lenient(f))
                if not any(doc is not None for _, doc, _ in lines):
                    bad = next((f"line {n}: {why}" for n, _, why in lines if why), "an empty file")
                    yield Failure(str(f), f"no readable record ({bad})")
                    continue
                yield from self._convert_session(f, lines, options)
            except AtifError as exc:
                yield Failure(str(f), str(exc))
