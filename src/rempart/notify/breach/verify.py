"""Checking a breach notice: does this verification code belong to a genuine notice
sent to a person of this last name?

Phishers imitate breach notices, so the answer must help the person holding a letter
or an e-mail and nobody else:

- The answer is one bit. A well-formed code that matches no notice and a genuine code
  with someone else's name are answered alike, and cost the same work: the one query
  runs either way, and the names are compared as keyed hashes of equal length with
  :func:`hmac.compare_digest` (against a dummy when no notice matched).
- Guesses are bounded before anything is verified (:class:`NoticeCheckThrottle`):
  checks and failures per address, failures per network, per code (whatever the
  name) and across the service, so that a botnet spreading one guess per address
  still meets the global limit. With about 59 bits per code the space is out of
  reach anyway; the limits keep the name guessing of a found letter slow too.
- Every check, even an absurd or throttled one, is written to the audit trail as
  ``notice_check`` with its outcome (``genuine``, ``not_genuine``, ``invalid``,
  ``throttled``), the client's address and user agent, and the person's pseudonym as
  subject only when genuine. Never the code, never the name.

Input arrives raw (JSON bytes from the API, a form body from the page) and is parsed
here into a :class:`NoticeCheck` or an :class:`InvalidNoticeCheck` listing every
field at fault, so that both doors refuse the same things with the same codes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal
from urllib.parse import parse_qs

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from rempart.audit.chain import AuditEntry
from rempart.audit.events import Origin
from rempart.audit.trail import AuditTrail, now_us
from rempart.auth.throttle import Alarm, CounterStore, Throttled, Window, source_of
from rempart.errors import RempartError
from rempart.notify.breach.codes import NoticeKeys, code_hash, normalize_code, normalize_name
from rempart.store.models import CampaignRecipient, Insured, NoticeMessage

if TYPE_CHECKING:
    from rempart.config import Settings

__all__ = [
    "CHECK_EVENT",
    "MAX_LAST_NAME",
    "InvalidNoticeCheck",
    "NameComparer",
    "NoticeCheck",
    "NoticeCheckLimits",
    "NoticeCheckThrottle",
    "NoticeHolder",
    "NoticeVerifier",
    "find_notice_holder",
    "parse_form_check",
    "parse_json_check",
]

CHECK_EVENT = "notice_check"
MAX_LAST_NAME = 128  # as ``insured.last_name`` holds it
_MAX_CODE = 64  # what :func:`normalize_code` still reads (separators included)
_FIELDS = ("code", "last_name")
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")

Via = Literal["api", "page"]


def _log() -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger("rempart.notify.verify")
    return logger


# -- parsing ------------------------------------------------------------------------------


class InvalidNoticeCheck(RempartError):
    """A check that is not one: ``problems`` maps each field at fault (or ``body``) to
    its stable code; :attr:`code` is the first of them. The detail never quotes input."""

    status = 422

    def __init__(self, problems: Mapping[str, str], *, status: int = 422) -> None:
        self.problems = dict(problems)
        first_field, first_code = next(iter(self.problems.items()))
        detail = "; ".join(f"{field}: {_DETAILS[code]}" for field, code in self.problems.items())
        super().__init__(detail, code=first_code, status=status)
        self.field = first_field


_DETAILS = {
    "malformed_json": "the body is not valid JSON",
    "malformed_body": "the body is not a form of UTF-8 text",
    "invalid_body": "expected an object with code and last_name",
    "unknown_field": "only code and last_name are accepted",
    "missing_field": "required",
    "invalid_type": "must be a string",
    "control_characters": "control characters are not allowed",
    "invalid_code": "not a verification code (12 letters and digits, e.g. K7QM-4XPD-9TRW)",
    "invalid_last_name": f"a last name of 1 to {MAX_LAST_NAME} characters with letters",
}


@dataclass(frozen=True)
class NoticeCheck:
    """A well-formed check: the bare code and the name as typed (never logged)."""

    code: str
    last_name: str

    def __repr__(self) -> str:
        return "NoticeCheck(<redacted>)"


def _parse_fields(values: Mapping[str, object]) -> NoticeCheck:
    problems: dict[str, str] = {}
    unknown = set(values) - set(_FIELDS)
    if unknown:
        problems["body"] = "unknown_field"
    code: str | None = None
    name: str | None = None
    for field in _FIELDS:
        value = values.get(field)
        if value is None:
            problems[field] = "missing_field"
        elif not isinstance(value, str):
            problems[field] = "invalid_type"
        elif _CONTROLS.search(value):
            problems[field] = "control_characters"
        elif field == "code":
            code = normalize_code(value) if len(value) <= _MAX_CODE else None
            if code is None:
                problems[field] = "invalid_code"
        elif len(value) > MAX_LAST_NAME or not normalize_name(value):
            problems[field] = "invalid_last_name"
        else:
            name = value
    if problems:
        raise InvalidNoticeCheck(problems)
    assert code is not None
    assert name is not None
    return NoticeCheck(code=code, last_name=name)


def parse_json_check(body: bytes) -> NoticeCheck:
    """The API's body, ``{"code": …, "last_name": …}``, or :class:`InvalidNoticeCheck`.

    >>> parse_json_check(b'{"code": "k7qm 4xpd 9trw", "last_name": "Dupont"}').code
    'K7QM4XPD9TRW'
    >>> try:
    ...     parse_json_check(b'{"code": "K7QM-4XPD-9TR0", "last_name": ""}')
    ... except InvalidNoticeCheck as exc:
    ...     print(exc.code, exc.problems)
    invalid_code {'code': 'invalid_code', 'last_name': 'invalid_last_name'}
    """
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise InvalidNoticeCheck({"body": "malformed_json"}, status=400) from None
    if not isinstance(payload, dict):
        raise InvalidNoticeCheck({"body": "invalid_body"})
    return _parse_fields(payload)


def parse_form_check(body: bytes) -> NoticeCheck:
    """The page's form body (``application/x-www-form-urlencoded``), parsed the same way.

    >>> parse_form_check(b"code=K7QM-4XPD-9TRW&last_name=Dupont").last_name
    'Dupont'
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text), max_num_fields=8)
    except (UnicodeDecodeError, ValueError):
        raise InvalidNoticeCheck({"body": "malformed_body"}, status=400) from None
    values: dict[str, object] = {}
    for field, found in pairs.items():
        # A field given twice is not a string: refused rather than one of them picked.
        values[field] = found[0] if len(found) == 1 else found
    return _parse_fields(values)


# -- the limits -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeCheckLimits:
    window_seconds: int = 3600
    address_checks: int = 30
    address_failures: int = 10
    network_failures: int = 60
    code_failures: int = 5
    global_failures_per_minute: int = 120

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"notice check limit {name} must be a positive integer")

    @classmethod
    def from_settings(cls, settings: Settings) -> NoticeCheckLimits:
        s = settings
        return cls(
            window_seconds=s.notice_check_window_seconds,
            address_checks=s.notice_check_address_checks,
            address_failures=s.notice_check_address_failures,
            network_failures=s.notice_check_network_failures,
            code_failures=s.notice_check_code_failures,
            global_failures_per_minute=s.notice_check_global_failures_per_minute,
        )


class NoticeCheckThrottle:
    """Fixed windows in the login throttle's store (memory or Redis, atomic either way).

    Checks are counted when admitted; failures (``not genuine``) after the answer. The
    code's window exists for any well-formed code, so a 429 on a code says nothing of
    whether it is genuine. Keys are keyed hashes: the store holds no address, no code.
    """

    _GLOBAL_SECONDS = 60

    def __init__(
        self,
        store: CounterStore,
        limits: NoticeCheckLimits,
        *,
        secret: bytes,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the notice throttle's secret must hold at least 16 bytes")
        self._store = store
        self._secret = secret
        self.limits = limits
        self.clock = clock

    def _name(self, kind: str, value: str) -> str:
        mac = hmac.new(self._secret, f"{kind}\x00{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:24]

    def _rules(self, address: str, code: str | None, now: float) -> list[Window]:
        lim = self.limits
        source = source_of(address)
        addr = self._name("address", source.address)
        net = self._name("network", source.network)

        def window(name: str, key: str, limit: int, seconds: int, *, count: bool) -> Window:
            # No "under attack" tightening: the global window is itself the hard stop.
            return Window(name, key, limit, limit, seconds, count)

        minute = int(now // self._GLOBAL_SECONDS)
        rules = [
            window(
                "notice_address_checks",
                f"v:a:{addr}:n",
                lim.address_checks,
                lim.window_seconds,
                count=True,
            ),
            window(
                "notice_address_failures",
                f"v:a:{addr}:f",
                lim.address_failures,
                lim.window_seconds,
                count=False,
            ),
            window(
                "notice_network_failures",
                f"v:n:{net}:f",
                lim.network_failures,
                lim.window_seconds,
                count=False,
            ),
            # One key per minute, so the window turns on the clock's minute on every worker.
            window(
                "notice_global_failures",
                f"v:g:{minute}",
                lim.global_failures_per_minute,
                self._GLOBAL_SECONDS,
                count=False,
            ),
        ]
        if code is not None:
            key = f"v:c:{self._name('code', code)}"
            rules.append(
                window(
                    "notice_code_failures", key, lim.code_failures, lim.window_seconds, count=False
                )
            )
        return rules

    @staticmethod
    def _alarm() -> Alarm:
        # The login throttle's "under attack" mode is not used here (threshold 0).
        return Alarm(current_key="v:alarm", previous_key="v:alarm:previous", threshold=0)

    def admit(self, address: str, code: str | None) -> None:
        """Raise :class:`~rempart.auth.throttle.Throttled` when a limit is reached;
        otherwise count the check."""
        now = self.clock()
        verdict = self._store.attempt(now, self._alarm(), self._rules(address, code, now))
        if verdict.wait > 0:
            _log().info("notice_check_throttled", rule=verdict.rule, retry_after=verdict.wait)
            raise Throttled(verdict.wait)

    def failure(self, address: str, code: str) -> None:
        """A check answered ``not genuine``."""
        now = self.clock()
        rules = [rule for rule in self._rules(address, code, now) if not rule.count]
        self._store.fail(now, self._alarm(), rules)


# -- the check ------------------------------------------------------------------------------


_DUMMY_NAME = "rempart-no-notice-matches-this-code"


@dataclass(frozen=True)
class NoticeHolder:
    """The person a notice was sent to (never logged)."""

    pseudonym: str
    last_name: str

    def __repr__(self) -> str:
        return "NoticeHolder(<redacted>)"


def find_notice_holder(
    sessions: sessionmaker[Session], keys: NoticeKeys, code: str
) -> NoticeHolder | None:
    """Who the notice bearing this code (bare or formatted) was sent to, or None. One
    query either way, so that a made-up code costs what a genuine one does. Shared by
    the public check (:class:`NoticeVerifier`) and the message checker."""
    digest = code_hash(keys, code)
    with sessions() as session:
        row = session.execute(
            select(Insured.pseudonym, Insured.last_name)
            .select_from(NoticeMessage)
            .join(CampaignRecipient, CampaignRecipient.recipient_id == NoticeMessage.recipient_id)
            .join(Insured, Insured.pseudonym == CampaignRecipient.pseudonym)
            .where(NoticeMessage.code_hash == digest)
        ).first()
    if row is None or row.pseudonym is None:
        return None
    return NoticeHolder(pseudonym=row.pseudonym, last_name=row.last_name)


class NameComparer:
    """Compares a typed last name with a notice holder's, in the same time whether or
    not there is a holder.

    Names are compared as MACs: equal lengths, so nothing is learnt from a stored
    name's length; with no holder, against a dummy. The MACs never leave the process;
    a key of its own suffices."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def same(self, typed: str, holder: NoticeHolder | None) -> bool:
        stored = holder.last_name if holder is not None else _DUMMY_NAME
        same = hmac.compare_digest(self._mac(typed), self._mac(stored))
        return same and holder is not None

    def _mac(self, name: str) -> bytes:
        return hmac.new(self._key, normalize_name(name).encode(), hashlib.sha256).digest()


class NoticeVerifier:
    """Answers checks (one bit), bounds them, and audits every one."""

    def __init__(
        self,
        keys: NoticeKeys,
        sessions: sessionmaker[Session],
        audit: AuditTrail,
        throttle: NoticeCheckThrottle,
    ) -> None:
        self._keys = keys
        self._sessions = sessions
        self._audit = audit
        self.throttle = throttle
        self._names = NameComparer()

    def check(self, request: NoticeCheck | InvalidNoticeCheck, *, origin: Origin, via: Via) -> bool:
        """Whether the check names a genuine notice; raises :class:`Throttled` (429) or
        the :class:`InvalidNoticeCheck` it was given (4xx), both audited first."""
        code = request.code if isinstance(request, NoticeCheck) else None
        try:
            self.throttle.admit(origin.client_ip, code)
        except Throttled as exc:
            self._record("throttled", origin, via, reasons=f"retry_after:{exc.retry_after}")
            raise
        if isinstance(request, InvalidNoticeCheck):
            self._record("invalid", origin, via, reasons=f"error:{request.code}")
            raise request
        pseudonym = self._match(request)
        if pseudonym is None:
            self.throttle.failure(origin.client_ip, request.code)
            self._record("not_genuine", origin, via)
            return False
        self._record("genuine", origin, via, subject=pseudonym)
        return True

    def _match(self, request: NoticeCheck) -> str | None:
        """The pseudonym of the person whose notice this is, if the name matches."""
        holder = find_notice_holder(self._sessions, self._keys, request.code)
        if not self._names.same(request.last_name, holder) or holder is None:
            return None
        return holder.pseudonym

    def _record(
        self, outcome: str, origin: Origin, via: Via, *, subject: str = "", reasons: str = ""
    ) -> None:
        self._audit.append(
            [
                AuditEntry(
                    seq=0,
                    ts_us=now_us(),
                    event=CHECK_EVENT,
                    client_ip=origin.client_ip,
                    user_agent=origin.user_agent,
                    channel=via,
                    subject=subject,
                    reasons=reasons,
                    outcome=outcome,
                )
            ]
        )
