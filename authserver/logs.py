"""Logging setup: plain text for people, one JSON object per line for log shippers."""

import json
import logging
import sys
import time

from authserver.workers import current, log_tag


def _worker_field(record: logging.LogRecord) -> bool:
    context = current()
    record.worker = context.index if context is not None else None
    return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        worker = getattr(record, "worker", None)
        if worker is not None:
            entry["worker"] = worker
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    # One of several workers (authserver.workers): its lines say which, e.g. "nextauth[worker 1]".
    tag = log_tag()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
        if tag:
            handler.addFilter(_worker_field)
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s %(name)s{tag}: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Migrations announce every step at INFO; one line per start from our own code says enough.
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
    # At DEBUG these tell every phase of every HTTP request they make (to ns, to push services): our own
    # debug lines would drown in them, so they stay at INFO.
    for chatty in ("httpcore", "hpack", "urllib3"):
        logging.getLogger(chatty).setLevel(max(logging.INFO, root.level))
