"""Re-embed every photo whose vector came from another embedder than the active one."""

from __future__ import annotations

import threading
import time

from django.core.management.base import BaseCommand
from django.db import DatabaseError, connection
from tqdm import tqdm

from recognition.models import ReembedJob
from recognition.services import gallery_reembed_start

LIVE = (ReembedJob.Status.QUEUED, ReembedJob.Status.RUNNING)


class Command(BaseCommand):
    help = ("Queue (or, in the embedded mode, run) re-embedding of stale gallery photos with the active embedder; "
            "a progress bar follows the job (its done/total is also in the admin's re-embedding jobs list).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-wait", action="store_true", help="with workers: queue the job and return at once")
        parser.add_argument("--interval", type=float, default=0.5, help="seconds between progress reads")

    def handle(self, *args, no_wait: bool, interval: float, **options) -> None:
        latest = ReembedJob.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        bar = tqdm(total=0, desc="re-embedding", unit="photo", file=self.stderr._out, dynamic_ncols=True)
        stop = threading.Event()
        # In the embedded default the job runs right here, inside gallery_reembed_start; a reader
        # thread follows its progress row meanwhile. With workers the command follows it afterwards.
        follower = threading.Thread(target=self._follow, args=(latest, bar, stop, interval), daemon=True)
        follower.start()
        try:
            job = gallery_reembed_start()
            if job is not None and not no_wait:
                while ReembedJob.objects.filter(pk=job.pk, status__in=LIVE).exists():
                    time.sleep(interval)
        finally:
            stop.set()
            follower.join()
        if job is not None:
            job.refresh_from_db()
            self._show(bar, job)
        bar.close()
        if job is None:
            running = ReembedJob.objects.filter(status__in=LIVE).first()
            self.stdout.write(f"Nothing to start: {running}" if running else "Every photo already uses the active embedder.")
            return
        self.stdout.write(str(job) + (f"; last error: {job.last_error}" if job.failed and job.last_error else ""))

    @staticmethod
    def _show(bar: tqdm, job: ReembedJob) -> None:
        if job.total != bar.total:
            bar.total = job.total
        bar.n = job.done + job.failed
        bar.set_postfix(failed=job.failed, refresh=False)
        bar.refresh()

    def _follow(self, after_pk: int, bar: tqdm, stop: threading.Event, interval: float) -> None:
        try:
            while not stop.wait(interval):
                try:
                    job = ReembedJob.objects.filter(pk__gt=after_pk).order_by("-pk").first()
                except DatabaseError:
                    continue  # the writer holds the database a moment (SQLite); read again next time
                if job is not None:
                    self._show(bar, job)
        finally:
            connection.close()
