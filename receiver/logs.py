"""Structured logs: one JSON object per line, or readable text on a terminal.

Fields bound to the current request (``request_id``, ``source``, ``call_id``, ``outcome``) live in a
context variable that `receiver.observe` sets per request, so every line logged while a request is
handled carries them without being passed around. Code binds more with `bind`.

Nothing here logs headers, bodies or configuration values: secrets cannot reach a log line unless a
caller puts one in a message, and no caller does.

Environment: ``CALLSTREAM_LOG_LEVEL`` (default ``INFO``; ``WARNING`` drops the per-request lines) and
``CALLSTREAM_LOG_FORMAT`` (``json``, ``console``, or ``auto``: console when stderr is a terminal).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping
from contextvars import ContextVar, Token
from typing import IO, Any

import orjson

#: Fields bound to the request being handled. A fresh dict per request; None outside requests.
_CONTEXT: ContextVar[dict[str, Any] | None] = ContextVar("callstream_log_context", default=None)

#: Attributes every `logging.LogRecord` has; anything else on a record came from ``extra=``.
_RECORD_ATTRIBUTES = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
#: Extras some libraries add that repeat the message (uvicorn's coloured copy).
_IGNORED_EXTRAS = frozenset({"color_message"})

LEVEL_ENV = "CALLSTREAM_LOG_LEVEL"
#: Libraries held at WARNING whatever the level: `transitions` logs every fired event at INFO (far too
#: much on the hot path), and HTTP clients log whole URLs, whose query strings may carry credentials.
QUIET_LOGGERS = ("transitions", "httpx", "httpx2", "httpcore")
FORMAT_ENV = "CALLSTREAM_LOG_FORMAT"


def new_context(**fields: Any) -> Token[dict[str, Any] | None]:
    """Start a request's context with ``fields``; pass the token to `end_context` when it is done."""
    return _CONTEXT.set(dict(fields))


def end_context(token: Token[dict[str, Any] | None]) -> None:
    _CONTEXT.reset(token)


def bind(**fields: Any) -> None:
    """Add fields to the current request's context (no-op outside a request)."""
    context = _CONTEXT.get()
    if context is not None:
        context.update(fields)


def context() -> Mapping[str, Any]:
    """The current request's bound fields (empty outside a request)."""
    return _CONTEXT.get() or {}


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """A record as a flat dict: time, level, logger, message, the request's context, then ``extra=`` fields."""
    fields: dict[str, Any] = {
        "ts": _iso_time(record.created),
        "level": record.levelname.lower(),
        "logger": record.name,
        "message": record.getMessage(),
    }
    fields.update(context())
    for key, value in record.__dict__.items():
        if key not in _RECORD_ATTRIBUTES and key not in _IGNORED_EXTRAS:
            fields[key] = value
    return fields


def _iso_time(created: float) -> str:
    seconds = int(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((created - seconds) * 1000):03d}Z"


class JSONFormatter(logging.Formatter):
    """One compact JSON object per line (orjson); values it cannot encode are written as ``str()``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lean_records()  # also when built by dictConfig in a uvicorn worker

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        fields["pid"] = record.process  # tells workers apart when several share one log
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(fields, default=str).decode()


def printable(value: Any) -> str:
    """``str(value)`` with every character that could forge or hide a line on a terminal escaped: line breaks
    (``\\n``, U+2028, U+0085), ANSI escape sequences (``\\x1b``), and other control or format characters
    (such as U+202E). Request paths and ids are attacker-chosen text."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)


class ConsoleFormatter(logging.Formatter):
    """``HH:MM:SS.mmm LEVEL logger: message key=value ...``, for a person at a terminal."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        lean_records()

    def format(self, record: logging.LogRecord) -> str:
        fields = record_fields(record)
        stamp = fields.pop("ts")[11:23]
        level, name, message = fields.pop("level").upper(), fields.pop("logger"), fields.pop("message")
        pairs = " ".join(f"{key}={printable(value)}" for key, value in fields.items())
        line = f"{stamp} {level:<7} {name}: {printable(message)}" + (f"  {pairs}" if pairs else "")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def use_json(environ: Mapping[str, str], stream: IO[str]) -> bool:
    """JSON unless asked for console, or left to ``auto`` (the default) with a terminal attached."""
    choice = environ.get(FORMAT_ENV, "auto").strip().lower()
    if choice in ("json", "console"):
        return choice == "json"
    return not (hasattr(stream, "isatty") and stream.isatty())


def level_name(environ: Mapping[str, str]) -> str:
    level = environ.get(LEVEL_ENV, "INFO").strip().upper()
    return level if level in logging.getLevelNamesMapping() else "INFO"


def dict_config(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A `logging.config.dictConfig` configuration: everything (uvicorn included) through one handler on stderr.

    Given to uvicorn as ``log_config`` so every worker process configures itself the same way at start.
    """
    environ = os.environ if environ is None else environ
    formatter = "json" if use_json(environ, sys.stderr) else "console"
    level = level_name(environ)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": f"{__name__}.JSONFormatter"},
            "console": {"()": f"{__name__}.ConsoleFormatter"},
        },
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": formatter, "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level},
        "loggers": {
            # uvicorn's own handlers are dropped so its lines go through the one handler above.
            "uvicorn": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.error": {"handlers": [], "propagate": True, "level": level},
            "uvicorn.access": {"handlers": [], "propagate": True, "level": "WARNING"},
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }


def lean_records() -> None:
    """Skip the per-record work no formatter here uses: the caller's frame lookup and thread names.

    These are the switches the logging HOWTO's "Optimization" section names; the process id is kept.
    """
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False


def configure(
    stream: IO[str] | None = None,
    *,
    json: bool | None = None,
    environ: Mapping[str, str] | None = None,
    force: bool = False,
) -> logging.Handler | None:
    """Send every log line to ``stream`` (stderr) as JSON or console text; returns the handler installed.

    Like `logging.basicConfig`, does nothing (and returns None) when the root logger already has handlers
    (a program embedding callstream, a test runner), unless ``force`` replaces them. The noisy libraries
    are quietened either way.
    """
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    root = logging.getLogger()
    if root.handlers and not force:
        return None
    environ = os.environ if environ is None else environ
    stream = sys.stderr if stream is None else stream
    handler = logging.StreamHandler(stream)
    as_json = use_json(environ, stream) if json is None else json
    handler.setFormatter(JSONFormatter() if as_json else ConsoleFormatter())
    lean_records()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level_name(environ))
    return handler


__all__ = [
    "ConsoleFormatter",
    "JSONFormatter",
    "bind",
    "configure",
    "context",
    "dict_config",
    "end_context",
    "new_context",
]
