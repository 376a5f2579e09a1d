"""Run the nightly learning now, in this process (what the schedule runs at 02:00)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from recognition.learning import learning_nightly


class Command(BaseCommand):
    help = "Run the nightly learning now: templates (and fine-tuning), the gate, the switch."

    def add_arguments(self, parser) -> None:  # noqa: ANN001
        parser.add_argument("--no-finetune", action="store_true", help="Templates only.")

    def handle(self, *args: object, **options: object) -> None:
        run = learning_nightly(finetune=False if options["no_finetune"] else None)
        self.stdout.write(f"{run.status}: {run.decision or '-'}; templates +{run.templates_added} -{run.templates_removed}")
        if run.last_error:
            self.stderr.write(run.last_error)
