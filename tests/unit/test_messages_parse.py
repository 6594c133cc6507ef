"""Reading the raw input: text or a whole .eml, HTML rendered with its hidden links,
charsets, and the bad input refused with a stable code (never a crash)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rempart.messages import InvalidMessage, MessageChecker, load_rules, read_message

CHECKER = MessageChecker(load_rules())

HTML_EML = b"""From: =?utf-8?q?Assurance_Maladie?= <service@ameli-info.top>
To: vous@exemple.fr
Subject: =?utf-8?q?Votre_dossier_est_incomplet?=
Date: Tue, 1 Dec 2026 09:00:00 +0100
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="sep"

--sep
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

Connectez-vous sur www.ameli.fr
--sep
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

<html><body><p>Votre dossier est incomplet. Connectez-vous sur
<a href=3D"https://ameli-info.top/login">www.ameli.fr</a></p>
<div style=3D"display:none"><a href=3D"https://tracker.example.net/t">suivi</a>
texte cach=C3=A9</div>
<a href=3D"https://blanc.example.org/w" style=3D"color:#fff">blanc sur blanc</a>
<a href=3D"https://vide.example.org/v"></a>
<a href=3D"https://logo.example.org/l"><img src=3D"cid:logo" alt=3D""></a>
</body></html>
--sep--
"""


def test_an_eml_takes_sender_subject_and_the_html_as_seen() -> None:
    message = read_message(HTML_EML)
    assert message.channel == "email"  # an .eml is an e-mail whatever the default
    assert message.sender == "Assurance Maladie <service@ameli-info.top>"
    assert message.subject == "Votre dossier est incomplet"
    assert message.html
    assert "Votre dossier est incomplet." in message.text
    assert "texte caché" not in message.text
    assert "blanc sur blanc" not in message.text


def test_an_eml_lists_every_link_with_its_text_and_whether_it_is_hidden() -> None:
    links = {link.host: link for link in read_message(HTML_EML).links}
    assert links["ameli-info.top"].text == "www.ameli.fr"
    assert not links["ameli-info.top"].hidden
    assert links["tracker.example.net"].hidden  # display:none on a parent
    assert links["blanc.example.org"].hidden  # white on white
    assert links["vide.example.org"].hidden  # no visible content
    assert not links["logo.example.org"].hidden  # an image is content
    assert "www.ameli.fr" in links  # written in the text parts too


def test_given_sender_and_subject_win_over_the_headers() -> None:
    message = read_message(HTML_EML, sender="x@exemple.fr", subject="Autre")
    assert (message.sender, message.subject) == ("x@exemple.fr", "Autre")


def test_a_non_utf8_eml_part_is_decoded_with_its_charset() -> None:
    body = "Votre dossier a été clôturé.".encode("iso-8859-1")
    eml = (
        b"From: a@exemple.fr\r\nSubject: Dossier\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: text/plain; charset="iso-8859-1"\r\n'
        b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body
    )
    assert read_message(eml).text.strip() == "Votre dossier a été clôturé."


def test_an_unknown_declared_charset_falls_back() -> None:
    eml = (
        b"From: a@exemple.fr\r\nSubject: x\r\nContent-Type: text/plain; charset=x-nimporte\r\n"
        b"\r\nD\xe9j\xe0 pay\xe9"
    )
    assert read_message(eml).text.strip() == "Déjà payé"


@pytest.mark.parametrize("encoding", ["cp1252", "latin-1", "utf-8", "utf-16"])
def test_plain_text_in_another_encoding_is_decoded(encoding: str) -> None:
    text = "Réglez les frais d'envoi : 1,49 € sous 48 h."
    if encoding == "latin-1":
        text = text.replace("€", "EUR")  # Latin-1 has no euro sign
    assert read_message(text.encode(encoding)).text == text


def test_a_text_starting_like_a_header_is_not_an_eml() -> None:
    message = read_message("Objet : votre carte Vitale\n\nElle est prête.".encode())
    assert message.channel == "sms"
    assert message.text.startswith("Objet")


def test_pasted_html_is_read_as_seen() -> None:
    message = read_message(b'<html><body><a href="https://x.example.top/">ici</a></body></html>')
    assert message.text == "ici"
    assert message.links[0].host == "x.example.top"


def test_attachments_are_listed_by_name_or_type() -> None:
    eml = (
        b'From: a@exemple.fr\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nVoir.\r\n"
        b'--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a.pdf"'
        b"\r\n\r\nJVBER\r\n--b\r\nContent-Type: application/zip\r\n\r\nUEsDBA==\r\n--b--\r\n"
    )
    assert read_message(eml).attachments == ("a.pdf", "application/zip.zip")


@pytest.mark.parametrize(
    ("body", "kwargs", "code", "status"),
    [
        (b"", {}, "empty_message", 422),
        (b" \n\t ", {}, "empty_message", 422),
        (b"a" * 1025, {"max_bytes": 1024}, "message_too_large", 413),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", {}, "binary_message", 422),
        (bytes(range(1, 32)) * 4, {}, "binary_message", 422),
        (b"Bonjour", {"channel": "fax"}, "invalid_channel", 422),
        (b"Bonjour", {"sender": "a" * 321}, "invalid_field", 422),
        (b"Bonjour", {"sender": "AMELI\r\nBcc: x"}, "invalid_field", 422),
        (b"Bonjour", {"subject": "x\x00y"}, "invalid_field", 422),
        (b"From: a@b.fr\r\nSubject: x\r\n\r\n   ", {}, "empty_message", 422),
    ],
)
def test_bad_input_is_refused_with_a_stable_code(
    body: bytes, kwargs: dict[str, object], code: str, status: int
) -> None:
    with pytest.raises(InvalidMessage) as caught:
        read_message(body, **kwargs)  # type: ignore[arg-type]
    assert (caught.value.code, caught.value.status) == (code, status)
    assert "Bcc" not in caught.value.detail  # the detail never quotes the input
    # The caller's field at fault is named, so that a form can point at it.
    named = {"invalid_channel": "channel", "invalid_field": next(iter(kwargs), None)}
    assert caught.value.field == named.get(code)


def test_a_message_at_the_size_limit_is_read() -> None:
    assert len(read_message(b"a" * 1024, max_bytes=1024).text) == 1024


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_any_bytes_give_a_message_or_a_stable_refusal(body: bytes) -> None:
    try:
        message = read_message(body, channel="email")
    except InvalidMessage as exc:
        refused: str | None = exc.code
    else:
        refused = None
        assert message.text.strip() or message.attachments or message.links
        assert CHECKER.check(message).reasons[-1].code == "genuine_channel"
    assert refused in {None, "empty_message", "binary_message", "invalid_field"}


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=500))
def test_any_text_gives_a_message_or_a_stable_refusal(text: str) -> None:
    try:
        message = read_message(text.encode("utf-8", "surrogatepass"))
    except InvalidMessage as exc:
        refused: str | None = exc.code
    else:
        refused = None
        assert 0 <= CHECKER.check(message).score <= 100
    assert refused in {None, "empty_message", "binary_message"}
