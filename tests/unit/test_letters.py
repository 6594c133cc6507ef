"""Letters as PDF and print batches: text extracted with pypdf, manifest, atomic writes."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
from pypdf import PdfReader

from rempart.notify.breach import letters as letters_module
from rempart.notify.breach.content import Block, Insurer, LetterText
from rempart.notify.breach.letters import (
    MANIFEST_COLUMNS,
    LetterError,
    existing_batch,
    render_letter_pdf,
    write_batch,
)
from rempart.notify.breach.postal import address_block

INSURER = Insurer(
    name="Caisse d'assurance maladie (démonstration)",
    website="www.rempart.example",
    sender_address="securite@rempart.example",
    postal_address="Service protection des données\n12 rue de la Paix\n75002 Paris",
    dpo_name="Claire Dubœuf",
    dpo_email="dpo@rempart.example",
    dpo_phone="01 23 45 67 89",
)
PARAGRAPH = (
    "Le 3 décembre 2026, nous avons constaté qu'un compte professionnel a été utilisé par "
    "une personne non autorisée. « Aucune donnée bancaire » n'a été lue ; la Carte Vitale "
    "est gratuite (0 €). Cœur du sujet : votre vigilance."
)


def letter(reference: str, *, sections: int = 2, minor: bool = False) -> LetterText:
    block = address_block(
        sex=2,
        first_name="Hélène",
        last_name="Lefèvre",
        street="12, rue de l'Église",
        postcode="69003",
        city="Lyon",
        minor=minor,
    )
    body: list[Block] = [Block("paragraph", "Madame,")]
    for n in range(sections):
        body.append(Block("heading", f"Ce qui s'est passé ({n + 1})"))
        body.append(Block("paragraph", PARAGRAPH))
        body.append(Block("bullet", "Ne communiquez jamais votre mot de passe."))
        if n == 0:
            body.append(Block("code", "Code de vérification : K7QM-4XPD-9TRW"))
    return LetterText(
        reference=reference,
        address_lines=block.lines,
        place_date="Le 3 décembre 2026",
        subject="Accès non autorisé à certaines de vos données",
        blocks=tuple(body),
    )


def page_texts(pdf: bytes) -> list[str]:
    return [page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages]


def manifest_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter=";"))


def test_one_letter_has_address_code_reference_and_page_numbers() -> None:
    pdf = render_letter_pdf(letter("RMP-0001", sections=6), INSURER)
    pages = page_texts(pdf)
    assert len(pages) >= 2
    first = pages[0]
    positions = [
        first.index(line) for line in ("Madame Hélène LEFÈVRE", "12 RUE DE L EGLISE", "69003 LYON")
    ]
    assert positions == sorted(positions)
    assert "Code de vérification : K7QM-4XPD-9TRW" in first
    assert "Caisse d'assurance maladie (démonstration)" in first
    assert "12 rue de la Paix" in first
    assert "« Aucune donnée bancaire »" in first
    assert "€" in first
    assert "Cœur du sujet" in first
    for number, text in enumerate(pages, start=1):
        assert "RMP-0001" in text
        assert f"Page {number}/{len(pages)}" in text


def test_address_block_sits_in_the_window_of_a_dl_envelope() -> None:
    reader = PdfReader(io.BytesIO(render_letter_pdf(letter("RMP-0002"), INSURER)))
    page = reader.pages[0]
    height_mm = float(page.mediabox.height) * 25.4 / 72
    found: dict[str, tuple[float, float]] = {}

    def visit(text: str, cm: list[float], tm: list[float], *_rest: object) -> None:
        # The text's origin on the page: the text matrix's origin through the CTM.
        x = tm[4] * cm[0] + tm[5] * cm[2] + cm[4]
        y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        if text.strip():
            found.setdefault(text.strip(), (x * 25.4 / 72, height_mm - y * 25.4 / 72))

    page.extract_text(visitor_text=visit)
    x, y = next(pos for text, pos in found.items() if text.startswith("Madame Hélène"))
    assert 100 <= x <= 115
    assert 45 <= y <= 60


def test_minor_letter_names_the_guardians_then_the_child() -> None:
    text = page_texts(render_letter_pdf(letter("RMP-0003", minor=True), INSURER))[0]
    assert text.index("Aux représentants légaux de") < text.index("Hélène LEFÈVRE")


def test_batch_pdf_and_manifest_agree(tmp_path: Path) -> None:
    batch = [letter(f"RMP-{n:04d}", sections=1 + 3 * (n % 3)) for n in range(5)]
    flags = [(), ("abbreviated",), (), ("abbreviated", "truncated"), ()]
    folder = tmp_path / "letters"
    files = write_batch(folder, "lot-0001", batch, INSURER, flags=flags)

    pdf = files.pdf.read_bytes()
    reader = PdfReader(io.BytesIO(pdf))
    assert files.pages == len(reader.pages)
    assert files.sha256 == hashlib.sha256(pdf).hexdigest()
    rows = manifest_rows(files.manifest)
    assert list(rows[0]) == list(MANIFEST_COLUMNS)
    assert [row["reference"] for row in rows] == [item.reference for item in batch]
    assert sum(int(row["pages"]) for row in rows) == len(reader.pages)
    assert {row["batch"] for row in rows} == {"lot-0001"}
    assert [row["flags"] for row in rows] == ["", "abbreviated", "", "abbreviated,truncated", ""]
    assert rows[0]["line3"] == "69003 LYON"
    assert rows[0]["line4"] == ""
    for row in rows:
        first, count = int(row["first_page"]), int(row["pages"])
        # Recto-verso: every letter starts on a recto (odd page), on a new sheet.
        assert count % 2 == 0
        assert first % 2 == 1
        start = reader.pages[first - 1].extract_text()
        assert row["reference"] in start
        assert row["line1"] in start
        assert f"Page 1/{count}" in start or f"Page 1/{count - 1}" in start
        # The last sheet's verso is either the letter's last page or left blank.
        last = reader.pages[first + count - 2].extract_text()
        assert f"Page {count}/{count}" in last or last.strip() == ""
    assert any(
        reader.pages[int(row["first_page"]) + int(row["pages"]) - 2].extract_text().strip() == ""
        for row in rows
    ), "the sample has letters of an odd page count: one padding page at least"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(files.pdf.stat().st_mode) == 0o600
    assert stat.S_IMODE(files.manifest.stat().st_mode) == 0o600
    assert sorted(path.name for path in folder.iterdir()) == ["lot-0001.csv", "lot-0001.pdf"]


def test_simplex_batch_has_no_padding(tmp_path: Path) -> None:
    batch = [letter("RMP-A", sections=1), letter("RMP-B", sections=1)]
    files = write_batch(tmp_path / "l", "simplex", batch, INSURER, duplex=False)
    rows = manifest_rows(files.manifest)
    assert [(row["first_page"], row["pages"]) for row in rows] == [("1", "1"), ("2", "1")]


def test_existing_batch_is_found_only_when_whole(tmp_path: Path) -> None:
    folder = tmp_path / "letters"
    assert existing_batch(folder, "lot-1") is None
    files = write_batch(folder, "lot-1", [letter("RMP-1"), letter("RMP-2")], INSURER)
    assert existing_batch(folder, "lot-1") == files

    # A PDF whose manifest is missing (crash between the two renames) is not a batch.
    manifest = files.manifest.read_bytes()
    files.manifest.unlink()
    assert existing_batch(folder, "lot-1") is None
    # A manifest that does not match the PDF's pages is not one either.
    rows = manifest.decode().splitlines()
    files.manifest.write_text("\n".join(rows[:-1]) + "\n", encoding="utf-8")
    assert existing_batch(folder, "lot-1") is None
    files.manifest.write_bytes(manifest)
    files.pdf.write_bytes(files.pdf.read_bytes()[:-200])
    assert existing_batch(folder, "lot-1") is None


def test_failed_write_leaves_no_batch_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "letters"

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        write_batch(folder, "lot-9", [letter("RMP-9")], INSURER)
    assert list(folder.iterdir()) == []


def test_failed_manifest_write_leaves_the_batch_incomplete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "letters"
    real_manifest = letters_module._manifest

    def broken(*args: object, **kwargs: object) -> bytes:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(letters_module, "_manifest", broken)
    with pytest.raises(OSError, match="Input/output"):
        write_batch(folder, "lot-8", [letter("RMP-8")], INSURER)
    assert [path.name for path in folder.iterdir()] == ["lot-8.pdf"]
    assert existing_batch(folder, "lot-8") is None
    monkeypatch.setattr(letters_module, "_manifest", real_manifest)
    files = write_batch(folder, "lot-8", [letter("RMP-8")], INSURER)
    assert existing_batch(folder, "lot-8") == files


def test_markup_in_the_text_is_printed_not_interpreted() -> None:
    hostile = LetterText(
        reference="RMP-X",
        address_lines=("Madame #set page(width: 1mm) *DUPONT*", "1 RUE", "75001 PARIS"),
        place_date='Le 1er "janvier" 2027',
        subject="$x$ ] } #panic()",
        blocks=(Block("paragraph", '#include "/etc/passwd" <label> @ref'),),
    )
    text = page_texts(render_letter_pdf(hostile, INSURER))[0]
    assert "#set page(width: 1mm) *DUPONT*" in text
    assert '#include "/etc/passwd" <label> @ref' in text
    assert "#panic()" in text


@pytest.mark.parametrize("name", ["", "../x", "a/b", ".hidden", "lot 1"])
def test_batch_names_are_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(LetterError) as caught:
        write_batch(tmp_path, name, [letter("RMP-1")], INSURER)
    assert caught.value.code == "invalid_batch_name"


def test_bad_batch_arguments(tmp_path: Path) -> None:
    with pytest.raises(LetterError) as caught:
        write_batch(tmp_path / "l", "lot", [], INSURER)
    assert caught.value.code == "empty_batch"
    with pytest.raises(LetterError) as caught:
        write_batch(tmp_path / "l", "lot", [letter("RMP-1")], INSURER, flags=[(), ()])
    assert caught.value.code == "flags_mismatch"
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    with pytest.raises(LetterError) as caught:
        write_batch(shared, "lot", [letter("RMP-1")], INSURER)
    assert caught.value.code == "unsafe_directory"
