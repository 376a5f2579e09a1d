from django.apps import AppConfig


class RecognitionConfig(AppConfig):
    name = "recognition"
    verbose_name = "Face gallery"

    def ready(self) -> None:
        from recognition import signals  # noqa: F401 - connects the erasure handlers
