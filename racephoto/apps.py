from django.apps import AppConfig


class RacePhotoConfig(AppConfig):
    """The project package is an app too: it owns health, metrics and the run command."""

    name = "racephoto"
    verbose_name = "RacePhoto"

    def ready(self):
        from racephoto import observability, redelivery  # noqa: F401  (connect Celery signal handlers)
