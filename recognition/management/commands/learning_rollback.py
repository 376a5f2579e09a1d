"""Restore the previous learned model version at once (the active one's parent)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from recognition.learning import RollbackUnavailable, learning_rollback


class Command(BaseCommand):
    help = "Restore the previous active model version (learned photos and head) at once."

    def handle(self, *args: object, **options: object) -> None:
        try:
            restored = learning_rollback(reason="rolled back with manage.py learning_rollback")
        except RollbackUnavailable as exc:
            raise CommandError(str(exc)) from None
        if restored is None:
            self.stdout.write("Now active: the base embedder alone (no learned version).")
        else:
            self.stdout.write(f"Now active: {restored.version}")
