"""Structured logs in etcd's zap JSON shape (`--logger zap`), to stderr, stdout or files."""

from __future__ import annotations

import json
import logging
import sys
import time

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "panic": logging.CRITICAL,
    "fatal": logging.CRITICAL,
}
_NAMES = {
    logging.DEBUG: "debug",
    logging.INFO: "info",
    logging.WARNING: "warn",
    logging.ERROR: "error",
    logging.CRITICAL: "fatal",
}


class JSONFormatter(logging.Formatter):
    """One JSON object per line: level, ts, caller, msg and any `extra` fields."""

    _RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
        "message",
        "asctime",
    }

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        out = {
            "level": _NAMES.get(record.levelno, "info"),
            "ts": f"{ts}.{int(record.msecs):03d}Z",
            "caller": f"{record.module}.py:{record.lineno}",
            "msg": record.getMessage(),
        }
        for k, v in record.__dict__.items():
            if k not in self._RESERVED and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["error"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, separators=(",", ":"))


def setup(*, level: str = "info", outputs: list[str] | None = None, logger: str = "zap") -> None:
    """Configure the root `ward` logger once per process."""
    root = logging.getLogger("ward")
    root.handlers.clear()
    root.setLevel(_LEVELS.get(level, logging.INFO))
    root.propagate = False
    fmt: logging.Formatter = (
        JSONFormatter()
        if logger == "zap"
        else logging.Formatter("%(asctime)s %(levelname)s | %(message)s")
    )
    for out in outputs or ["stderr"]:
        if out in ("stderr", "default"):
            h: logging.Handler = logging.StreamHandler(sys.stderr)
        elif out == "stdout":
            h = logging.StreamHandler(sys.stdout)
        else:
            h = logging.FileHandler(out)
        h.setFormatter(fmt)
        root.addHandler(h)
