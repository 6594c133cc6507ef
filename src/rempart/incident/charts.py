"""The report's charts, drawn on the server: SVG for the HTML, PNG for the PDF.

Figures are built with matplotlib's object API (``Figure`` and the Agg canvas),
never through ``pyplot``: pyplot keeps a global registry of figures and a
process-wide backend, and a report rendered inside the service must neither
change nor depend on either. Settings are applied in an ``rc_context`` for the
time of one render only.

Two renders of the same facts give identical bytes: the SVG's element ids come
from a fixed ``svg.hashsalt``, and the date/software metadata that SVG and PNG
would carry are removed. Text is never read as mathtext (an account named with a
``$`` is printed as it is). Labels are French; times are shown in Europe/Paris.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.typing import RcKeyType

from rempart.incident.summary import IncidentFacts

__all__ = ["PARIS", "REVEAL_LABELS", "Chart", "render_charts"]

PARIS = ZoneInfo("Europe/Paris")
TOP_ACCOUNTS = 10
TOP_DEPARTMENTS = 15
DPI = 150
HOUR_US = 3600 * 1_000_000

_RC: dict[RcKeyType, Any] = {
    "svg.hashsalt": "rempart-incident-report",
    "svg.fonttype": "none",  # text stays text: smaller, selectable, searchable
    "text.parse_math": False,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "figure.dpi": 100,
}

REVEAL_LABELS: dict[str, str] = {
    "identity": "Identité",
    "nir": "NIR (numéro de sécurité sociale)",
    "treating_doctor": "Médecin traitant",
    "low_income": "Faibles revenus (C2S)",
    "irregular_residence": "Séjour irrégulier (AME)",
    "health": "Maladie de longue durée (ALD)",
    "minor": "Mineurs",
    "over_75": "Plus de 75 ans",
}
"""Chart and report labels for what an exposure returned or revealed."""


@dataclass(frozen=True)
class Chart:
    key: str
    title: str
    svg: str
    """The ``<svg>`` element alone (no XML prolog), ready to inline in HTML."""
    png: bytes


@contextmanager
def _settings() -> Iterator[None]:
    with mpl.rc_context(_RC):
        yield


def _export(key: str, title: str, figure: Figure) -> Chart:
    FigureCanvasAgg(figure)  # binds the figure to Agg without touching pyplot
    svg_buf = io.StringIO()
    figure.savefig(svg_buf, format="svg", metadata={"Date": None, "Creator": None})
    png_buf = io.BytesIO()
    figure.savefig(png_buf, format="png", dpi=DPI, metadata={"Software": None})
    svg = svg_buf.getvalue()
    svg = svg[svg.index("<svg") :]
    return Chart(key, title, svg, png_buf.getvalue())


def _french_int(n: int) -> str:
    return f"{n:,}".replace(",", "\u202f")


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes)
    axes.set_axis_off()


def _timeline(facts: IncidentFacts) -> Chart:
    title = "Consultations ayant communiqué des données, par heure et par compte"
    figure = Figure(figsize=(8, 3.6))
    axes = figure.add_subplot()
    series = facts.scope.series
    if not series:
        _empty(axes, "Aucune consultation n'a communiqué de données.")
        return _export("timeline", title, figure)
    totals: dict[str, int] = {}
    for account, _, count in series:
        totals[account] = totals.get(account, 0) + count
    # The busiest accounts each get a line; the others are summed so that the legend
    # stays readable with dozens of accounts.
    ranked = sorted(totals, key=lambda a: (-totals[a], a))
    shown = ranked[:TOP_ACCOUNTS]
    lines: dict[str, dict[int, int]] = {a: {} for a in shown}
    others: dict[int, int] = {}
    for account, hour_us, count in series:
        target = lines.get(account, others)
        target[hour_us] = target.get(hour_us, 0) + count
    if others:
        lines[f"{len(ranked) - len(shown)} autres comptes"] = others
    # Hours since the first one on the x axis, labelled in Paris time: matplotlib's date
    # helpers are untyped, and hours are what an analyst reads here anyway.
    origin = min(hour for _, hour, _ in series)
    last = max(hour for _, hour, _ in series)
    # Every hour of the span, so that an idle hour shows as 0 rather than as a line
    # drawn across it.
    span = range(origin, last + HOUR_US, HOUR_US)
    xs = [(h - origin) / HOUR_US for h in span]
    for label, points in lines.items():
        style: dict[str, Any] = {"color": "#888888", "linestyle": "--"} if points is others else {}
        axes.step(
            xs, [points.get(h, 0) for h in span], where="post", linewidth=1, label=label, **style
        )

    def paris_hour(x: float, _: object) -> str:
        moment = datetime.fromtimestamp((origin + x * HOUR_US) / 1_000_000, tz=UTC)
        return moment.astimezone(PARIS).strftime("%d/%m %Hh")

    axes.xaxis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 3, 6, 10], integer=True))
    axes.xaxis.set_major_formatter(paris_hour)
    axes.set_ylabel("Consultations par heure")
    axes.set_xlabel("Heure de Paris")
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    figure.autofmt_xdate()
    figure.tight_layout()
    return _export("timeline", title, figure)


def _barh(key: str, title: str, items: list[tuple[str, int]], xlabel: str) -> Chart:
    figure = Figure(figsize=(8, 0.9 + 0.3 * max(len(items), 2)))
    axes = figure.add_subplot()
    if not items:
        _empty(axes, "Aucune personne concernée.")
        return _export(key, title, figure)
    labels = [label for label, _ in items][::-1]
    values = [value for _, value in items][::-1]
    bars = axes.barh(labels, values, color="#2f5d8a")
    axes.bar_label(bars, labels=[_french_int(v) for v in values], padding=3, fontsize=8)
    axes.set_xlabel(xlabel)
    axes.xaxis.set_major_formatter(lambda x, _: _french_int(int(x)))
    axes.margins(x=0.15)
    figure.tight_layout()
    return _export(key, title, figure)


def _reveals(facts: IncidentFacts) -> Chart:
    scope = facts.scope
    items = [
        ("identity", scope.by_category.get("identity", 0)),
        ("nir", scope.by_reveal.get("nir", scope.by_category.get("nir", 0))),
        ("treating_doctor", scope.by_category.get("treating_doctor", 0)),
        *((k, scope.by_reveal.get(k, 0)) for k in ("health", "low_income", "irregular_residence")),
        *((k, scope.by_reveal.get(k, 0)) for k in ("minor", "over_75")),
    ]
    present = [(REVEAL_LABELS[k], int(n)) for k, n in items if n > 0]
    return _barh(
        "reveals",
        "Personnes concernées par catégorie de données et par ce que l'exposition révèle",
        present,
        "Personnes",
    )


def _departments(facts: IncidentFacts) -> Chart:
    counts = sorted(facts.scope.by_department.items(), key=lambda kv: (-kv[1], kv[0]))
    items = [(f"Dép. {d}", int(n)) for d, n in counts[:TOP_DEPARTMENTS]]
    rest = sum(int(n) for _, n in counts[TOP_DEPARTMENTS:])
    if rest:
        items.append((f"autres ({len(counts) - TOP_DEPARTMENTS} dép.)", rest))
    return _barh(
        "departments",
        "Personnes concernées par département de résidence",
        items,
        "Personnes",
    )


def render_charts(facts: IncidentFacts) -> list[Chart]:
    """The three charts of the report, in the order the report shows them."""
    with _settings():
        return [_timeline(facts), _reveals(facts), _departments(facts)]
