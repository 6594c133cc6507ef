"""Campaign runs started from the console, in the background (no web framework here).

One daemon thread per running campaign, in a registry held by the process: a second
start of a campaign whose thread still runs is refused (:class:`JobRunning`). What a run
ends with — its report, or its error — stays in the registry for the campaign's page.

Nothing here has to survive the process: the runner is resumable and takes its own
per-campaign lock, so after a crash or a restart the operator starts the campaign again
and it goes on where it stopped (nobody skipped, nobody told twice).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from rempart.errors import RempartError
from rempart.notify.breach.runner import RunReport

__all__ = ["CampaignJob", "CampaignJobs", "JobRunning"]

log = structlog.get_logger("rempart.console.jobs")


class JobRunning(RempartError):
    code = "campaign_running"
    status = 409

    def __init__(self, campaign_id: int) -> None:
        super().__init__(f"campaign {campaign_id} is already running in this process")


@dataclass
class CampaignJob:
    campaign_id: int
    operator: str
    started_at: datetime
    finished_at: datetime | None = None
    report: RunReport | None = None
    error_code: str | None = None
    """``None`` while running and after success; the domain's code, or the exception's
    type name for anything else."""
    thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self.finished_at is None


class CampaignJobs:
    """The process's campaign runs, by campaign id."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[int, CampaignJob] = {}

    def start(self, campaign_id: int, operator: str, run: Callable[[], RunReport]) -> CampaignJob:
        """Start ``run`` in a daemon thread; :class:`JobRunning` when the campaign's
        previous run has not finished."""
        with self._lock:
            previous = self._jobs.get(campaign_id)
            if previous is not None and previous.running:
                raise JobRunning(campaign_id)
            job = CampaignJob(campaign_id, operator, datetime.now(UTC))
            job.thread = threading.Thread(
                target=self._run,
                args=(job, run),
                name=f"campaign-{campaign_id}",
                daemon=True,
            )
            self._jobs[campaign_id] = job
        job.thread.start()
        return job

    def get(self, campaign_id: int) -> CampaignJob | None:
        with self._lock:
            return self._jobs.get(campaign_id)

    def wait(self, campaign_id: int, timeout: float | None = None) -> bool:
        """Wait for the campaign's run to end; whether it has (``True`` when none ran)."""
        job = self.get(campaign_id)
        if job is None or job.thread is None:
            return True
        job.thread.join(timeout)
        return not job.thread.is_alive()

    @staticmethod
    def _run(job: CampaignJob, run: Callable[[], RunReport]) -> None:
        try:
            job.report = run()
        except RempartError as exc:
            job.error_code = exc.code
            log.warning("console_campaign_failed", campaign=job.campaign_id, error=exc.code)
        except Exception as exc:  # noqa: BLE001 - a thread's error must reach the page
            job.error_code = type(exc).__name__
            # The type only, no traceback: a message could hold a person's data.
            log.error(  # noqa: TRY400
                "console_campaign_failed", campaign=job.campaign_id, error=type(exc).__name__
            )
        finally:
            job.finished_at = datetime.now(UTC)
