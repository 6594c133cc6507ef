"""Breach notices' French text: the person's own categories, careful wording, no link."""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rempart.notify.breach.content import NoticeContent
from rempart.notify.breach.render import (
    NoticeRenderer,
    NoticeTemplateError,
    blocks_as_text,
    french_date,
    parse_blocks,
    variants,
)

RENDERER = NoticeRenderer()
SAMPLES = {content.extra["variant"]: content for content in variants()}
ADDRESS = ("MADAME CAMILLE LEFEVRE", "12 RUE DES LILAS", "69003 LYON")
LINK = re.compile(r"(?i)<a\b|href|https?://|mailto:|<img\b|\bsrc=")


def _letter_text(content: NoticeContent) -> str:
    letter = RENDERER.render_letter(content, ADDRESS)
    return letter.subject + "\n" + blocks_as_text(letter.blocks)


def _flat(text: str) -> str:
    return " ".join(text.replace("\u00a0", " ").split())


def test_variants_cover_each_message_per_channel() -> None:
    names = set(SAMPLES)
    for channel in ("email", "letter"):
        for variant in ("ald", "ame", "c2s-only", "nir-identity", "minor", "complementary"):
            assert f"{channel}-{variant}" in names
    assert all(content.channel == name.split("-")[0] for name, content in SAMPLES.items())


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_variant_renders_without_link_with_the_exact_code_line(name: str) -> None:
    content = SAMPLES[name]
    mail = RENDERER.render_email(content)
    assert not LINK.search(mail.subject + mail.text + mail.html)
    assert "Code de vérification : K7QM-4XPD-9TRW" in mail.text.splitlines()
    assert "www.rempart.example/verifier" in mail.text
    assert "www.cnil.fr" in mail.text
    assert "33700" in mail.text
    assert "internet-signalement.gouv.fr" in mail.text
    assert "securite@rempart.example" in mail.text
    letter = RENDERER.render_letter(content, ADDRESS)
    codes = [block for block in letter.blocks if block.kind == "code"]
    assert [block.text for block in codes] == ["Code de vérification : K7QM-4XPD-9TRW"]
    assert letter.address_lines == ADDRESS
    assert letter.reference == content.reference
    assert letter.place_date == "Le 10 décembre 2026"


def test_only_the_persons_own_categories_are_named() -> None:
    text = _flat(RENDERER.render_email(SAMPLES["email-nir-identity"]).text)
    assert "votre numéro de sécurité sociale ;" in text
    assert "vos nom, prénom et date de naissance ;" in text
    for other in ("médecin traitant déclaré", "(ALD)", "(AME)", "(C2S)"):
        assert other not in text
    c2s = _flat(RENDERER.render_email(SAMPLES["email-c2s-only"]).text)
    assert "Complémentaire santé solidaire (C2S)" in c2s
    assert "votre numéro de sécurité sociale ;" not in c2s


def test_ald_ame_c2s_are_worded_without_stating_the_persons_status() -> None:
    for name, needle in (
        (
            "ald",
            "si vous bénéficiez ou non d'une prise en charge à 100 % au titre d'une "
            "affection de longue durée (ALD)",
        ),
        ("ame", "si vous bénéficiez ou non de l'Aide médicale de l'État (AME)"),
        ("c2s-only", "si vous bénéficiez ou non de la Complémentaire santé solidaire (C2S)"),
    ):
        for text in (
            _flat(RENDERER.render_email(SAMPLES[f"email-{name}"]).text),
            _flat(_letter_text(SAMPLES[f"letter-{name}"])),
        ):
            assert needle in text
            assert "ne dit rien de votre situation" in text
            for statement in (
                "vous êtes en ALD",
                "vous bénéficiez de l'Aide",
                "vous êtes bénéficiaire",
                "votre affection",
                "votre maladie",
                "vous bénéficiez d'une prise",
            ):
                assert statement not in text


def test_the_reads_are_dated_in_paris_time() -> None:
    content = replace(
        SAMPLES["email-nir-identity"],
        first_read=datetime(2026, 11, 30, 23, 5, tzinfo=UTC),
        last_read=datetime(2026, 12, 1, 8, 41, tzinfo=UTC),
    )
    text = _flat(RENDERER.render_email(content).text)
    assert "le mardi 1er décembre 2026, entre 0 h 05 et 9 h 41 (heure de Paris)" in text
    summer = replace(
        content,
        first_read=datetime(2026, 7, 14, 10, 0, tzinfo=UTC),
        last_read=datetime(2026, 7, 14, 10, 0, 20, tzinfo=UTC),
    )
    assert "le mardi 14 juillet 2026 à 12 h 00 (heure de Paris)" in _flat(
        RENDERER.render_email(summer).text
    )
    spread = replace(
        content,
        first_read=datetime(2026, 11, 3, 9, 0, tzinfo=UTC),
        last_read=datetime(2026, 11, 5, 17, 30, tzinfo=UTC),
    )
    assert (
        "entre le mardi 3 novembre 2026 à 10 h 00 et le jeudi 5 novembre 2026 à 18 h 30"
        in _flat(RENDERER.render_email(spread).text)
    )


def test_minor_is_addressed_to_legal_guardians() -> None:
    for text in (
        _flat(RENDERER.render_email(SAMPLES["email-minor"]).text),
        _flat(_letter_text(SAMPLES["letter-minor"])),
    ):
        assert text.count("représentant légal de Léa Martin") == 1
        assert "son numéro de sécurité sociale" in text
        assert "votre numéro de sécurité sociale ;" not in text
        assert "le nom de famille de Léa Martin" in text
    assert "Léa Martin" in RENDERER.render_email(SAMPLES["email-minor"]).subject


def test_complementary_says_a_later_analysis_found_the_person() -> None:
    text = _flat(RENDERER.render_email(SAMPLES["email-complementary"]).text)
    assert "analyse ultérieure, plus complète" in text
    assert "Madame, Monsieur," in text  # no civility known
    assert "analyse ultérieure" not in RENDERER.render_email(SAMPLES["email-ald"]).text


def test_measures_and_advice_are_there() -> None:
    text = _flat(_letter_text(SAMPLES["letter-ald"]))
    assert "Le compte utilisé a été suspendu le 2 décembre 2026." in text
    assert "La carte Vitale et son renouvellement sont gratuits." in text
    assert "coordonnées bancaires, un mot de passe, votre numéro de sécurité sociale ou un" in text
    assert "cybermalveillance.gouv.fr" in text
    assert "dpo@rempart.example" in text
    assert "salutations distinguées" in text
    assert "Madame," in text


class _Html(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.text: list[str] = []
        self.lang: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend(attrs)
        if tag == "html":
            self.lang = dict(attrs).get("lang")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_is_simple_accessible_and_escapes_names() -> None:
    content = replace(
        SAMPLES["email-ald"],
        recipient=replace(
            SAMPLES["email-ald"].recipient,
            first_name="<script>alert(1)</script>",
            last_name="O'Brien & Fils\n## Faux titre",
        ),
        minor=True,
    )
    mail = RENDERER.render_email(content)
    parser = _Html()
    parser.feed(mail.html)
    assert parser.lang == "fr"
    assert {"h1", "h2", "ul", "li", "p"} <= set(parser.tags)
    assert not {"a", "img", "script", "style", "link", "form"} & set(parser.tags)
    assert {name for name, _value in parser.attrs} <= {
        "lang",
        "charset",
        "name",
        "content",
        "style",
    }
    text = "".join(parser.text)
    assert "<script>alert(1)</script>" in text  # shown as text, not markup
    assert "O'Brien & Fils ## Faux titre" in text  # on one line: no heading injected
    assert "Code de vérification : K7QM-4XPD-9TRW" in text
    headings = [b.text for b in parse_blocks(mail.text) if b.kind == "heading"]
    assert "Faux titre" not in headings


def test_names_are_not_defanged() -> None:
    content = replace(
        SAMPLES["email-ame"],
        recipient=replace(SAMPLES["email-ame"].recipient, last_name="St. Martin"),
    )
    assert "St. Martin" not in RENDERER.render_email(content).text  # not minor: no name
    minor = replace(content, minor=True)
    assert "Karim St. Martin" in RENDERER.render_email(minor).subject


def test_a_link_added_to_a_template_or_data_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "templates"
    shutil.copytree(Path(NoticeRenderer().templates), copy)
    body = copy / "notice" / "_body.txt"
    body.write_text(body.read_text() + "\nVoir https://www.rempart.example/aide\n")
    with pytest.raises(NoticeTemplateError) as caught:
        NoticeRenderer(copy).render_email(SAMPLES["email-ald"])
    assert caught.value.code == "notice_link_refused"
    hostile = replace(SAMPLES["email-ame"], measures=("Voir mailto:fraude@example.net",))
    with pytest.raises(NoticeTemplateError) as caught:
        RENDERER.render_email(hostile)
    assert caught.value.code == "notice_link_refused"


def test_wording_edits_need_no_code(tmp_path: Path) -> None:
    copy = tmp_path / "templates"
    shutil.copytree(Path(NoticeRenderer().templates), copy)
    subject = copy / "notice" / "email" / "subject.txt"
    subject.write_text("Message de votre caisse au sujet de vos données\n")
    assert (
        NoticeRenderer(copy).render_email(SAMPLES["email-ald"]).subject
        == "Message de votre caisse au sujet de vos données"
    )


def test_strict_templates_and_unknown_categories_fail_clearly(tmp_path: Path) -> None:
    copy = tmp_path / "templates"
    shutil.copytree(Path(NoticeRenderer().templates), copy)
    (copy / "notice" / "letter" / "subject.txt").write_text("{{ persn.last_name }}\n")
    with pytest.raises(NoticeTemplateError) as caught:
        NoticeRenderer(copy).render_letter(SAMPLES["letter-ald"], ADDRESS)
    assert caught.value.code == "notice_template_error"
    with pytest.raises(NoticeTemplateError, match="categories"):
        RENDERER.render_email(replace(SAMPLES["email-ald"], categories=("bank",)))
    with pytest.raises(NoticeTemplateError, match="categories"):
        RENDERER.render_email(replace(SAMPLES["email-ald"], categories=()))


def test_a_letter_after_a_bounce_says_courrier() -> None:
    letter = RENDERER.render_letter(SAMPLES["email-ald"], ADDRESS)
    text = _flat(blocks_as_text(letter.blocks))
    assert "Vérifier que ce courrier est authentique" in text
    assert "ce courriel" not in text.lower()


def test_text_part_lines_are_wrapped() -> None:
    text = RENDERER.render_email(SAMPLES["email-ald"]).text
    assert max(len(line) for line in text.splitlines()) <= 76


def test_french_date_needs_a_date() -> None:
    with pytest.raises(NoticeTemplateError):
        french_date("2026-12-01")
