"""Benchmark: PDF engines for the breach notice letters, side by side at campaign volume.

A campaign prints about 200,000 letters, and the whole campaign (300,000 e-mails
included) must take under 20 minutes on 2 cores: the letters should take a few minutes
at most. The same realistic 2-page letter (address block from ``notify.breach.postal``,
a body of headings, paragraphs, bullets and the verification code, varied names and
addresses with accents) is laid out by:

- typst (``notify.breach.letters``, the engine in use): ``write_batch`` itself, batches
  written atomically with fsync, in one process, then in 2 worker processes at once;
- fpdf2 (already a dependency, used for the CNIL report): the same layout written with
  its API here (per-letter "Page n/N" by revisiting the letter's pages, recto-verso
  padding), one process, whole batch in memory.

WeasyPrint is not measured: it needs Pango from the system, which the project's
machines do not have installed.

Measured: letters/s and pages/s per engine, MB per letter, peak memory; the 200,000
letters extrapolated from the measured rate (a campaign is batches of the same size,
each independent: the rate per batch does not change with their number).

    .venv/bin/python -m bench.bench_letters [--batch 500] [--typst-batches 6]
        [--fpdf2-batches 1] [--no-write]
"""

from __future__ import annotations

import argparse
import io
import logging
import multiprocessing
import os
import random
import resource
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fpdf import FPDF
from fpdf.enums import XPos, YPos
from pypdf import PdfReader

from bench.report import publish
from rempart.notify.breach.content import Block, Insurer, LetterText
from rempart.notify.breach.letters import FONTS, write_batch
from rempart.notify.breach.postal import address_block

CAMPAIGN_LETTERS = 200_000
GOAL_SECONDS = 300.0  # "a few minutes at most" for the letters of a campaign
WORKERS = 2

logging.getLogger("fontTools.subset").setLevel(logging.WARNING)

INSURER = Insurer(
    name="Caisse d'assurance maladie (démonstration)",
    website="www.rempart.example",
    sender_address="securite@rempart.example",
    postal_address="Service protection des données\n12 rue de la Paix\n75002 Paris",
    dpo_name="Claire Dubœuf",
    dpo_email="dpo@rempart.example",
    dpo_phone="01 23 45 67 89",
)

FIRST_NAMES = ("Hélène", "Jérôme", "Zoé", "François", "Maëlle", "Noël", "Anne-Sophie", "Loïc")
LAST_NAMES = ("Lefèvre", "Dubœuf", "Garçon", "Müller", "de La Tour-Dupin", "N'Diaye", "Roy")
STREETS = (
    "12, rue de l'Église",
    "145 boulevard du Maréchal de Lattre de Tassigny",
    "3 place de la Mairie",
    "8 bis chemin des Écoliers",
    "27 avenue du Général Leclerc",
    "Résidence les Érables, 4 allée des Cèdres",
)
CITIES = (("69003", "Lyon"), ("97400", "Saint-Denis"), ("13100", "Aix-en-Provence"))

PARAGRAPHS = (
    "Le 3 décembre 2026, nos équipes ont constaté que le compte d'un professionnel de santé "
    "avait été utilisé par une personne non autorisée pour consulter des informations "
    "administratives vous concernant, entre le 28 novembre et le 2 décembre 2026.",
    "Les informations consultées sont : votre numéro de sécurité sociale, votre nom, votre "
    "prénom, votre date de naissance et le nom de votre médecin traitant. Aucune donnée "
    "bancaire, aucune adresse et aucune information sur vos soins n'a été consultée.",
    "Ces informations peuvent être utilisées pour vous envoyer des messages frauduleux "
    "(SMS, courriels, appels) qui semblent venir de votre caisse, afin d'obtenir vos "
    "coordonnées bancaires ou un paiement. « Votre nouvelle Carte Vitale est disponible » "
    "est un exemple de tel message : la Carte Vitale et son renouvellement sont gratuits.",
)
CATEGORIES = [
    "votre numéro de sécurité sociale",
    "vos nom, prénom et date de naissance",
    "le nom de votre médecin traitant",
    "le fait que vous bénéficiez ou non de la complémentaire santé solidaire",
    "des informations sur votre prise en charge à 100 %",
]
BULLETS = (
    "Ne communiquez jamais vos coordonnées bancaires, un mot de passe ou un code reçu par SMS.",
    "Votre caisse ne vous demande jamais de paiement par courriel, SMS ou téléphone.",
    "Transférez les SMS frauduleux au 33700 et signalez les sites frauduleux.",
    "En cas de doute, rendez-vous sur www.rempart.example en tapant l'adresse vous-même.",
)


def sample_letters(count: int, seed: int = 0) -> tuple[list[LetterText], list[tuple[str, ...]]]:
    """Letters of about two pages each, as the campaign's template renders them."""
    rng = random.Random(seed)
    letters: list[LetterText] = []
    flags: list[tuple[str, ...]] = []
    for n in range(count):
        postcode, city = rng.choice(CITIES)
        block = address_block(
            sex=rng.choice((1, 2)),
            first_name=rng.choice(FIRST_NAMES),
            last_name=rng.choice(LAST_NAMES),
            street=rng.choice(STREETS),
            postcode=postcode,
            city=city,
            minor=rng.random() < 0.1,
        )
        # Each person's own dates and categories, as the real template words them: the
        # paragraphs differ from letter to letter (typst memoizes identical ones).
        day = rng.randrange(1, 28)
        read = rng.sample(CATEGORIES, rng.randrange(2, len(CATEGORIES) + 1))
        own = (
            f"Entre le {day} novembre et le {day + 1} novembre 2026 à {rng.randrange(8, 20)} h "
            f"{rng.randrange(60):02d}, les informations suivantes vous concernant ont été "
            f"consultées : {', '.join(read)}."
        )
        body = [Block("paragraph", "Madame, Monsieur,")]
        for title, paragraph in zip(
            ("Ce qui s'est passé", "Les informations concernées", "Les risques"),
            (PARAGRAPHS[0], own + " " + PARAGRAPHS[1], PARAGRAPHS[2]),
            strict=True,
        ):
            body += [Block("heading", title), Block("paragraph", paragraph)]
        body.append(Block("heading", "Ce que vous devez faire"))
        body += [Block("bullet", text) for text in BULLETS]
        body.append(Block("heading", "Vérifier que ce courrier est authentique"))
        body.append(Block("paragraph", "Sur www.rempart.example/verifier, saisissez :"))
        code = "".join(rng.choice("ACDEFGHJKMNPQRTUVWXY34679") for _ in range(12))
        body.append(Block("code", f"Code de vérification : {code[:4]}-{code[4:8]}-{code[8:]}"))
        body.append(Block("heading", "Vos droits"))
        body.append(Block("paragraph", PARAGRAPHS[0] + " " + PARAGRAPHS[2]))
        body.append(Block("paragraph", "Nous vous prions d'agréer nos salutations distinguées."))
        letters.append(
            LetterText(
                reference=f"RMP-{n:07d}-{rng.randrange(10**4):04d}",
                address_lines=block.lines,
                place_date="Le 3 décembre 2026",
                subject="Accès non autorisé à certaines de vos données",
                blocks=tuple(body),
            )
        )
        flags.append(block.flags)
    return letters, flags


# --------------------------------------------------------------------------- fpdf2


def fpdf2_batch(letters: Sequence[LetterText], insurer: Insurer) -> tuple[bytes, int]:
    """The letters' layout written with fpdf2: the PDF and its page count."""
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=24)
    pdf.set_margins(20, 20, 20)
    pdf.add_font("dejavu", "", str(FONTS / "DejaVuSans.ttf"))
    pdf.add_font("dejavu", "B", str(FONTS / "DejaVuSans-Bold.ttf"))
    sender = insurer.postal_address.splitlines()
    for letter in letters:
        first = pdf.page + 1
        pdf.add_page()
        pdf.set_font("dejavu", "B", 10)
        pdf.set_xy(20, 12)
        pdf.cell(100, 5, insurer.name, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("dejavu", "", 10)
        for line in sender:
            pdf.cell(100, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_y(50)
        for line in letter.address_lines:
            pdf.set_x(110)
            pdf.cell(85, 4.6, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_xy(20, 84)
        pdf.cell(120, 5, f"Référence : {letter.reference}")
        pdf.cell(50, 5, letter.place_date, align="R", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(5)
        pdf.set_font("dejavu", "B", 10)
        pdf.multi_cell(0, 5, f"Objet : {letter.subject}", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(3)
        for block in letter.blocks:
            if block.kind == "heading":
                pdf.ln(3)
                pdf.set_font("dejavu", "B", 10.5)
                pdf.multi_cell(0, 5, block.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(1)
            elif block.kind == "bullet":
                pdf.set_font("dejavu", "", 10)
                pdf.set_x(22)
                pdf.cell(5, 5, "•")
                pdf.multi_cell(0, 5, block.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            elif block.kind == "code":
                pdf.ln(3)
                pdf.set_font("dejavu", "B", 13)
                pdf.multi_cell(
                    0, 12, block.text, border=1, align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT
                )
                pdf.ln(3)
            else:
                pdf.set_font("dejavu", "", 10)
                pdf.multi_cell(0, 5, block.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.ln(2)
        last = pdf.page
        total = last - first + 1
        # "Page n/N" is known only once the letter is laid out: back to each of its pages.
        pdf.set_auto_page_break(auto=False)
        pdf.set_font("dejavu", "", 8)
        for page in range(first, last + 1):
            pdf.page = page
            pdf.set_xy(20, 280)
            pdf.cell(120, 4, f"Référence : {letter.reference}")
            pdf.cell(50, 4, f"Page {page - first + 1}/{total}", align="R")
        pdf.page = last
        pdf.set_auto_page_break(auto=True, margin=24)
        if total % 2:
            pdf.add_page()
    return bytes(pdf.output()), pdf.page


# --------------------------------------------------------------------------- measuring


@dataclass(frozen=True)
class Run:
    engine: str
    workers: int
    letters: int
    pages: int
    seconds: float
    cpu_seconds: float
    bytes: int
    peak_mib: float

    @property
    def letters_per_s(self) -> float:
        return self.letters / self.seconds

    @property
    def letters_per_cpu_s(self) -> float:
        return self.letters / self.cpu_seconds

    @property
    def kb_per_letter(self) -> float:
        return self.bytes / self.letters / 1000

    @property
    def campaign_minutes(self) -> float:
        return CAMPAIGN_LETTERS / self.letters_per_s / 60


def _cpu_seconds() -> float:
    """This process's CPU time and that of its finished children (typst's compilers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_mib() -> float:
    """The larger of this process's peak and its largest child's (a typst compiler)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, child) / 1024


def _typst_worker(job: tuple[Path, int, int, int]) -> tuple[int, int, int, float, float]:
    """Writes ``batches`` batches as the runner would; returns letters, pages, bytes,
    CPU seconds and peak MiB."""
    folder, batch, batches, seed = job
    pages = size = 0
    cpu = 0.0
    for n in range(batches):
        # New letters for every batch: identical ones would be answered from typst's cache.
        letters, flags = sample_letters(batch, seed * 100_000 + n)
        began = _cpu_seconds()
        files = write_batch(folder, f"lot-{seed}-{n:04d}", letters, INSURER, flags=flags)
        cpu += _cpu_seconds() - began
        pages += files.pages
        size += files.pdf.stat().st_size
    return batch * batches, pages, size, cpu, _peak_mib()


def _ready(_: int) -> None:
    time.sleep(0.5)


def measure_typst(folder: Path, batch: int, batches: int, workers: int) -> Run:
    jobs = [(folder / f"w{w}", batch, batches, w + 1) for w in range(workers)]
    if workers == 1:
        _typst_worker((folder / "warm-up", 20, 1, 99))
        began = time.perf_counter()
        results = [_typst_worker(jobs[0])]
        seconds = time.perf_counter() - began
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            # The workers' start-up is not timed: a runner starts its workers once.
            pool.map(_ready, range(workers), chunksize=1)
            began = time.perf_counter()
            results = pool.map(_typst_worker, jobs, chunksize=1)
            seconds = time.perf_counter() - began
    return Run(
        engine="typst",
        workers=workers,
        letters=sum(r[0] for r in results),
        pages=sum(r[1] for r in results),
        seconds=seconds,
        cpu_seconds=sum(r[3] for r in results),
        bytes=sum(r[2] for r in results),
        peak_mib=max(r[4] for r in results),
    )


def measure_fpdf2(batch: int, batches: int) -> Run:
    fpdf2_batch(sample_letters(20, 99)[0], INSURER)  # warm-up
    pages = size = 0
    seconds = cpu = 0.0
    for n in range(batches):
        letters, _ = sample_letters(batch, 500_000 + n)
        began, began_cpu = time.perf_counter(), _cpu_seconds()
        pdf, count = fpdf2_batch(letters, INSURER)
        seconds += time.perf_counter() - began
        cpu += _cpu_seconds() - began_cpu
        pages += count
        size += len(pdf)
    # Its own peak only: the process's children were typst's compilers.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Run("fpdf2", 1, batch * batches, pages, seconds, cpu, size, peak)


def _check_same_letters(folder: Path) -> str:
    """Both engines print the same letter: pages of one sample, for the report."""
    letters, _ = sample_letters(1, 7)
    files = write_batch(folder / "check", "one", letters, INSURER)
    fpdf, _ = fpdf2_batch(letters, INSURER)
    typst_pages = len(PdfReader(files.pdf).pages)
    fpdf_pages = len(PdfReader(io.BytesIO(fpdf)).pages)
    return f"one sample letter: typst {typst_pages} pages, fpdf2 {fpdf_pages} (padding included)"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=500, help="letters per batch")
    parser.add_argument("--typst-batches", type=int, default=6, help="batches per worker")
    parser.add_argument("--fpdf2-batches", type=int, default=1)
    parser.add_argument("--no-write", action="store_true", help="print, do not write the doc")
    args = parser.parse_args(argv)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="rempart-bench-letters-") as tmp:
        folder = Path(tmp)
        sanity = _check_same_letters(folder)
        fpdf2 = measure_fpdf2(args.batch, args.fpdf2_batches)
        runs = [
            measure_typst(folder / "t1", args.batch, args.typst_batches, 1),
            measure_typst(folder / "t2", args.batch, args.typst_batches, WORKERS),
            fpdf2,
        ]
    load_after = os.getloadavg()[0]
    for run in runs:
        print(
            f"{run.engine} x{run.workers}: {run.letters} letters, {run.pages} pages in "
            f"{run.seconds:.1f} s = {run.letters_per_s:.0f} letters/s "
            f"({run.letters_per_cpu_s:.0f} per CPU-s), "
            f"{run.kb_per_letter:.1f} KB/letter, peak {run.peak_mib:.0f} MiB; "
            f"{CAMPAIGN_LETTERS:,} letters = {run.campaign_minutes:.1f} min"
        )
    best = runs[1]
    met = best.campaign_minutes * 60 < GOAL_SECONDS
    # On 2 cores to itself, the letters would go at 2 x the rate per CPU-second.
    verdict = "met" if met else "NOT met"
    dedicated_minutes = CAMPAIGN_LETTERS / (WORKERS * best.letters_per_cpu_s) / 60
    rows = "\n".join(
        f"| {run.engine} | {run.workers} | {run.letters:,} | {run.pages:,} | {run.seconds:.1f} s "
        f"| **{run.letters_per_s:,.0f}** | {run.letters_per_cpu_s:,.0f} "
        f"| {run.kb_per_letter:.1f} KB | {run.peak_mib:.0f} MiB "
        f"| {run.campaign_minutes:.1f} min |"
        for run in runs
    )
    header = (
        "| engine | processes | letters | pages | wall time | letters/s | letters per CPU-s "
        "| per letter "
        f"| peak memory (per process) | {CAMPAIGN_LETTERS:,} letters |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    typst_one, fpdf = runs[0], runs[2]
    command = (
        f"`.venv/bin/python -m bench.bench_letters --batch {args.batch} "
        f"--typst-batches {args.typst_batches} --fpdf2-batches {args.fpdf2_batches}`"
    )
    markdown = f"""## Breach notice letters (PDF engines)

The same letter of about two pages (sender block, NF Z10-011 address block in the DL
window, reference, date, subject, headings, paragraphs, bullets, the verification code,
"Page n/N" and the reference on every page, each letter padded to an even page count
for recto-verso) laid out in batches of **{args.batch} letters**. typst is the engine in
use (`notify.breach.letters.write_batch`: the batch compiled as one document, the PDF
and its manifest written atomically with fsync); fpdf2 is the same layout written with
its API, the PDF kept in memory (no file written: its figure is a best case).

{header}
{rows}

- typst is **{typst_one.letters_per_s / fpdf.letters_per_s:.1f} times** faster than \
fpdf2 in one process ({typst_one.letters_per_cpu_s / fpdf.letters_per_cpu_s:.1f} times per \
CPU-second: typst also lays out on a second thread); fpdf2 lays out and subsets fonts in \
Python. typst is the engine.
- Goal: the letters of a {CAMPAIGN_LETTERS:,}-letter campaign in a few minutes (under \
{GOAL_SECONDS / 60:.0f} min) with {WORKERS} processes on the 2 cores: \
**{best.campaign_minutes:.1f} min at the measured wall-clock rate, {verdict}**; \
{dedicated_minutes:.1f} min at the rate per CPU-second on 2 cores \
to itself. Extrapolated from the measured rate: batches are independent (a child \
process each), so a campaign goes at the rate of its batches. Load average \
{load_before:.1f} before, {load_after:.1f} after (other work shared the cores when \
above ~1); in a real run the e-mails share the same 2 cores.
- Memory: each batch is compiled by a short-lived child interpreter (typst's caches, \
never evicted by its Python binding, grew a long-lived process by ~450 MB per batch of \
500 letters). That child peaks at **{best.peak_mib:.0f} MiB for {args.batch} letters** \
(about {best.peak_mib / args.batch:.1f} MiB per letter, the layout of the whole batch \
is held until the PDF is written): with 2 workers, batches of 500 to 1,000 letters keep \
the letters within 1 to 2 GiB.
- Size: **{best.kb_per_letter:.1f} KB per letter** (fonts subset once per batch): a \
batch of 500 letters is about {best.kb_per_letter * 500 / 1000:.1f} MB, a whole campaign \
about {best.kb_per_letter * CAMPAIGN_LETTERS / 1e6:.1f} GB. The caller bounds a batch by \
its number of letters.
- Justified and hyphenated text cost about 40 % more time in typst (measured while \
choosing): the letters are ragged right, which also reads better.
- Sanity: {sanity}.
- WeasyPrint: not measured (it needs the system's Pango).
- Reproduce: {command}
"""
    publish("letters", markdown, dry_run=args.no_write)


if __name__ == "__main__":
    main()
