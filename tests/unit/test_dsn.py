"""Bounces: RFC 3464 reports and free-form ones, tied back to the notice's Message-ID."""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.notify.breach.dsn import Bounce, parse_bounce, read_bounces

MID = "<notice.c7-0a1b2c3d4e5f@rempart.example>"

POSTFIX = f"""Return-Path: <>
Received: by mx.rempart.example (Postfix) id 4F2C1A; Thu,  3 Dec 2026 10:02:11 +0100 (CET)
Date: Thu,  3 Dec 2026 10:02:11 +0100 (CET)
From: MAILER-DAEMON@mx.rempart.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: securite@rempart.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4F2C1A.1764752531/mx.rempart.example"
Message-Id: <20261203090211.4F2C1A@mx.rempart.example>

This is a MIME-encapsulated message.

--4F2C1A.1764752531/mx.rempart.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.rempart.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<camille.durand@orange.example>: host mx.orange.example[192.0.2.25] said: 550
    5.1.1 <camille.durand@orange.example>: Recipient address rejected: User
    unknown in virtual mailbox table (in reply to RCPT TO command)

--4F2C1A.1764752531/mx.rempart.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.rempart.example
X-Postfix-Queue-ID: 4F2C1A
X-Postfix-Sender: rfc822; securite@rempart.example
Arrival-Date: Thu,  3 Dec 2026 10:02:10 +0100 (CET)

Final-Recipient: rfc822; Camille.Durand@orange.example
Original-Recipient: rfc822;camille.durand@orange.example
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.orange.example
Diagnostic-Code: smtp; 550 5.1.1 <camille.durand@orange.example>: Recipient
    address rejected: User unknown in virtual mailbox table

--4F2C1A.1764752531/mx.rempart.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Caisse <securite@rempart.example>
To: camille.durand@orange.example
Subject: =?utf-8?q?Information_sur_la_consultation?=
Date: Thu, 03 Dec 2026 09:02:09 +0000
Message-ID: {MID}
Auto-Submitted: auto-generated

--4F2C1A.1764752531/mx.rempart.example--
"""

DELAYED = POSTFIX.replace("Action: failed\nStatus: 5.1.1", "Action: delayed\nStatus: 4.4.1")

EXCHANGE = """From: postmaster@outlook.example
To: securite@rempart.example
Date: Thu, 3 Dec 2026 09:15:00 +0000
Subject: Undeliverable: Information sur la consultation
Content-Language: en-US
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="_000_EXCH_"
Message-ID: <abc123@exch.outlook.example>

--_000_EXCH_
Content-Type: text/html; charset="us-ascii"

<html><body><p><b><font color="#000066">Delivery has failed to these recipients or groups:
</font></b></p>
<p>jean.nguyen@hotmail.example<br>The email address you entered couldn't be found.</p></body></html>

--_000_EXCH_
Content-Type: message/delivery-status

Reporting-MTA: dns;exch.outlook.example
Received-From-MTA: dns;mx.rempart.example
Arrival-Date: Thu, 3 Dec 2026 09:14:58 +0000

Final-Recipient: rfc822;jean.nguyen@hotmail.example
Action: failed
Status: 5.1.10
Diagnostic-Code: smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by
 SMTP address lookup

--_000_EXCH_
Content-Type: message/rfc822

From: Caisse <securite@rempart.example>
To: <jean.nguyen@hotmail.example>
Subject: Information sur la consultation
Message-ID: <notice.c7-ffeeddccbbaa@rempart.example>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

(corps)

--_000_EXCH_--
"""

QMAIL = """From: MAILER-DAEMON@mail.free.example
To: securite@rempart.example
Subject: failure notice
Date: 3 Dec 2026 09:20:00 -0000

Hi. This is the qmail-send program at mail.free.example.
I'm afraid I wasn't able to deliver your message to the following addresses.
This is a permanent error; I've given up. Sorry it didn't work out.

<paul.roux@free.example>:
Sorry, no mailbox here by that name. (#5.1.1)

--- Below this line is a copy of the message.

Return-Path: <securite@rempart.example>
From: Caisse <securite@rempart.example>
To: paul.roux@free.example
Message-ID: <notice.c7-112233445566@rempart.example>
Subject: Information

corps
"""

PLAIN = """From: Camille <camille.durand@orange.example>
To: securite@rempart.example
Subject: Re: Information sur la consultation
Date: Thu, 3 Dec 2026 11:00:00 +0100
Message-ID: <reply@orange.example>

Bonjour, merci pour votre message. Je n'ai pas compris ce qu'il faut faire.
"""


def test_postfix_dsn_is_permanent_with_the_original_message_id() -> None:
    assert parse_bounce(POSTFIX.encode()) == Bounce(
        original_message_id=MID,
        recipients=("camille.durand@orange.example",),
        permanent=True,
        status="5.1.1",
    )


def test_delayed_is_not_permanent() -> None:
    bounce = parse_bounce(DELAYED.encode())
    assert bounce is not None
    assert not bounce.permanent
    assert bounce.status == "4.4.1"
    assert bounce.original_message_id == MID


def test_exchange_like_dsn_with_the_whole_message_returned() -> None:
    bounce = parse_bounce(EXCHANGE.encode())
    assert bounce == Bounce(
        original_message_id="<notice.c7-ffeeddccbbaa@rempart.example>",
        recipients=("jean.nguyen@hotmail.example",),
        permanent=True,
        status="5.1.10",
    )


def test_a_free_form_qmail_bounce_is_found_by_flufl() -> None:
    bounce = parse_bounce(QMAIL.encode())
    assert bounce is not None
    assert bounce.recipients == ("paul.roux@free.example",)
    assert bounce.permanent


@pytest.mark.parametrize(
    "raw",
    [
        PLAIN.encode(),
        b"",
        b"\x00\xff\xfe garbage \x89PNG\r\n",
        POSTFIX.encode()[:700],  # truncated before the report
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x\n",
        POSTFIX.replace("Action: failed", "Action: delivered").encode(),
        b"Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; not-an-address\n"
        b"Action: failed\n",
    ],
)
def test_not_a_bounce_or_unreadable_is_none(raw: bytes) -> None:
    assert parse_bounce(raw) is None


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000), st.integers(min_value=0, max_value=len(POSTFIX)))
def test_never_raises(noise: bytes, cut: int) -> None:
    parse_bounce(noise)
    parse_bounce(POSTFIX.encode()[:cut] + noise)


def test_read_bounces_from_a_file_a_folder_and_an_mbox(tmp_path: Path) -> None:
    folder = tmp_path / "bounces"
    folder.mkdir()
    (folder / "1-postfix.eml").write_text(POSTFIX)
    (folder / "2-exchange.eml").write_text(EXCHANGE)
    (folder / "3-reply.eml").write_text(PLAIN)
    results = list(read_bounces(folder))
    assert [name for name, _ in results] == ["1-postfix.eml", "2-exchange.eml", "3-reply.eml"]
    assert [b is not None and b.permanent for _, b in results] == [True, True, False]
    assert results[2][1] is None

    single = list(read_bounces(folder / "1-postfix.eml"))
    assert single == [("1-postfix.eml", parse_bounce(POSTFIX.encode()))]

    box_path = tmp_path / "bounces.mbox"
    box = mailbox.mbox(box_path)
    for text in (POSTFIX, DELAYED, PLAIN):
        box.add(mailbox.mboxMessage(text.encode()))
    box.flush()
    box.close()
    from_box = list(read_bounces(box_path))
    assert [name for name, _ in from_box] == ["bounces.mbox#1", "bounces.mbox#2", "bounces.mbox#3"]
    first, second, third = (b for _, b in from_box)
    assert first is not None
    assert first.permanent
    assert first.original_message_id == MID
    assert second is not None
    assert not second.permanent
    assert third is None
