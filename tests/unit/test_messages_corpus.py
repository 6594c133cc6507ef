"""The message checker's evaluation corpus (bench/messages): it loads whole and holds
what the benchmark's figures rest on; a bad entry is refused with its file and id."""

from __future__ import annotations

import email
import email.policy
import shutil
from collections import Counter
from email.message import EmailMessage
from pathlib import Path

import pytest
from bench.messages_corpus import (
    CORPUS_DIR,
    MIN_PER_FAMILY,
    Corpus,
    CorpusError,
    CorpusMessage,
    load_corpus,
)

from rempart.notify.breach.codes import normalize_code

PHISHING_FAMILIES = {
    "carte_vitale",
    "refund",
    "incomplete_file",
    "account_closure",
    "fake_breach_notice",
    "callback",
}
GENUINE_FAMILIES = {
    "refund_notice",
    "appointment_reminder",
    "prevention_campaign",
    "document_notification",
    "genuine_breach_notice",
    "carte_vitale_info",
}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus()


def test_every_family_is_there_with_enough_messages_of_its_label(corpus: Corpus) -> None:
    labels = {family.name: family.label for family in corpus.families}
    expected = dict.fromkeys(PHISHING_FAMILIES, "phishing")
    expected |= dict.fromkeys(GENUINE_FAMILIES, "genuine")
    assert labels == expected
    for family in corpus.families:
        of_label = [m for m in family.messages if m.label == family.label]
        assert len(of_label) >= MIN_PER_FAMILY, family.name
        assert all(m.family == family.name for m in family.messages)


def test_ids_unique_labels_and_channels_valid(corpus: Corpus) -> None:
    ids = Counter(m.id for m in corpus.messages)
    assert [i for i, n in ids.items() if n > 1] == []
    assert {m.label for m in corpus.messages} == {"phishing", "genuine"}
    assert {m.channel for m in corpus.messages} == {"sms", "email"}
    for message in corpus.messages:
        assert message.body, message.id
        if message.channel == "sms":
            assert message.subject is None, message.id
            assert not message.is_eml, message.id


def test_both_labels_hold_messages_in_other_languages(corpus: Corpus) -> None:
    foreign = {(m.label, m.lang) for m in corpus.messages if m.lang != "fr"}
    assert {label for label, _ in foreign} == {"phishing", "genuine"}
    assert len({lang for _, lang in foreign}) >= 3


def test_each_eml_parses_with_a_sender_and_a_readable_body(corpus: Corpus) -> None:
    emls = [m for m in corpus.messages if m.is_eml]
    charsets: set[str | None] = set()
    attachments = 0
    for message in emls:
        parsed = email.message_from_bytes(message.body, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        assert parsed["From"], message.id
        body = parsed.get_body(("plain", "html"))
        assert body is not None, message.id
        charsets.add(body.get_param("charset"))  # type: ignore[arg-type]
        attachments += sum(1 for _ in parsed.iter_attachments())
    files = {m.source.split(", ")[1] for m in emls if ", " in m.source}
    assert len(files) >= 4
    assert attachments >= 1
    assert {"iso-8859-1", None} <= {c.lower() if isinstance(c, str) else c for c in charsets}


def test_the_html_e_mails_carry_a_link_whose_text_differs_from_its_target(
    corpus: Corpus,
) -> None:
    hidden = corpus_by_id(corpus, "rf-13")
    html = hidden.visible_text()
    assert "display:none" in html
    assert "web.app" in html
    assert "www.rempart.example" in html


def test_genuine_notices_carry_their_own_valid_code(corpus: Corpus) -> None:
    family = next(f for f in corpus.families if f.name == "genuine_breach_notice")
    assert {n.id for n in corpus.notices} == {m.id for m in family.messages}
    codes = [n.code for n in corpus.notices]
    assert len(set(codes)) == len(codes)
    for notice in corpus.notices:
        assert normalize_code(notice.code) is not None
        text = corpus_by_id(corpus, notice.id).visible_text()
        assert f"Code de vérification : {notice.code}" in text
        assert "http" not in text  # a genuine notice holds no link


def test_loading_twice_gives_the_same_codes() -> None:
    assert load_corpus().notices == load_corpus().notices


def corpus_by_id(corpus: Corpus, ident: str) -> CorpusMessage:
    return next(m for m in corpus.messages if m.id == ident)


# --- refused entries ------------------------------------------------------------------

_HEAD = 'family = "{family}"\nlabel = "phishing"\ndescription = "test"\n'
_SMS = """
[[message]]
id = "{ident}"
label = "phishing"
channel = "sms"
sender = "+33 6 00 00 00 00"
text = "Votre carte Vitale : https://exemple.invalid"
"""


def _write(folder: Path, family: str, entries: str) -> None:
    (folder / f"{family}.toml").write_text(_HEAD.format(family=family) + entries, "utf-8")


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        (_SMS.format(ident="x-01").replace('"phishing"', '"spam"'), "'x-01'"),
        (_SMS.format(ident="x-01") + 'subject = "Objet"\n', "an SMS has no subject"),
        (_SMS.format(ident="x-01").replace('channel = "sms"', 'channel = "fax"'), "'x-01'"),
        (_SMS.format(ident="x-01").replace('label = "phishing"', 'label = "genuine"'), "label"),
        (_SMS.format(ident="x-01") + 'colour = "red"\n', "colour"),
        ('[[message]]\nid = "x-01"\nlabel = "phishing"\neml = "none.eml"\n', "none.eml"),
        ('[[message]]\nid = "x-01"\nlabel = "phishing"\nchannel = "sms"\n', "required"),
    ],
)
def test_a_bad_entry_is_refused_naming_its_file_and_id(
    tmp_path: Path, entry: str, expected: str
) -> None:
    _write(tmp_path, "fam", entry)
    with pytest.raises(CorpusError) as caught:
        load_corpus(tmp_path)
    assert str(caught.value).startswith("fam.toml: entry 'x-01': ")
    assert expected in str(caught.value)


def test_a_duplicate_id_across_files_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, "aaa", _SMS.format(ident="x-01"))
    _write(tmp_path, "bbb", _SMS.format(ident="x-01"))
    with pytest.raises(CorpusError, match=r"bbb\.toml: message 'x-01': id already used in aaa"):
        load_corpus(tmp_path)


def test_a_family_named_apart_from_its_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "fam.toml").write_text(_HEAD.format(family="other") + _SMS.format(ident="x-01"))
    with pytest.raises(CorpusError, match=r"fam\.toml: family 'other'"):
        load_corpus(tmp_path)


def test_an_eml_without_sender_or_body_is_refused(tmp_path: Path) -> None:
    (tmp_path / "bad.eml").write_bytes(b"Subject: nothing\r\n\r\n")
    _write(tmp_path, "fam", '[[message]]\nid = "x-02"\nlabel = "phishing"\neml = "bad.eml"\n')
    with pytest.raises(CorpusError, match=r"fam\.toml: entry 'x-02': bad\.eml is not a whole"):
        load_corpus(tmp_path)


def test_a_corpus_copy_loads_like_the_original(tmp_path: Path) -> None:
    copy = tmp_path / "messages"
    shutil.copytree(CORPUS_DIR, copy)
    assert [m.body for m in load_corpus(copy).messages] == [m.body for m in load_corpus().messages]


def test_non_utf8_e_mails_read_as_their_authors_wrote_them(corpus: Corpus) -> None:
    undeclared = corpus_by_id(corpus, "ap-11").visible_text()  # Windows-1252, no charset
    assert "à l\u2019accueil" in undeclared
    assert "100 € de frais" in undeclared
    latin1 = corpus_by_id(corpus, "if-11").visible_text()
    assert "Nous vous remercions de votre compréhension." in latin1
