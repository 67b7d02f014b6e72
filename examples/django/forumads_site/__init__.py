"""A small Django project sending the ads tasks to the Go worker."""
from .celery import app as celery_app

__all__ = ("celery_app",)
