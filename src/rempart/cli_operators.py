"""``rempart operators …``: the console's operators (thin over ``rempart.console``)."""

from __future__ import annotations

import getpass
from typing import Annotated

import typer

from rempart.cli import PasswordStdinOption, err, open_services, out, read_password
from rempart.store.engine import session_scope

operators_app = typer.Typer(help="Console operators: the insurer's security staff.")


@operators_app.command("create")
def operators_create(
    login: Annotated[str, typer.Option(help="The operator's login.")],
    role: Annotated[str, typer.Option(help="analyst, dpo or admin.")],
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Create a console operator; prints the TOTP provisioning URI (otpauth://), once."""
    password = read_password(password_stdin)
    with open_services() as services, session_scope(services.sessions) as session:
        created = services.operators.create(
            session, login=login, role=role, password=password, created_by=getpass.getuser()
        )
    err.print(f"operator {created.login} created with the role {created.role}")
    out.print(created.otpauth_uri, highlight=False, soft_wrap=True)


@operators_app.command("list")
def operators_list() -> None:
    """The operators, their role and status."""
    with open_services() as services, services.sessions() as session:
        for operator in services.operators.list(session):
            out.print(f"{operator.login}\t{operator.role}\t{operator.status}", highlight=False)
