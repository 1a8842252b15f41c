"""Every error strangler raises on purpose, and the exit code each one means.

The tree (exit code in brackets)::

    StranglerError                      [1]  something went wrong; the message says what to do
    ├── BadInput                        [2]  the operator asked for something malformed
    │   ├── SpecError                        the spec file: path, line, field path, what is allowed
    │   ├── UnknownService                   a service name the spec does not declare
    │   ├── UnsafeInput                      a value strangler refuses to act on (hostile name, …)
    │   └── FileProblem                      a file that cannot be read or written (path named)
    ├── CheckFailed                     [1]  a check, gate or verification said no
    │   ├── PhaseRefused                     the phase machine says what must come first
    │   ├── LockHeld                         another operator is acting on the service
    │   ├── IncompleteStep                   a step began and never recorded an outcome (a crash)
    │   ├── GateFailed                       a bake's gates failed; traffic was rolled back
    │   ├── ThrottleAbort                    the monolith crossed a critical limit; work stopped
    │   │   └── SnapshotAged                 the copy's snapshot reached copy.max_snapshot_age
    │   ├── ChunkTaken                       (internal) another worker holds the chunk
    │   └── RouterError                      the router answered, but not as strangler needs
    ├── SyncError                       [1]  online sync met something it cannot apply
    │   ├── SlotGone                         the slot it read from was dropped or lost
    │   ├── NoPosition                       the target has no stored position for the slot
    │   ├── SchemaChanged                    a moved table's columns changed under sync
    │   ├── DecodeError                      a pgoutput message strangler cannot read
    │   ├── Diverged                         a statement touched other rows than the fold expected
    │   ├── CannotFold                       (internal) a round replays in order instead of folding
    │   └── StreamLost                       (internal) the replication connection ended
    ├── DatabaseError                   [1]  PostgreSQL refused a statement (message kept)
    ├── CommandFailed                   [1]  an external command (git) failed
    └── Unreachable                     [3]  an external system could not be reached or refused us
        ├── DatabaseUnreachable              PostgreSQL: host down, wrong credentials, missing db
        ├── RouterUnreachable                the router's API (proxy admin, HAProxy socket, AWS)
        ├── MetricsUnreachable               the metric source (Prometheus, CloudWatch, S3)
        ├── KubeUnreachable                  the Kubernetes API
        ├── TerraformNotFound                no terraform binary or library
        └── TerraformFailed                  terraform init/plan/apply failed

Foreign exceptions (psycopg, sqlite3, boto3, subprocess, OS errors on files) are converted
where they enter strangler, with ``raise … from exc`` (:func:`translate` for the common
cases), so callers only ever catch ``StranglerError`` and no command ends in a traceback.
Messages never carry a password: build them from redacted values (see
:func:`strangler.secrets.redact_dsn`); :func:`translate` scrubs what it passes on.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "BadInput",
    "CannotFold",
    "CheckFailed",
    "ChunkTaken",
    "CommandFailed",
    "DatabaseError",
    "DatabaseUnreachable",
    "DecodeError",
    "Diverged",
    "FileProblem",
    "GateFailed",
    "IncompleteStep",
    "KubeUnreachable",
    "LockHeld",
    "MetricsUnreachable",
    "NoPosition",
    "PhaseRefused",
    "RouterError",
    "RouterUnreachable",
    "SchemaChanged",
    "SlotGone",
    "SnapshotAged",
    "SpecError",
    "StranglerError",
    "StreamLost",
    "SyncError",
    "TerraformFailed",
    "TerraformNotFound",
    "ThrottleAbort",
    "UnknownService",
    "Unreachable",
    "UnsafeInput",
    "file_problem",
    "translate",
]


class StranglerError(Exception):
    """Root of every error strangler raises on purpose.

    ``hint`` is the next thing the operator should do; it is printed on its own line.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": self.message,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class BadInput(StranglerError):
    exit_code = 2


class SpecError(BadInput):
    """A spec that cannot be used; ``problems`` holds one line per problem found."""

    def __init__(self, message: str, *, problems: list[str] | None = None, hint: str | None = None):
        self.problems = problems or []
        full = message if not self.problems else message + "\n" + "\n".join(self.problems)
        super().__init__(full, hint=hint)


class UnknownService(BadInput):
    pass


class UnsafeInput(BadInput):
    pass


class FileProblem(BadInput):
    """A file strangler was asked to read or write and cannot (the path is in the message)."""


class CheckFailed(StranglerError):
    exit_code = 1


class PhaseRefused(CheckFailed):
    pass


class LockHeld(CheckFailed):
    pass


class IncompleteStep(CheckFailed):
    pass


class GateFailed(CheckFailed):
    """A bake's gates failed; traffic was rolled back to the monolith."""


class ThrottleAbort(CheckFailed):
    """The monolith crossed a critical limit of the spec's ``throttle:`` (retained WAL, or a
    pause longer than ``max_pause``): the copy, verification or sync stopped between two
    chunks or rounds, with nothing half-done; run the same command again once it recovers."""


class SnapshotAged(ThrottleAbort):
    """The copy's snapshot reached ``copy.max_snapshot_age``: the copy stopped between two
    chunks so the monolith's vacuum can move on. ``strategy: copy``: run it again; an online
    copy in catch-up mode takes a new snapshot and goes on by itself."""


class ChunkTaken(CheckFailed):
    """Another worker claimed the chunk first (caught inside the worker, never shown)."""


class RouterError(CheckFailed):
    """The router answered, but is not in the shape strangler needs or did not apply a change."""


class SyncError(StranglerError):
    """Online sync met something it cannot apply; the round rolled back, nothing half-done."""


class SlotGone(SyncError):
    """The slot a sync was reading from was dropped (cutover, rollback or --stop), or the
    server invalidated it (``max_slot_wal_keep_size``): no change can be read from it again."""


class NoPosition(SyncError):
    """The target has no stored position for the slot (sync was stopped or never attached)."""


class SchemaChanged(SyncError):
    """A moved table's columns changed on the source while sync ran."""


class DecodeError(SyncError):
    """A pgoutput message strangler cannot read."""


class Diverged(SyncError):
    """A set-based statement of a round touched other rows than the fold expected."""


class CannotFold(SyncError):
    """A round's changes to a table cannot be folded to one per key; they are replayed in
    order instead (caught inside the applier, never shown). ``at``: the index of the one
    change that needs order (what comes before and after it still folds); None when none of
    the table's changes can be folded."""

    def __init__(self, message: str, *, at: int | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.at = at


class StreamLost(SyncError):
    """The replication connection ended (the server went away, or the slot's holder was
    ended by a cutover or ``sync --stop``); the applier reconnects."""


class DatabaseError(StranglerError):
    """PostgreSQL refused a statement strangler sent; the message is PostgreSQL's."""


class CommandFailed(StranglerError):
    """An external command strangler ran (git) failed."""


class Unreachable(StranglerError):
    exit_code = 3


class DatabaseUnreachable(Unreachable):
    pass


class RouterUnreachable(Unreachable):
    """The router (proxy admin API, HAProxy socket, AWS) could not be reached."""


class MetricsUnreachable(Unreachable):
    """The metric source could not be read; the gate's verdict for the interval is ``error``."""


class KubeUnreachable(Unreachable):
    """The Kubernetes API could not be reached."""


class TerraformNotFound(Unreachable):
    """Neither the terraform library nor a terraform binary is available."""


class TerraformFailed(Unreachable):
    """terraform ran and exited with an error; the message carries its ``Error:`` lines."""

    def __init__(self, message: str, *, exit_code_tf: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code_tf = exit_code_tf


def file_problem(path: Path | str, exc: OSError, doing: str) -> FileProblem:
    """A FileProblem naming ``path``, what strangler was doing, and why the OS refused."""
    why = exc.strerror or type(exc).__name__
    return FileProblem(
        f"cannot {doing} {path}: {why}",
        hint="check the path exists and is writable by this user, and that the disk has room",
    )


@contextlib.contextmanager
def translate(where: str, *, hint: str | None = None) -> Iterator[None]:
    """Convert the foreign exceptions a block can raise into the tree above.

    ``where`` names what was being talked to ("the monolith", "the journal at …"). psycopg's
    connection errors become :class:`DatabaseUnreachable` (exit 3), its other errors
    :class:`DatabaseError`; sqlite3's become :class:`DatabaseError` (or unreachable when the
    file cannot be opened); OS errors on files become :class:`FileProblem` (exit 2).
    """
    from strangler.secrets import scrub

    try:
        yield
    except StranglerError:
        raise
    except sqlite3.OperationalError as exc:
        text = scrub(str(exc))
        if "unable to open" in text or "readonly" in text or "disk" in text:
            raise FileProblem(f"{where}: {text}", hint=hint or "check the path and disk") from exc
        raise DatabaseError(f"{where}: {text}", hint=hint) from exc
    except sqlite3.Error as exc:
        raise DatabaseError(f"{where}: {scrub(str(exc))}", hint=hint) from exc
    except OSError as exc:
        if exc.filename is not None:
            raise file_problem(exc.filename, exc, "use") from exc
        raise Unreachable(f"{where}: {scrub(str(exc))}", hint=hint) from exc
    except Exception as exc:
        import psycopg

        state = getattr(exc, "sqlstate", None)
        lost = state is None or state.startswith(("08", "57P"))
        if isinstance(exc, psycopg.OperationalError) and lost:
            raise DatabaseUnreachable(
                f"lost or could not reach {where}: {scrub(str(exc)).strip()}",
                hint=hint or "check the server is up and the DSN in the spec, then try again",
            ) from exc
        if isinstance(exc, psycopg.Error):
            first = scrub(str(exc)).strip().splitlines()[0] if str(exc).strip() else repr(exc)
            raise DatabaseError(
                f"{where} refused a statement: {first}",
                hint=hint or "the message above is PostgreSQL's; check the role's privileges",
            ) from exc
        raise
