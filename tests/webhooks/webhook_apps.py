"""The Django project and Flask app the receiver tests run, in process and under real servers.

``DJANGO_SETTINGS_MODULE=tests.webhooks.webhook_apps`` makes this module the settings and
the URLconf of a one-file Django project (``django_wsgi`` / ``django_asgi`` are its apps for
gunicorn and uvicorn); ``flask_app`` is the Flask app. Every receiver's ``on_event`` is
:func:`on_event` (or its async twin): it records the event, and raises the first time it sees
a reference that starts with ``"crash-once"``, as a handler whose database is down for a
moment would.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

from instax_async import WebhookEvent

SECRET = "wsgi-receiver-secret"
CRASH_ONCE = "crash-once"

#: The references handled, in order (in the process that serves them).
handled: list[str | None] = []
_crashed: set[str] = set()
_lock = threading.Lock()


def on_event(event: WebhookEvent) -> None:
    """Record the event; fail the first delivery of each reference that starts with
    ``CRASH_ONCE``."""
    reference = event.reference or ""
    with _lock:
        if reference.startswith(CRASH_ONCE) and reference not in _crashed:
            _crashed.add(reference)
            raise RuntimeError("the order database is down for a moment")
        handled.append(reference)


async def on_event_async(event: WebhookEvent) -> None:
    """:func:`on_event`, awaiting once first."""
    await asyncio.sleep(0)
    on_event(event)


# -- the Django project -----------------------------------------------------------------------

SECRET_KEY = "not-a-secret: the tests' Django project"
DEBUG = False
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = __name__
USE_TZ = True
INSTALLED_APPS: list[str] = []
DATABASES: dict[str, Any] = {}
# the CSRF middleware is on, as in every Django project: the views are exempt from it
MIDDLEWARE = ["django.middleware.csrf.CsrfViewMiddleware"]
LOGGING_CONFIG = None


def _urlpatterns() -> list[Any]:
    from django.urls import path

    from instax_async.integrations.django import async_webhook_view, webhook_view

    return [
        path("hook", webhook_view(SECRET, on_event)),
        path("hook-slow-body", webhook_view(SECRET, on_event, body_timeout=0.5)),
        path("hook-async-handler", webhook_view(SECRET, on_event_async)),
        path("async-hook", async_webhook_view(SECRET, on_event_async)),
        path("async-hook-sync-handler", async_webhook_view(SECRET, on_event)),
    ]


def __getattr__(name: str) -> Any:
    # the URLconf and the apps are built when Django (or a server) first asks for them: the
    # views need Django's settings, and this module is those settings
    if name == "urlpatterns":
        value: Any = _urlpatterns()
    elif name == "django_wsgi":
        from django.core.wsgi import get_wsgi_application

        value = get_wsgi_application()
    elif name == "django_asgi":
        from django.core.asgi import get_asgi_application

        value = get_asgi_application()
    elif name == "flask_app":
        value = _flask_app()
    else:
        raise AttributeError(name)
    globals()[name] = value
    return value


def _flask_app() -> Any:
    from flask import Flask

    from instax_async.integrations.flask import webhook_view

    app = Flask(__name__)
    app.add_url_rule("/hook", view_func=webhook_view(SECRET, on_event), methods=["POST", "GET"])
    app.add_url_rule(
        "/hook-async-handler",
        endpoint="async_handler",
        view_func=webhook_view(SECRET, on_event_async),
        methods=["POST"],
    )
    return app


os.environ.setdefault("DJANGO_SETTINGS_MODULE", __name__)
