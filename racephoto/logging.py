"""Structured logging: one JSON object per line, each tagged with the request id.

The id comes from the ``X-Request-ID`` header when a proxy sets one (so a
request can be followed from the load balancer to the worker), or is made
here. It is echoed in the response and carried into Celery tasks enqueued
while handling the request (see ``racephoto.observability``).
"""

import contextvars
import json
import logging
import re
import uuid

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

# Accept only ids that are safe to put in a log line or a header as they are.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else new_request_id()
        request.request_id = request_id
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response["X-Request-ID"] = request_id
        return response


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


# Attributes every LogRecord has; anything else was passed with extra= and is kept.
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    def format(self, record):
        payload = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id_var.get()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


# Answers that are the site working as intended: a stranger on a staff page, an API
# call without a token. Django logs each with the request's traceback when a view
# raised PermissionDenied; one line says all there is to say.
_REFUSALS = {401, 403}


class RefusalFilter(logging.Filter):
    """On ``django.request``: a 401/403 becomes one line (method, path, status, user id)."""

    def filter(self, record):
        status = getattr(record, "status_code", None)
        request = getattr(record, "request", None)
        if status not in _REFUSALS or request is None:
            return True
        # Escaped as Django escapes the path it logs: a crafted URL cannot forge lines.
        path = request.path.encode("unicode_escape").decode("ascii")
        record.msg = "%s %s %s user=%s"
        record.args = (request.method, path, status, _user_id(request) or "-")
        record.exc_info = record.exc_text = record.stack_info = None
        record.method, record.path, record.user_id = request.method, path, _user_id(request)
        return True


def _user_id(request):
    # DRF puts the user it authenticated (token) on the underlying request too.
    user = getattr(request, "user", None)
    try:
        return user.pk if user is not None and user.is_authenticated else None
    except Exception:  # a session that cannot be read (database down) must not lose the line
        return None
