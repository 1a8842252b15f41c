"""``strangler rollback SERVICE --traffic|--writes|--schema|--k8s|--terraform RESOURCE``."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from strangler.cli.app import (
    UNDO,
    DryRunOpt,
    OperatorOpt,
    Output,
    OutputOpt,
    SpecOpt,
    YesOpt,
    app,
    confirm,
    console,
    emit,
    session,
)
from strangler.errors import BadInput
from strangler.steps.rollbacks import ROLLBACKS, RollbackRequest, rollback_for


@app.command(rich_help_panel=UNDO)
def rollback(
    service: Annotated[str, typer.Argument(help="The service.")],
    traffic: Annotated[
        bool, typer.Option("--traffic", help="All traffic to the monolith now.")
    ] = False,
    writes: Annotated[bool, typer.Option("--writes", help="Writes back to the monolith.")] = False,
    schema: Annotated[
        bool, typer.Option("--schema", help="Drop the service schema (only if never written).")
    ] = False,
    k8s: Annotated[
        bool, typer.Option("--k8s", help="Deployment back to its previous revision.")
    ] = False,
    to_revision: Annotated[
        int | None, typer.Option("--to-revision", help="With --k8s: this revision.")
    ] = None,
    terraform: Annotated[
        str | None, typer.Option("--terraform", help="Destroy this Terraform resource address.")
    ] = None,
    reason: Annotated[str, typer.Option(help="Why; journaled and used in commit messages.")] = "",
    yes: YesOpt = False,
    file: SpecOpt = None,
    operator: OperatorOpt = None,
    dry_run: DryRunOpt = False,
    output: OutputOpt = Output.text,
) -> None:
    """Undo one layer of the migration, as the runbook's rollback procedures do.

    Examples:
      strangler rollback order_service --traffic --reason 'p99 doubled'
      strangler rollback order_service --writes --reason 'bad migration in the service'
      strangler rollback order_service --schema --reason 'start again' --yes
    """
    asked = {
        "traffic": traffic,
        "writes": writes,
        "schema": schema,
        "k8s": k8s,
        "terraform": terraform is not None,
    }
    chosen = [k for k in ROLLBACKS if asked.get(k)]
    if len(chosen) != 1:
        raise BadInput(
            "choose exactly one of --traffic, --writes, --schema, --k8s, --terraform RESOURCE",
            hint="roll back one layer at a time, outermost first: traffic, writes, schema",
        )
    if not reason and not dry_run:
        raise BadInput("a rollback needs --reason '…' (it is journaled)")
    step = rollback_for(chosen[0])
    request = RollbackRequest(
        reason=reason, dry_run=dry_run, yes=yes, target=terraform, to_revision=to_revision
    )
    with session(file, operator) as s:
        rb = s.runbook(service)
        if chosen[0] == "schema" and not dry_run:
            question = (
                f"move the tables of {service} back into the monolith's schema and drop the "
                "compatibility views?"
                if rb.service.strategy == "move"
                else f"drop the schema of {service} on its target (and the role strangler made)?"
            )
            confirm(question, yes=yes)
        done = step.run(rb, request)
    result: dict[str, Any] = done.to_dict() if hasattr(done, "to_dict") else dict(done)
    data = {"service": service, "rollback": chosen[0], "dry_run": dry_run, **result}

    def render() -> None:
        from strangler.render.status import describe_details

        what = "would roll back" if dry_run else "rolled back"
        console.print(
            f"{service}: {what} --{chosen[0]}: {describe_details(result, limit=None)}",
            markup=False,
        )

    emit(output, data, render)
