"""The findings of the boundary analysis (:mod:`strangler.pg.schema.boundary`), as data."""

from __future__ import annotations

from dataclasses import dataclass, field

from strangler.errors import BadInput

__all__ = ["BLOCKING", "Boundary", "Reference"]

# Actions that stop the copy before anything changes: what strangler cannot carry, and code
# that would break on the service unless the spec accepts it (code: {reaches_behind: accept}).
BLOCKING = ("cannot carry", "breaks")


@dataclass(frozen=True)
class Reference:
    kind: str  # foreign key out | foreign key in | view | function | trigger | expression …
    source: str
    target: str
    breaks: str
    action: str  # dropped | kept | carried | left alone | cannot carry | breaks | accepted
    # how sure the finding is: certain (the catalogs say so), parsed (PostgreSQL's parser
    # found it in a function body), possible (a name in text: SQL built at run time)
    certainty: str = "certain"

    def to_dict(self) -> dict[str, str]:
        return {
            "kind": self.kind,
            "from": self.source,
            "to": self.target,
            "breaks": self.breaks,
            "action": self.action,
            "certainty": self.certainty,
        }


@dataclass
class Boundary:
    references: list[Reference] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[Reference]:
        return [r for r in self.references if r.action in BLOCKING]

    def raise_blocking(self) -> None:
        if self.blocking:
            lines = "; ".join(f"{r.source} → {r.target}: {r.breaks}" for r in self.blocking)
            accept = any(r.action == "breaks" for r in self.blocking)
            raise BadInput(
                f"the service boundary has references strangler cannot carry: {lines}",
                hint="'strangler plan' lists each finding with what to change (in the spec "
                "or the monolith)"
                + (
                    "; code that breaks on the service can be carried anyway with "
                    "code: {reaches_behind: accept} once you have changed it or accept the "
                    "failure"
                    if accept
                    else ""
                )
                + "; nothing was changed",
            )
