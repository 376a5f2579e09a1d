"""Re-embed every photo whose vector came from another embedder than the active one."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from recognition.models import ReembedJob
from recognition.services import gallery_reembed_start


class Command(BaseCommand):
    help = "Queue (or, in the embedded mode, run) re-embedding of stale gallery photos with the active embedder."

    def handle(self, *args, **options) -> None:
        job = gallery_reembed_start()
        if job is None:
            running = ReembedJob.objects.filter(status__in=[ReembedJob.Status.QUEUED, ReembedJob.Status.RUNNING]).first()
            self.stdout.write(f"Nothing to start: {running}" if running else "Every photo already uses the active embedder.")
            return
        job.refresh_from_db()
        self.stdout.write(str(job))
