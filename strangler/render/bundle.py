"""``strangler report``'s bundle on disk: Markdown, HTML, the evidence as JSON, and a manifest.

``MANIFEST.sha256`` lists each file with its sha256 in the format ``sha256sum -c`` checks, so
anyone holding the bundle (and the manifest's own digest, which the command prints for the
ticket) can tell whether a file was changed after it was written.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from strangler.errors import file_problem
from strangler.render.report_html import render_html
from strangler.render.report_md import render_markdown
from strangler.secrets import scrub
from strangler.steps.evidence import Evidence

__all__ = ["MANIFEST", "Bundle", "write_bundle"]

MANIFEST = "MANIFEST.sha256"


@dataclass(frozen=True)
class Bundle:
    directory: Path
    files: dict[str, str]  # file name → sha256
    manifest_sha256: str

    def to_dict(self) -> dict[str, object]:
        return {
            "directory": str(self.directory),
            "files": self.files,
            "manifest": MANIFEST,
            "manifest_sha256": self.manifest_sha256,
        }


def _write(path: Path, text: str) -> str:
    data = text.encode()
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise file_problem(path, exc, "write the report to") from exc
    return hashlib.sha256(data).hexdigest()


def write_bundle(ev: Evidence, directory: Path) -> Bundle:
    """Write the four files into ``directory`` (created if needed) and return their digests."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_problem(directory, exc, "create the report folder") from exc
    texts = {
        "report.md": render_markdown(ev),
        "report.html": render_html(ev),
        "evidence.json": json.dumps(ev.to_dict(), indent=2, sort_keys=True) + "\n",
    }
    # Passwords never reach a report: whatever slipped into the journal is scrubbed again.
    files = {name: _write(directory / name, scrub(text)) for name, text in texts.items()}
    manifest = "".join(f"{digest}  {name}\n" for name, digest in sorted(files.items()))
    return Bundle(directory, files, _write(directory / MANIFEST, manifest))
