from django.apps import AppConfig


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = "People"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from portal import scheduler

        # The nightly entries run in site time, also when TIME_ZONE was set after the first migrate.
        post_migrate.connect(scheduler.follow_site_time_zone, sender=self,
                             dispatch_uid="rollcall-follow-site-time-zone")

        # The embedded default has no celery beat: the portal server runs the nightly job itself
        # (only under daphne/runserver, never in tests or management commands; see ROLLCALL_SCHEDULER).
        if scheduler.should_start():
            scheduler.start()
