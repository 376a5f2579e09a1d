from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "People"

    def ready(self) -> None:
        from portal import scheduler

        # The embedded default has no celery beat: the portal server runs the nightly job itself
        # (only under daphne/runserver, never in tests or management commands; see ROLLCALL_SCHEDULER).
        if scheduler.should_start():
            scheduler.start()
