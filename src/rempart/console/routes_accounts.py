"""The accounts: a search, one account (sessions, keys, networks, alerts) and the
operator's actions on it — the very domain calls of ``rempart accounts ...
--operator``, with the operator's login.

A code or a provisioning URI an action creates is shown once, on the answer to the
form (never in a redirect's URL: proxies and histories keep URLs); every other action
redirects back to the account with a confirmation. Account ids go in the path, quoted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from rempart.api.deps import services_of
from rempart.auth.compromise import compromise_start
from rempart.auth.recovery import AccountNotSuspended, RestoreReport, UnknownAccount
from rempart.console.account_view import (
    ACCOUNT_PAGE,
    MAX_OFFSET,
    account_detail,
    search_accounts,
)
from rempart.console.display import PARIS, number, when
from rempart.console.operators import ConsoleSession, Permission
from rempart.console.routes_alerts import DECISION_NAMES, STATUS_NAMES
from rempart.console.web import CONSOLE, checked_form, operator_origin, redirect, render, require
from rempart.services import Services
from rempart.store.engine import session_scope
from rempart.store.models import Account

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

ACCOUNTS = f"{CONSOLE}/comptes"
ACCOUNT_STATUS = {"active": "actif", "suspended": "suspendu"}
MESSAGES = {
    "suspendu": "Le compte est suspendu : ses sessions et jetons sont révoqués.",
    "sessions-revoquees": "Toutes les sessions et tous les jetons du compte sont révoqués.",
    "debloque": "Le blocage du second facteur est levé (compteur d'échecs remis à zéro).",
}

Current = Annotated[ConsoleSession, Depends(require(Permission.ACCOUNTS))]


def _path(account_id: str) -> str:
    return f"{ACCOUNTS}/{quote(account_id, safe='')}"


@dataclass(frozen=True, slots=True)
class Secret:
    """What an action created and the operator must pass on, shown once."""

    heading: str
    lines: tuple[tuple[str, str], ...]
    note: str


def _common() -> dict[str, object]:
    return {
        "when": when,
        "number": number,
        "account_status": ACCOUNT_STATUS,
        "status_names": STATUS_NAMES,
        "decision_names": DECISION_NAMES,
        "accounts": ACCOUNTS,
    }


@router.get(ACCOUNTS)
def accounts_page(request: Request, current: Current) -> Response:
    services = services_of(request)
    query = (request.query_params.get("q") or "").strip()[:128]
    raw_offset = request.query_params.get("depuis", "0")
    if not raw_offset.isdigit() or int(raw_offset) > MAX_OFFSET:
        return render(
            request,
            current,
            "console/accounts.html",
            {
                "title": "Erreur : page inexistante — Comptes",
                "error": f"La page demandée n'existe pas (au plus {MAX_OFFSET} résultats "
                "parcourus : précisez la recherche).",
                "q": query,
                "rows": [],
                "next_query": "",
                "previous_query": "",
                **_common(),
            },
            status=422,
        )
    offset = int(raw_offset)
    with session_scope(services.sessions) as session:
        rows, more = search_accounts(session, query, offset=offset)
    following = offset + ACCOUNT_PAGE
    next_query = (
        urlencode({"q": query, "depuis": following}) if more and following <= MAX_OFFSET else ""
    )
    previous_query = (
        urlencode({"q": query, "depuis": max(offset - ACCOUNT_PAGE, 0)}) if offset else ""
    )
    return render(
        request,
        current,
        "console/accounts.html",
        {
            "title": f"Comptes — recherche « {query} »" if query else "Comptes",
            "error": "",
            "q": query,
            "rows": rows,
            "next_query": next_query,
            "previous_query": previous_query,
            **_common(),
        },
    )


def _account_response(
    request: Request,
    current: ConsoleSession,
    account_id: str,
    *,
    message: str = "",
    error: str = "",
    secret: Secret | None = None,
    status: int = 200,
) -> Response:
    services = services_of(request)
    with session_scope(services.sessions) as session:
        detail = account_detail(session, account_id)
    if detail is None:
        return render(
            request,
            current,
            "console/analyst_error.html",
            {
                "title": "Erreur : compte introuvable",
                "heading": "Compte introuvable",
                "text": "Aucun compte ne porte cet identifiant.",
                "back": ACCOUNTS,
                "back_label": "Retour à la recherche de comptes",
            },
            status=404,
        )
    title = f"Compte {detail.row.account_id}"
    return render(
        request,
        current,
        "console/account.html",
        {
            "title": f"Erreur : {title}" if error else title,
            "detail": detail,
            "message": message,
            "error": error,
            "secret": secret,
            "path": _path(account_id),
            **_common(),
        },
        status=status,
    )


@router.get(f"{ACCOUNTS}/{{account_id:path}}")
def account_page(request: Request, account_id: str, current: Current) -> Response:
    message = MESSAGES.get(request.query_params.get("message", ""), "")
    return _account_response(request, current, account_id, message=message)


def _unknown(request: Request, current: ConsoleSession, account_id: str) -> Response:
    return _account_response(request, current, account_id[:64], status=404)


async def _act(
    request: Request,
    current: ConsoleSession,
    action: Callable[[Services, Session], object],
) -> object:
    """Checks the form, then runs ``action`` in one transaction (the domain call and
    its audit entry commit together)."""
    await checked_form(request, current)
    services = services_of(request)

    def run() -> object:
        with session_scope(services.sessions) as session:
            return action(services, session)

    return await run_in_threadpool(run)


@router.post(f"{ACCOUNTS}/{{account_id:path}}/suspendre")
async def suspend(request: Request, account_id: str, current: Current) -> Response:
    done = await _act(
        request,
        current,
        lambda s, session: s.auth.suspend(session, account_id, by=f"operator:{current.login}"),
    )
    if not done:
        return _unknown(request, current, account_id)
    return redirect(_path(account_id), message="suspendu")


@router.post(f"{ACCOUNTS}/{{account_id:path}}/debloquer")
async def clear_mfa_lock(request: Request, account_id: str, current: Current) -> Response:
    done = await _act(
        request,
        current,
        lambda s, session: s.auth.clear_mfa_lock(session, account_id, operator=current.login),
    )
    if not done:
        return _unknown(request, current, account_id)
    return redirect(_path(account_id), message="debloque")


@router.post(f"{ACCOUNTS}/{{account_id:path}}/sessions/revoquer")
async def revoke_sessions(request: Request, account_id: str, current: Current) -> Response:
    origin = operator_origin(request, current)

    def revoke(services: Services, session: Session) -> int | None:
        if session.get(Account, account_id) is None:
            return None
        ended = services.auth.revoke_sessions(session, account_id, reason="operator")
        # revoke_sessions records nothing itself: the operator's action is audited here.
        services.operators.record_action(
            session,
            current,
            "sessions_revoked",
            target=f"account:{account_id},sessions:{ended}",
            origin=origin,
        )
        return ended

    ended = await _act(request, current, revoke)
    if ended is None:
        return _unknown(request, current, account_id)
    return redirect(_path(account_id), message="sessions-revoquees")


@router.post(f"{ACCOUNTS}/{{account_id:path}}/code-reinitialisation")
async def issue_reset_code(request: Request, account_id: str, current: Current) -> Response:
    try:
        code = await _act(
            request,
            current,
            lambda s, session: s.recovery.issue_reset_code(
                session, account_id, operator=current.login
            ),
        )
    except UnknownAccount:
        return _unknown(request, current, account_id)
    secret = Secret(
        heading="Code de réinitialisation du mot de passe",
        lines=(("Code", str(code)),),
        note="À envoyer par courrier à l'adresse d'exercice du professionnel, jamais par "
        "courriel ni par téléphone. Il n'est affiché qu'une fois et expire au bout du délai "
        "configuré ; le professionnel est prévenu qu'un courrier arrive.",
    )
    return _account_response(
        request, current, account_id, message="Code de réinitialisation émis.", secret=secret
    )


@router.post(f"{ACCOUNTS}/{{account_id:path}}/second-facteur/reinitialiser")
async def reset_second_factor(request: Request, account_id: str, current: Current) -> Response:
    try:
        uri = await _act(
            request,
            current,
            lambda s, session: s.recovery.reset_second_factor(
                session, account_id, operator=current.login
            ),
        )
    except UnknownAccount:
        return _unknown(request, current, account_id)
    secret = Secret(
        heading="Nouveau second facteur (application d'authentification)",
        lines=(("Adresse de configuration", str(uri)),),
        note="À envoyer par courrier au professionnel. Ses clés de sécurité et codes de "
        "secours sont supprimés et toutes ses sessions fermées. Affichée une seule fois.",
    )
    return _account_response(
        request,
        current,
        account_id,
        message="Second facteur réinitialisé.",
        secret=secret,
    )


def _moment(value: str) -> datetime | None:
    """A ``datetime-local`` field (Paris time); None when empty; ValueError if wrong."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=PARIS)
    return moment.astimezone(UTC)


@router.post(f"{ACCOUNTS}/{{account_id:path}}/retablir")
async def restore(request: Request, account_id: str, current: Current) -> Response:
    form = await checked_form(request, current)
    raw = form.get("depuis")
    try:
        since = _moment(raw.strip()[:32] if isinstance(raw, str) else "")
    except ValueError:
        return _account_response(
            request,
            current,
            account_id,
            error="Le début de la compromission doit être une date et une heure "
            "(JJ/MM/AAAA HH:MM).",
            status=422,
        )
    services = services_of(request)

    def run() -> tuple[RestoreReport, str]:
        # The CLI's `accounts restore`: the compromise's start from the evidence unless
        # the operator gives it.
        with session_scope(services.sessions) as session:
            start, evidence = since, "donné par l'opérateur"
            if start is None:
                if session.get(Account, account_id) is None:
                    raise UnknownAccount()
                with Session(services.audit_engine) as audit:
                    found = compromise_start(session, audit, account_id)
                # found.evidence is English (the CLI's): the page says where it came from.
                start, evidence = found.at, "déduit de la piste d'audit"
            report = services.recovery.restore_account(
                session, account_id, operator=current.login, since=start
            )
            return report, evidence

    try:
        report, evidence = await run_in_threadpool(run)
    except UnknownAccount:
        return _unknown(request, current, account_id)
    except AccountNotSuspended:
        return _account_response(
            request,
            current,
            account_id,
            error="Ce compte n'est pas suspendu : il n'y a rien à rétablir.",
            status=409,
        )
    assert isinstance(report, RestoreReport)
    secret = Secret(
        heading="Compte rétabli : identifiants à envoyer par courrier",
        lines=(
            ("Code de réinitialisation du mot de passe", report.reset_code),
            ("Adresse de configuration du second facteur", report.otpauth_uri),
        ),
        note=(
            f"Compromission considérée depuis le {when(report.since)} ({evidence}). "
            f"Retirés : {len(report.keys_removed)} clé(s) de sécurité, "
            f"{report.recovery_codes_removed} code(s) de secours, "
            f"{report.networks_forgotten} réseau(x) ou appareil(s) ; "
            f"{report.sessions_ended} session(s) fermée(s). Le mot de passe et le second "
            "facteur sont remplacés : envoyez ces deux éléments par courrier à l'adresse "
            "d'exercice. Ils ne sont affichés qu'une fois."
        ),
    )
    return _account_response(
        request, current, account_id, message="Le compte est rétabli.", secret=secret
    )
