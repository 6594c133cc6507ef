"""Breach notice letters as PDF, and the print batches handed to the printer.

The engine is typst (PyPI ``typst``, the Rust compiler as a Python extension, run in a
short-lived child process per batch): a whole batch is one typst document compiled
from JSON data passed as ``sys.inputs``, laid out by
:data:`LAYOUT`. It was chosen by measurement against fpdf2 (``bench/bench_letters.py``,
figures in ``docs/benchmarks.md``): fpdf2 lays out text in Python and is several times
slower at campaign volume. The person's text is data for the layout, never typst markup,
so nothing in a name or an address can change the document.

A letter is A4, for a DL window envelope with the window on the right: the sender's
block top left, the address block (``notify.breach.postal``) 110 mm from the left edge
and 50 mm from the top, then reference, date, subject and body; every page carries the
reference and "Page n/N" of that letter. In a batch each letter is padded to an even
page count (``duplex``) so that it starts on a new sheet when printed recto-verso.

A batch is two files written atomically, the PDF first and the manifest last: the
manifest's presence means the batch is complete. ``existing_batch`` lets a run that
crashed between writing a batch and recording it pick the batch up instead of writing
it again. The caller bounds a batch's size by its number of letters (a few KB per
letter, see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import importlib.util
import io
import json
import os
import re
import secrets
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rempart.errors import RempartError
from rempart.notify.breach.content import Insurer, LetterText
from rempart.notify.breach.postal import MAX_LINES

__all__ = [
    "LAYOUT",
    "MANIFEST_COLUMNS",
    "BatchFiles",
    "LetterError",
    "existing_batch",
    "render_batch_pdf",
    "render_letter_pdf",
    "write_batch",
]

# DejaVu ships with matplotlib (a dependency already): the same fonts on every machine,
# with every glyph of French (œ, €, « ») and no system font looked up. Found without
# importing matplotlib (slow to import, and nothing else of it is needed).
_MATPLOTLIB = importlib.util.find_spec("matplotlib")
assert _MATPLOTLIB is not None
assert _MATPLOTLIB.origin is not None
FONTS = Path(_MATPLOTLIB.origin).parent / "mpl-data" / "fonts" / "ttf"

MANIFEST_COLUMNS = (
    "reference",
    "pages",
    "batch",
    "first_page",
    *(f"line{n}" for n in range(1, MAX_LINES + 1)),
    "flags",
)
"""The print manifest's header. ``line1``..``line6`` are print positions (the block's
lines in order, the rest empty); ``pages`` counts the padding page of a recto-verso
letter; ``first_page`` is 1-based in the batch's PDF; ``flags`` joined by ``,``."""

LAYOUT = r"""
#let data = json(bytes(sys.inputs.data))
#let sender = data.sender
#set document(title: data.title, author: sender.name)
// Ragged right, no hyphenation: easier to read, and measured faster than justified.
#set text(font: "DejaVu Sans", size: 10pt, lang: "fr", hyphenate: false)
#set par(leading: 0.6em, spacing: 0.9em)
#set page(paper: "a4", margin: (left: 20mm, right: 20mm, top: 20mm, bottom: 24mm))

#let letter(l, i) = {
  // Pages are counted per letter from two markers, not with the page counter: a
  // counter is resolved from the start of the document, which makes a batch quadratic.
  let start = label("rempart-start-" + str(i))
  let end = label("rempart-end-" + str(i))
  set page(footer: context {
    let first = locate(start).page()
    let n = here().page() - first + 1
    let total = locate(end).page() - first + 1
    if n <= total {
      set text(size: 8pt)
      grid(columns: (1fr, auto), [Référence : #l.reference], [Page #n/#total])
    }
  })
  [#metadata(i) #start]
  // Sender, top left (the margin is 20 mm: dy is from there).
  place(top + left, dy: -8mm, block(width: 100mm, {
    strong(sender.name)
    for line in sender.lines { linebreak(); line }
  }))
  // Address block for the DL window: 110 mm from the left edge, 50 mm from the top.
  place(top + left, dx: 90mm, dy: 30mm, block(width: 85mm, {
    set par(leading: 0.45em)
    l.address_lines.join(linebreak())
  }))
  v(64mm)
  grid(columns: (1fr, auto), [Référence : #l.reference], l.place_date)
  v(5mm)
  block(strong[Objet : #l.subject])
  v(3mm)
  for b in l.blocks {
    if b.kind == "heading" {
      block(above: 1.3em, below: 0.7em, sticky: true, text(weight: "bold", size: 10.5pt, b.text))
    } else if b.kind == "bullet" {
      list(b.text)
    } else if b.kind == "code" {
      block(above: 1.2em, below: 1.2em, breakable: false, width: 100%, inset: 4mm,
        stroke: 1.2pt, radius: 1mm,
        align(center, text(size: 13pt, weight: "bold", b.text)))
    } else {
      par(b.text)
    }
  }
  [#metadata(i) #end]
  if data.duplex {
    // From the two markers, not here(): the padding page would move here() itself.
    context if calc.odd(locate(end).page() - locate(start).page() + 1) { pagebreak(); box() }
  }
}

#for (i, l) in data.letters.enumerate() { letter(l, i) }
#context [#metadata(data.letters.enumerate().map(((i, l)) =>
  locate(label("rempart-start-" + str(i))).page())) <rempart-first-pages>]
"""
"""The page layout (typst). Its input: ``{"title", "duplex", "sender": {"name", "lines"},
"letters": [{"reference", "address_lines", "place_date", "subject", "blocks": [{"kind",
"text"}]}]}``."""

_PAGE_OBJECT = re.compile(rb"/Type\s*/Page\b(?!s)")


@dataclass(frozen=True)
class BatchFiles:
    """A complete print batch: the merged PDF, its manifest, its page count, and the
    PDF's SHA-256 (hex), recorded with the batch."""

    pdf: Path
    manifest: Path
    pages: int
    sha256: str


class LetterError(RempartError):
    """A letter or a batch cannot be produced: ``render_failed``, ``empty_batch``,
    ``invalid_batch_name``, ``flags_mismatch``, ``unsafe_directory``."""

    code = "letter_error"
    status = 500


def _sender_lines(insurer: Insurer) -> list[str]:
    """The insurer's postal address as lines: its own line breaks, or its commas."""
    text = insurer.postal_address.strip()
    parts = text.splitlines() if "\n" in text else text.split(",")
    return [part.strip() for part in parts if part.strip()]


def _letter_data(letter: LetterText) -> dict[str, Any]:
    return {
        "reference": letter.reference,
        "address_lines": list(letter.address_lines),
        "place_date": letter.place_date,
        "subject": letter.subject,
        "blocks": [{"kind": block.kind, "text": block.text} for block in letter.blocks],
    }


# Runs in a fresh interpreter per batch: typst memoizes every layout it does in
# process-wide caches that the binding never evicts (about 1 MB per letter: a worker
# writing batches would grow by gigabytes). A child that exits frees them; it imports
# nothing but typst (a few tens of ms). Its answer on stdout: the letters' first pages
# as one JSON line, then the PDF.
_CHILD = """
import json, pathlib, sys, tempfile, typst
layout, fonts = sys.argv[1], sys.argv[2]
with tempfile.TemporaryDirectory(prefix="rempart-letters-") as folder:
    # A file, not bytes: the binding's compiler answers queries only for a file input.
    source = pathlib.Path(folder) / "letter.typ"
    source.write_text(layout, encoding="utf-8")
    compiler = typst.Compiler(str(source), font_paths=[fonts], ignore_system_fonts=True,
                              sys_inputs={"data": sys.stdin.buffer.read().decode("utf-8")})
    try:
        pdf = compiler.compile(format="pdf", pdf_tags=False)
        first = compiler.query("<rempart-first-pages>", field="value", one=True)
    except typst.TypstError as error:
        sys.stderr.write(str(error))
        sys.exit(3)
sys.stdout.buffer.write(json.dumps(json.loads(first)).encode() + b"\\n" + pdf)
"""


def _compile(
    letters: Sequence[LetterText], insurer: Insurer, *, title: str, duplex: bool
) -> tuple[bytes, list[int]]:
    """The PDF and each letter's first page (1-based)."""
    data = {
        "title": title,
        "duplex": duplex,
        "sender": {"name": insurer.name, "lines": _sender_lines(insurer)},
        "letters": [_letter_data(letter) for letter in letters],
    }
    # No PDF tags (in the child): a printed letter is read on paper, and tags cost time.
    done = subprocess.run(  # noqa: S603 - our interpreter, our code, no shell
        [sys.executable, "-I", "-c", _CHILD, LAYOUT, str(FONTS)],
        input=json.dumps(data, ensure_ascii=False).encode("utf-8"),
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        # The last line of typst's message: what failed in the layout, not the letters.
        detail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        raise LetterError(
            f"the letter layout failed: {' '.join(detail) or done.returncode}",
            code="render_failed",
        )
    header, _, pdf = done.stdout.partition(b"\n")
    return pdf, [int(page) for page in json.loads(header)]


def render_letter_pdf(letter: LetterText, insurer: Insurer) -> bytes:
    """One person's letter (preview, tests): no padding page."""
    pdf, _ = _compile([letter], insurer, title=f"Lettre {letter.reference}", duplex=False)
    return pdf


def render_batch_pdf(
    letters: Sequence[LetterText], insurer: Insurer, *, title: str, duplex: bool = True
) -> tuple[bytes, list[int]]:
    """A batch's merged PDF and each letter's page count (padding included)."""
    if not letters:
        raise LetterError("a batch has at least one letter", code="empty_batch")
    pdf, first_pages = _compile(letters, insurer, title=title, duplex=duplex)
    total = _page_count(pdf)
    ends = [*first_pages[1:], total + 1]
    return pdf, [end - first for first, end in zip(first_pages, ends, strict=True)]


def _page_count(pdf: bytes) -> int:
    # typst writes page objects uncompressed (no object streams): counted as they are.
    return len(_PAGE_OBJECT.findall(pdf))


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,100}", name):
        raise LetterError(f"invalid batch name {name!r}", code="invalid_batch_name")


def _private_directory(directory: Path) -> None:
    """Letters hold personal data: the folder is made 0700. A shared sticky folder
    (``/tmp``) is refused rather than locked down for everyone else."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = directory.stat().st_mode
    if mode & stat.S_ISVTX:
        raise LetterError("the letters folder is a shared (sticky) folder", code="unsafe_directory")
    if stat.S_IMODE(mode) != 0o700:
        directory.chmod(0o700)


def _write_atomically(path: Path, content: bytes) -> None:
    """Temporary file in the same folder, fsync, rename: the final name only ever
    names a complete file."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        raise


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _manifest(
    name: str,
    letters: Sequence[LetterText],
    pages: Sequence[int],
    flags: Sequence[tuple[str, ...]],
) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(MANIFEST_COLUMNS)
    first = 1
    for letter, count, letter_flags in zip(letters, pages, flags, strict=True):
        lines = [*letter.address_lines, *[""] * MAX_LINES][:MAX_LINES]
        writer.writerow([letter.reference, count, name, first, *lines, ",".join(letter_flags)])
        first += count
    return out.getvalue().encode("utf-8")


def write_batch(
    directory: Path,
    name: str,
    letters: Sequence[LetterText],
    insurer: Insurer,
    *,
    flags: Sequence[tuple[str, ...]] | None = None,
    duplex: bool = True,
) -> BatchFiles:
    """Write ``<name>.pdf`` (every letter, each from a new sheet) and ``<name>.csv``
    (its manifest, one row per letter) atomically, the manifest last.

    ``flags`` are the address blocks' flags (``abbreviated``, ``truncated``), one tuple
    per letter, written in the manifest for the printer to check those envelopes.
    """
    _check_name(name)
    if flags is None:
        flags = [()] * len(letters)
    if len(flags) != len(letters):
        raise LetterError("one flags tuple per letter", code="flags_mismatch")
    pdf, pages = render_batch_pdf(letters, insurer, title=f"Lot {name}", duplex=duplex)
    _private_directory(directory)
    discard_temporaries(directory, name)
    pdf_path, manifest_path = directory / f"{name}.pdf", directory / f"{name}.csv"
    # A manifest from an earlier, different attempt must not vouch for the new PDF.
    manifest_path.unlink(missing_ok=True)
    _write_atomically(pdf_path, pdf)
    _fsync_directory(directory)
    _write_atomically(manifest_path, _manifest(name, letters, pages, flags))
    _fsync_directory(directory)
    return BatchFiles(
        pdf=pdf_path,
        manifest=manifest_path,
        pages=sum(pages),
        sha256=hashlib.sha256(pdf).hexdigest(),
    )


def discard_temporaries(directory: Path, name: str) -> int:
    """Remove the temporary files a writer of batch ``name`` killed mid-write left behind
    (hidden ``.<name>.pdf.<random>.tmp`` files, never a printed batch). Only for the
    batch's current holder: the campaign runner holds it (row lock or lock file), so no
    live writer owns them."""
    _check_name(name)
    removed = 0
    for suffix in ("pdf", "csv"):
        for leftover in directory.glob(f".{name}.{suffix}.*.tmp"):
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed


def _manifest_pages(manifest: str, name: str) -> int | None:
    """The page count a manifest vouches for, or ``None`` if it is not a whole,
    consistent manifest of batch ``name`` (rows contiguous from page 1)."""
    rows = list(csv.reader(io.StringIO(manifest), delimiter=";"))
    if len(rows) < 2 or tuple(rows[0]) != MANIFEST_COLUMNS:
        return None
    expected_first = 1
    for row in rows[1:]:
        if len(row) != len(MANIFEST_COLUMNS) or row[2] != name:
            return None
        try:
            count, first = int(row[1]), int(row[3])
        except ValueError:
            return None
        if first != expected_first or count < 1:
            return None
        expected_first += count
    return expected_first - 1


def existing_batch(directory: Path, name: str) -> BatchFiles | None:
    """The batch already written under ``name``, if both files are there and the
    manifest matches the PDF (its rows cover the PDF's pages exactly, in order);
    ``None`` otherwise (nothing written, or an attempt that did not finish)."""
    _check_name(name)
    pdf_path, manifest_path = directory / f"{name}.pdf", directory / f"{name}.csv"
    try:
        pdf = pdf_path.read_bytes()
        manifest = manifest_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    pages = _manifest_pages(manifest, name)
    if pages is None:
        return None
    if not pdf.rstrip().endswith(b"%%EOF") or _page_count(pdf) != pages:
        return None
    return BatchFiles(
        pdf=pdf_path,
        manifest=manifest_path,
        pages=pages,
        sha256=hashlib.sha256(pdf).hexdigest(),
    )
