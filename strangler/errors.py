"""Every error strangler raises on purpose, and the exit code each one means.

The tree (exit code in brackets)::

    StranglerError                      [1]  something went wrong; the message says what to do
    ├── BadInput                        [2]  the operator asked for something malformed
    │   ├── SpecError                        the spec file: path, line, field path, what is allowed
    │   ├── UnknownService                   a service name the spec does not declare
    │   └── UnsafeInput                      a value strangler refuses to act on (hostile name, …)
    ├── CheckFailed                     [1]  a check, gate or verification said no
    │   ├── PhaseRefused                     the phase machine says what must come first
    │   ├── LockHeld                         another operator is acting on the service
    │   └── IncompleteStep                   a step began and never recorded its outcome (a crash)
    └── Unreachable                     [3]  an external system could not be reached or refused us
        └── DatabaseUnreachable              PostgreSQL: host down, wrong credentials, missing db

Foreign exceptions (psycopg, boto3, subprocess) are converted where they enter strangler, with
``raise … from exc``, so callers only ever catch ``StranglerError``. Messages never carry a
password: build them from redacted values (see :func:`strangler.secrets.redact_dsn`).
"""

from __future__ import annotations

__all__ = [
    "BadInput",
    "CheckFailed",
    "DatabaseUnreachable",
    "IncompleteStep",
    "LockHeld",
    "PhaseRefused",
    "SpecError",
    "StranglerError",
    "UnknownService",
    "Unreachable",
    "UnsafeInput",
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


class CheckFailed(StranglerError):
    exit_code = 1


class PhaseRefused(CheckFailed):
    pass


class LockHeld(CheckFailed):
    pass


class IncompleteStep(CheckFailed):
    pass


class Unreachable(StranglerError):
    exit_code = 3


class DatabaseUnreachable(Unreachable):
    pass
