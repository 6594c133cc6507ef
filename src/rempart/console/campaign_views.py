"""What the campaign pages show, and where their files live (no web framework here).

Planning, previewing and running go through ``CampaignService``, ``write_preview`` and
``CampaignRunner`` exactly as ``rempart notify`` does; this module reads the campaigns
and names the folders under the data directory: the letters' print batches
(``courriers/campagne-N``) and the preview's samples (``apercus/campagne-N``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from rempart.console.dpo_texts import CAMPAIGN_STATUS, french_moment
from rempart.store.engine import as_utc
from rempart.store.models import Campaign, Incident, PrintBatch

__all__ = [
    "BatchLine",
    "CampaignRow",
    "PreviewFile",
    "batches",
    "campaign_rows",
    "letters_dir",
    "preview_dir",
    "preview_file",
    "preview_files",
    "unreachable_text",
]

_REASONS: dict[str, str] = {
    "unknown_person": "personne absente du registre des assurés",
    "no_address": "aucune adresse utilisable",
    "invalid_postcode": "code postal invalide",
    "missing_city": "adresse postale sans commune",
    "missing_name": "adresse postale sans nom",
    "missing_street": "adresse postale sans voie",
}
_FIRST = {
    "email_refused": "courriel refusé, puis ",
    "email_bounced": "courriel revenu en erreur, puis ",
}


def unreachable_text(reason: str) -> str:
    """A French reason for a person no channel reaches (the plan's or the runner's code,
    ``email_refused_no_address`` for an e-mail refused then no postal address)."""
    for prefix, text in _FIRST.items():
        if reason.startswith(prefix + "_"):
            rest = reason.removeprefix(prefix + "_")
            return text + _REASONS.get(rest, rest)
    return _REASONS.get(reason, reason)


_PREVIEW_KINDS = {
    ".eml": "Courriel complet (.eml)",
    ".txt": "Courriel, texte",
    ".html": "Courriel, HTML (affiché comme texte)",
    ".pdf": "Lettre (PDF)",
}


def letters_dir(data_dir: Path, campaign_id: int) -> Path:
    return data_dir / "courriers" / f"campagne-{campaign_id}"


def preview_dir(data_dir: Path, campaign_id: int) -> Path:
    return data_dir / "apercus" / f"campagne-{campaign_id}"


@dataclass(frozen=True)
class CampaignRow:
    campaign_id: int
    incident_id: int
    incident_name: str
    kind: str
    status: str
    status_text: str
    persons: int
    created_at: str
    created_by: str


def campaign_rows(session: Session, *, limit: int = 500) -> list[CampaignRow]:
    rows = session.execute(
        select(Campaign, Incident.name)
        .join(Incident, Incident.incident_id == Campaign.incident_id)
        .order_by(Campaign.campaign_id.desc())
        .limit(limit)
    ).all()
    return [
        CampaignRow(
            campaign_id=c.campaign_id,
            incident_id=c.incident_id,
            incident_name=name,
            kind=c.kind,
            status=c.status,
            status_text=CAMPAIGN_STATUS.get(c.status, c.status),
            persons=c.persons,
            created_at=french_moment(as_utc(c.created_at)),
            created_by=c.created_by,
        )
        for c, name in rows
    ]


@dataclass(frozen=True)
class BatchLine:
    name: str
    state: str
    letters: int
    pages: int
    written_at: str


def batches(session: Session, campaign_id: int) -> list[BatchLine]:
    return [
        BatchLine(
            b.name,
            b.state,
            b.letters,
            b.pages,
            french_moment(as_utc(b.written_at)) if b.written_at else "",
        )
        for b in session.scalars(
            select(PrintBatch)
            .where(PrintBatch.campaign_id == campaign_id)
            .order_by(PrintBatch.batch_id)
        )
    ]


@dataclass(frozen=True)
class PreviewFile:
    name: str
    kind: str
    size: int


def preview_files(folder: Path) -> list[PreviewFile]:
    """The samples ``write_preview`` wrote (not its temporary files)."""
    if not folder.is_dir():
        return []
    return [
        PreviewFile(path.name, _PREVIEW_KINDS[path.suffix], path.stat().st_size)
        for path in sorted(folder.iterdir())
        if path.is_file() and not path.name.startswith(".") and path.suffix in _PREVIEW_KINDS
    ]


def preview_file(folder: Path, name: str) -> Path | None:
    """The sample called ``name``, only if it is one of the listed files: a name from a
    URL never reaches the file system otherwise (no ``..``, no other folder)."""
    for listed in preview_files(folder):
        if listed.name == name:
            return folder / listed.name
    return None
