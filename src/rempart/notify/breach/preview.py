"""``notify preview``: one sample of each message variant, for review before sending.

The samples are fictitious persons (``render.variants``) told this campaign's facts
(period, measures, insurer): the reviewers see the real wording of every variant
without any insured person's data leaving the database.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from rempart.notify.breach.campaign import CampaignService
from rempart.notify.breach.letters import render_letter_pdf
from rempart.notify.breach.render import variants
from rempart.notify.breach.runner import CampaignRunner

__all__ = ["write_preview"]


def write_preview(
    service: CampaignService, runner: CampaignRunner, campaign_id: int, out_dir: Path
) -> list[Path]:
    context = service.context(campaign_id)
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    written: list[Path] = []
    for index, sample in enumerate(variants(service.insurer, sent_on=context.sent_on), start=1):
        content = dataclasses.replace(
            sample,
            incident_start=context.incident_start,
            incident_end=context.incident_end,
            measures=context.measures,
            insurer=service.insurer,
            sent_on=context.sent_on,
            complementary=sample.complementary or context.kind == "complementary",
        )
        name = f"{index:02d}-{content.extra.get('variant') or content.channel}"
        if content.channel == "email":
            rendered = runner.renderer.render_email(content)
            mail = runner.prepare_email(
                content,
                content.recipient.email or "exemple@example.invalid",
                f"<preview.{campaign_id}.{index}@{runner.domain}>",
            )
            written += [
                _write(out_dir / f"{name}.eml", mail.data),
                _write(out_dir / f"{name}.txt", rendered.text.encode()),
                _write(out_dir / f"{name}.html", rendered.html.encode()),
            ]
        else:
            block = service.address(content.recipient, minor=content.minor)
            letter = runner.renderer.render_letter(content, block.lines)
            written.append(
                _write(out_dir / f"{name}.pdf", render_letter_pdf(letter, service.insurer))
            )
    return written


def _write(path: Path, data: bytes) -> Path:
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    temporary.replace(path)
    return path
