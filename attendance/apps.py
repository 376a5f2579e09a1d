from django.apps import AppConfig


class AttendanceConfig(AppConfig):
    name = "attendance"

    def ready(self) -> None:
        from attendance import signals  # noqa: F401 - deletes monitor thumbnails with their rows
