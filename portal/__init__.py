"""The RollCall Django project: settings, URLs, ASGI app, Celery app, and the people it serves."""

from portal.celery import app as celery_app

__all__ = ("celery_app",)
