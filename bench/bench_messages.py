"""Benchmark: the message checker's precision and recall on the held-out French corpus.

Runs ``rempart.messages.MessageChecker`` with the packaged default rules over every
message of ``bench/messages`` (``bench.messages_corpus``), each read by
``read_message`` as the CLI and the API read it. The genuine breach notices' codes are
known to a notice-code check built from the rendered samples (code, last name), as the
database's check knows the codes of the notices it sent. Reports, per family, the share
flagged (phishing families) or left genuine-looking (genuine families), the overall
precision, recall and F1 of "flagged" (phishing or suspicious) against the label, the
confusion table, and the misclassified messages (with their reasons in the console,
ids only in the docs).

    .venv/bin/python -m bench.bench_messages [--corpus DIR] [--no-write]
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.messages_corpus import CORPUS_DIR, Corpus, CorpusMessage, NoticeSample, load_corpus
from bench.report import publish
from rempart.config import Settings
from rempart.messages import (
    InvalidMessage,
    MessageChecker,
    NoticeCodeCheck,
    Verdict,
    load_rules,
    read_message,
)
from rempart.notify.breach.codes import normalize_code, normalize_name

FLAGGED = frozenset({"phishing", "suspicious"})
VERDICTS = ("phishing", "suspicious", "genuine-looking", "error")
# What issue 18 says a genuine message must not be flagged for alone.
MENTIONS = {
    "the Carte Vitale": re.compile(r"carte\s+vitale", re.IGNORECASE),
    "a refund or a payment": re.compile(r"rembours|reimburs|paiement|indemnit", re.IGNORECASE),
    "a data breach": re.compile(
        r"fuite|violation\s+de\s+données|personne\s+non\s+autorisée|faux\s+avis|data\s+breach",
        re.IGNORECASE,
    ),
}


@dataclass(frozen=True)
class Outcome:
    message: CorpusMessage
    verdict: str
    """``phishing``, ``suspicious``, ``genuine-looking``, or ``error`` (refused input)."""
    score: int | None
    reasons: tuple[tuple[str, str], ...]
    """(code, text) of each reason, or the error's (code, detail)."""
    seconds: float

    @property
    def flagged(self) -> bool:
        return self.verdict in FLAGGED

    @property
    def right(self) -> bool:
        return self.flagged == (self.message.label == "phishing")


def notice_check(samples: Iterable[NoticeSample]) -> NoticeCodeCheck:
    """The corpus's notices as the checker's ``NoticeCodeCheck``: a known code, with the
    right last name when the message names one; an unknown code and someone else's
    name answer alike (False)."""
    known: dict[str, str] = {}
    for sample in samples:
        bare = normalize_code(sample.code)
        assert bare is not None, sample.id
        known[bare] = normalize_name(sample.last_name)

    def check(code: str, last_name: str | None) -> bool:
        bare = normalize_code(code)
        if bare is None or bare not in known:
            return False
        return last_name is None or normalize_name(last_name) == known[bare]

    return check


def run(corpus: Corpus, checker: MessageChecker) -> list[Outcome]:
    outcomes = []
    for message in corpus.messages:
        start = time.perf_counter()
        try:
            if message.is_eml:
                parsed = read_message(message.body, channel="email")
            else:
                parsed = read_message(
                    message.body,
                    channel=message.channel,
                    sender=message.sender,
                    subject=message.subject,
                )
            verdict: Verdict | None = checker.check(parsed)
            refused = None
        except InvalidMessage as exc:
            verdict, refused = None, exc
        seconds = time.perf_counter() - start
        if verdict is not None:
            outcomes.append(
                Outcome(
                    message,
                    verdict.verdict,
                    verdict.score,
                    tuple((r.code, r.text) for r in verdict.reasons),
                    seconds,
                )
            )
        else:
            assert refused is not None
            outcomes.append(
                Outcome(message, "error", None, ((refused.code, refused.detail),), seconds)
            )
    return outcomes


def wilson(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sound near 0 and 1, unlike p ± 2 SE)."""
    if total == 0:
        return (math.nan, math.nan)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "-"


def _ratio(part: int, whole: int) -> str:
    low, high = wilson(part, whole)
    return f"{part / whole:.3f} [{low:.2f}, {high:.2f}]" if whole else "-"


def _overall_row(name: str, t: Totals, n_phishing: int) -> str:
    precision, recall = _ratio(t.tp, t.tp + t.fp), _ratio(t.tp, n_phishing)
    return f"| {name} | {precision} | {recall} | {t.f1:.3f} |"


def family_rows(corpus: Corpus, outcomes: Sequence[Outcome]) -> list[str]:
    by_id = {o.message.id: o for o in outcomes}
    rows = []
    for family in corpus.families:
        got = [by_id[m.id] for m in family.messages]
        n = len(got)
        if family.label == "phishing":
            flagged = sum(o.flagged for o in got)
            phishing = sum(o.verdict == "phishing" for o in got)
            rows.append(
                f"| {family.name} | phishing | {n} | {_share(flagged, n)} | "
                f"{_share(phishing, n)} | |"
            )
        else:
            genuine = sum(o.verdict == "genuine-looking" for o in got)
            rows.append(f"| {family.name} | genuine | {n} | | | {_share(genuine, n)} |")
    return rows


@dataclass(frozen=True)
class Totals:
    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else math.nan

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else math.nan

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else math.nan


def totals(outcomes: Sequence[Outcome], flagged: Callable[[Outcome], bool]) -> Totals:
    phishing = [o for o in outcomes if o.message.label == "phishing"]
    genuine = [o for o in outcomes if o.message.label == "genuine"]
    tp = sum(flagged(o) for o in phishing)
    fp = sum(flagged(o) for o in genuine)
    return Totals(tp=tp, fp=fp, fn=len(phishing) - tp, tn=len(genuine) - fp)


def confusion_rows(outcomes: Sequence[Outcome]) -> list[str]:
    counts = Counter((o.verdict, o.message.label) for o in outcomes)
    rows = []
    for verdict in VERDICTS:
        if verdict == "error" and not any(v == "error" for v, _ in counts):
            continue
        rows.append(
            f"| {verdict} | {counts[(verdict, 'phishing')]} | {counts[(verdict, 'genuine')]} |"
        )
    return rows


def mention_rows(outcomes: Sequence[Outcome]) -> list[str]:
    rows = []
    genuine = [o for o in outcomes if o.message.label == "genuine"]
    for topic, pattern in MENTIONS.items():
        hits = [o for o in genuine if pattern.search(o.message.visible_text())]
        left = sum(o.verdict == "genuine-looking" for o in hits)
        rows.append(f"| {topic} | {_share(left, len(hits))} |")
    return rows


def code_reason_lines(outcomes: Sequence[Outcome]) -> list[str]:
    """Which messages the notice-code reasons were given to, by label: a genuine code
    in a phishing message (someone else's code) shows here even when other signals
    still flag the message."""
    lines = []
    for code in ("notice_code_genuine", "notice_code_unknown"):
        parts = []
        for label in ("genuine", "phishing"):
            given = [
                o.message.id
                for o in outcomes
                if o.message.label == label and any(c == code for c, _ in o.reasons)
            ]
            shown = ""
            if given and label == "phishing":
                why = ": another person's genuine code" if code == "notice_code_genuine" else ""
                shown = f" ({', '.join(given)}{why})"
            parts.append(f"{len(given)} {label}{shown}")
        lines.append(f"- `{code}` given to {' and '.join(parts)} messages.")
    return lines


def print_misclassified(outcomes: Sequence[Outcome]) -> None:
    wrong = [o for o in outcomes if not o.right]
    print(f"\n{len(wrong)} misclassified:")
    for o in wrong:
        print(
            f"- {o.message.id} ({o.message.family}, {o.message.label}): {o.verdict} score={o.score}"
        )
        for code, text in o.reasons:
            print(f"    {code}: {text}")


def hostile_messages(size: int) -> dict[str, bytes]:
    """Messages at the size limit made to cost the most: many tiny sentences, many
    distinct ones, one endless sentence of words, many links, deep HTML."""
    texts = {
        "tiny sentences": "M. " * (size // 3),
        "distinct sentences": " ".join(f"mot{i} ab." for i in range(size // 8)),
        "one endless sentence": " ".join(f"mot{i} ab" for i in range(size // 8)),
        "links": " ".join(f"http://exemple{i}.com/{'b' * 20}" for i in range(size // 30)),
        "nested html": "<p>"
        + "<a href='http://x.com'><span style='display:none'>" * (size // 120)
        + "x</p>",
    }
    return {name: text.encode()[:size] for name, text in texts.items()}


def hostile_seconds(checker: MessageChecker, size: int) -> dict[str, float]:
    """The slowest of three checks of each hostile message (the public page's worst)."""
    timings = {}
    for name, body in hostile_messages(size).items():
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            channel = "email" if name == "nested html" else "sms"
            checker.check(read_message(body, channel=channel, max_bytes=size))
            runs.append(time.perf_counter() - start)
        timings[name] = max(runs)
    return timings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--corpus", type=Path, default=CORPUS_DIR, help="the corpus folder")
    parser.add_argument("--no-write", action="store_true", help="print, do not write the docs")
    args = parser.parse_args(argv)

    corpus = load_corpus(args.corpus)
    checker = MessageChecker(load_rules(), notice_check=notice_check(corpus.notices))
    outcomes = run(corpus, checker)
    print_misclassified(outcomes)

    n_phishing = sum(o.message.label == "phishing" for o in outcomes)
    n_genuine = len(outcomes) - n_phishing
    flagged = totals(outcomes, lambda o: o.flagged)
    strict = totals(outcomes, lambda o: o.verdict == "phishing")
    foreign = [o for o in outcomes if o.message.lang != "fr"]
    wrong = [o.message.id for o in outcomes if not o.right]
    errors = [o.message.id for o in outcomes if o.verdict == "error"]
    refused = f"{len(errors)} ({', '.join(errors)})" if errors else "none"
    per_message = statistics.median(o.seconds for o in outcomes) * 1000
    limit = Settings.model_fields["messages_max_bytes"].default
    hostile = hostile_seconds(checker, limit)
    hostile_text = "; ".join(f"{name} {seconds:.2f} s" for name, seconds in hostile.items())
    print(f"hostile messages of {limit:,} bytes: {hostile_text}")
    langs = ", ".join(sorted({o.message.lang for o in foreign}))
    emls = sum(o.message.is_eml for o in outcomes)
    print(
        f"\nflagged: precision {flagged.precision:.3f} recall {flagged.recall:.3f} "
        f"F1 {flagged.f1:.3f}; phishing verdict alone: precision {strict.precision:.3f} "
        f"recall {strict.recall:.3f}; {len(errors)} refused"
    )

    publish(
        "messages",
        f"""## Message checker on a held-out corpus (issue 18)

The default rules (`src/rempart/messages/rules.toml`) over the labelled corpus of
`bench/messages/`: {len(outcomes)} messages, {n_phishing} phishing and {n_genuine}
genuine, in {len(corpus.families)} families; {emls} of them read as whole e-mails (the .eml
files: HTML with a hidden link, non-UTF-8, an attachment; the HTML e-mails; the notices
as sent), {len(foreign)} in another language
({langs}). Each message is read by `read_message` and checked by `MessageChecker`, as the
CLI and the API do; the genuine notices' codes are known to the notice-code check
(built from the rendered samples' code and last name, standing for the database).

**How the corpus was made.** Written by hand for this evaluation from the public
warnings of the Assurance Maladie, cybermalveillance.gouv.fr and the CNIL about the
waves that follow a breach (Carte Vitale fees, refunds, incomplete files, account
closures, fake breach notices, call-back numbers), and from the shape of genuine
service messages (payments, appointments, prevention, documents, Carte Vitale); the
genuine breach notices are not written but rendered by Rempart's own renderer
(`rempart.notify.breach.render`, `mime`), each with its own code. Genuine messages name
the Carte Vitale, refunds, bank details or the breach on purpose. The corpus is
**held out**: its author did not read the rules or their tests, and no message or
label was changed after seeing the checker's answers. It is small and made by one
hand: the figures say how the rules generalise to messages written apart from them,
not how they do on real traffic; and, as in the public warnings, nearly every phishing
message carries a signal the issue lists (a foreign link, a request, a number to call),
so the recall is that against the waves as described, not against a fraudster who
writes around the rules. Assumed for the demo insurer: its SMS come from the
sender name `Rempart`, its e-mails from `no-reply@rempart.example` (the default
`REMPART_MAIL_FROM`), and its site is `www.rempart.example`.

What the set was used for, in order: the checker's first version was run on it once
(flagged precision 0.988, recall 0.988: one message, `if-11`, refused because its
subject, labelled Latin-1, held a Windows-1252 dash; another, `fb-12`, a fake notice
carrying someone else's genuine code, still flagged but credited `notice_code_genuine`).
Two defects it showed were then mended without touching the rules' words or weights: a
Latin-1 label is read as Windows-1252 (as browsers do), and a salutation naming someone
is the name a notice code is checked against (as the issue asks). The figures below are
after those two changes, so for those two messages the set is no longer held out; the
rest of the verdicts did not move.

Per family: each family holds one label, so its row is the recall of that label (for a
phishing family, the share flagged; for a genuine one, the share left genuine-looking,
whose complement is that family's false alarms). Precision is a property of a verdict
over the whole set, given below with its interval; a genuine family's false alarms are
what lowers it.

| family | label | n | flagged (phishing or suspicious) | phishing verdict | genuine-looking |
| --- | --- | ---: | ---: | ---: | ---: |
{chr(10).join(family_rows(corpus, outcomes))}

Overall, "flagged" (phishing or suspicious) against the label, with 95 % Wilson
intervals:

| | precision | recall | F1 |
| --- | ---: | ---: | ---: |
{_overall_row("flagged", flagged, n_phishing)}
{_overall_row("phishing verdict alone", strict, n_phishing)}

Confusion (rows: verdict; columns: label):

| verdict | phishing | genuine |
| --- | ---: | ---: |
{chr(10).join(confusion_rows(outcomes))}

Genuine messages that mention a lure on purpose, left genuine-looking:

| mention | genuine-looking |
| --- | ---: |
{chr(10).join(mention_rows(outcomes))}

{chr(10).join(code_reason_lines(outcomes))}
- Messages in another language: {_share(sum(o.right for o in foreign), len(foreign))} right.
- Refused as bad input (counted as not flagged): {refused}.
- Misclassified ({len(wrong)}): {", ".join(wrong) if wrong else "none"}. Their reasons:
  `python -m bench.bench_messages --no-write`.
- Median time to read and check one message: {per_message:.2f} ms (one process).
- Hostile messages at the default size limit ({limit:,} bytes), the slowest of three
  checks each: {hostile_text}.
- Reproduce: `.venv/bin/python -m bench.bench_messages`""",
        dry_run=args.no_write,
    )


if __name__ == "__main__":
    main()
