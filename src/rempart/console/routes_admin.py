"""Administration: the console's operators (list, create, disable) and the running
configuration (read only, no secret)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.console.admin import configuration_lines, disable_operator, operator_lines
from rempart.console.dpo_texts import error_text
from rempart.console.dpo_web import confirmation, field, refusal
from rempart.console.operators import ROLE_NAMES, ConsoleSession, CreatedOperator, Permission
from rempart.console.web import CONSOLE, checked_form, redirect, render, require
from rempart.errors import RempartError
from rempart.store.engine import session_scope

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

Operators = Annotated[ConsoleSession, Depends(require(Permission.OPERATORS))]
Configuration = Annotated[ConsoleSession, Depends(require(Permission.CONFIGURATION))]

OPERATORS = f"{CONSOLE}/operateurs"


def _page(
    request: Request,
    current: ConsoleSession,
    *,
    created: CreatedOperator | None = None,
    error: str = "",
    login: str = "",
    role: str = "",
    status: int = 200,
) -> Response:
    services = services_of(request)
    with services.sessions() as session:
        lines = operator_lines(session, services.operators)
    return render(
        request,
        current,
        "console/operators.html",
        {
            "title": "Erreur : opérateurs" if error else "Opérateurs",
            "lines": lines,
            "roles": [(role.value, name) for role, name in ROLE_NAMES.items()],
            "created": created,
            "error": error,
            "login": login,
            "role": role,
            "message": confirmation(request),
        },
        status=status,
    )


@router.get(OPERATORS)
def operators(request: Request, current: Operators) -> Response:
    return _page(request, current)


@router.post(OPERATORS)
async def create_operator(request: Request, current: Operators) -> Response:
    """Creates an operator and shows the TOTP provisioning URI on this answer only
    (not after a redirect: it is never stored in the clear, nor shown again)."""
    form = await checked_form(request, current)
    login, role = field(form, "login", limit=64), field(form, "role", limit=16)
    password = form.get("password")
    password = password if isinstance(password, str) else ""
    services = services_of(request)

    def create() -> CreatedOperator:
        with session_scope(services.sessions) as session:
            return services.operators.create(
                session, login=login, role=role, password=password, created_by=current.login
            )

    try:
        created = await run_in_threadpool(create)
    except RempartError as exc:
        return _page(
            request,
            current,
            error=error_text(exc),
            login=login,
            role=role,
            status=exc.status if exc.status < 500 else 409,
        )
    return _page(request, current, created=created, status=201)


@router.post(f"{OPERATORS}/{{login}}/desactiver")
async def disable(request: Request, current: Operators, login: str) -> Response:
    await checked_form(request, current)
    services = services_of(request)

    def run() -> None:
        with session_scope(services.sessions) as session:
            disable_operator(session, services.operators, current, login)

    try:
        await run_in_threadpool(run)
    except RempartError as exc:
        return refusal(request, current, exc, back=(OPERATORS, "Retour aux opérateurs"))
    return redirect(OPERATORS, message="operateur_desactive")


@router.get(f"{CONSOLE}/configuration")
def configuration(request: Request, current: Configuration) -> Response:
    lines = configuration_lines(services_of(request).settings)
    sections: dict[str, list[tuple[str, str]]] = {}
    for line in lines:
        sections.setdefault(line.section, []).append((line.label, line.value))
    return render(
        request,
        current,
        "console/configuration.html",
        {"title": "Configuration", "sections": sections},
    )
