"""The feeds app."""
from django.apps import AppConfig


class FeedsConfig(AppConfig):
    """Connects the post_save handlers that send the ads tasks."""

    name = "feeds"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from . import signals  # noqa: F401  (connects the receivers)
