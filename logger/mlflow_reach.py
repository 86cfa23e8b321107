"""What MLflow may contact (trainer.loggers: [mlflow]), checked before anything is written.

- A tracking server must answer within PROBE_SECONDS before a run (or a sweep's parent run)
  starts: MLflow's own client retries a silent host for minutes without a word. A folder,
  a file: or a sqlite: store needs no network and is not probed.
- A tracking_uri read from a checkpoint (or a run folder's config.json) is data: `-r`
  leaves it alone unless this command line names trainer.mlflow.tracking_uri again, so a
  crafted checkpoint cannot pick a host to contact. Without it the resume logs where a
  config without a tracking_uri would ($MLFLOW_TRACKING_URI, else <save_dir>/mlruns).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from logger.mlflow_logger import tracking_uri
from utils.errors import RunError

PROBE_SECONDS = 10.0  # the whole probe, name lookup included (the contract: under 30 s)
KEY = "trainer.mlflow.tracking_uri"
DATABASE_PORTS = {"postgresql": 5432, "mysql": 3306, "mssql": 1433}  # reached over TCP


def _http_answer(uri: str, seconds: float) -> str | None:
    """None when an HTTP server answers at `uri` (any status: a 404 or a 401 is an answer),
    else why not."""
    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=seconds):
            return None
    except urllib.error.HTTPError:
        return None
    except urllib.error.URLError as e:
        if isinstance(e.reason, ssl.SSLError):  # TLS answered; MLflow has its own TLS settings
            return None
        return _reason(e.reason)
    except (OSError, http.client.HTTPException) as e:
        return _reason(e)


def _tcp_answer(uri: str, seconds: float) -> str | None:
    """None when a TCP connection to the database server of `uri` opens, else why not."""
    parts = urlsplit(uri)
    port = parts.port or DATABASE_PORTS[parts.scheme.split("+")[0].lower()]
    try:
        socket.create_connection((parts.hostname or "localhost", port), timeout=seconds).close()
        return None
    except OSError as e:
        return _reason(e)


def _reason(error: object) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower()
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def unreachable(uri: str, seconds: float = PROBE_SECONDS) -> str | None:
    """Why the tracking store at `uri` does not answer within `seconds` (None: it answered,
    or it needs no network). The probe runs in a thread so a slow name lookup is bounded too."""
    scheme = urlsplit(uri).scheme.split("+")[0].lower()
    if scheme in ("http", "https"):
        attempt = _http_answer
    elif scheme in DATABASE_PORTS:
        attempt = _tcp_answer
    else:  # a folder, file:, sqlite:, databricks (a profile): nothing to wait for here
        return None
    result: list[str | None] = []

    def ask() -> None:
        try:
            result.append(attempt(uri, seconds))
        except Exception as e:  # a malformed host or port: the reason, never a traceback
            result.append(_reason(e))

    probe = threading.Thread(target=ask, daemon=True)
    probe.start()
    probe.join(seconds)
    if not result or result[0] in ("timed out", "TimeoutError"):
        return f"no answer within {seconds:g}s"
    return result[0]


def check_reachable(config: dict, seconds: float = PROBE_SECONDS) -> str:
    """The tracking URI of `config`; RunError (one line naming trainer.mlflow.tracking_uri)
    when its server does not answer within `seconds`."""
    uri = tracking_uri(config)
    why = unreachable(uri, seconds)
    if why is None:
        return uri
    if (config["trainer"].get("mlflow") or {}).get("tracking_uri"):
        where, fix = KEY, f"set {KEY} to a reachable server or to null"
    else:
        where, fix = f"{KEY} (null: $MLFLOW_TRACKING_URI)", "unset $MLFLOW_TRACKING_URI"
    raise RunError(f"{where}: cannot reach the MLflow tracking server {uri} ({why}); start it, "
                   f"or {fix} (the local store <trainer.save_dir>/mlruns)")


def without_stored_uri(raw: object) -> tuple[object, object]:
    """`raw` (a config read from a checkpoint or a run folder, not from this command line)
    with trainer.mlflow.tracking_uri set to null, and the value it held (None: none)."""
    trainer = raw.get("trainer") if isinstance(raw, dict) else None
    options = trainer.get("mlflow") if isinstance(trainer, dict) else None
    if not isinstance(options, dict) or options.get("tracking_uri") is None:
        return raw, None
    stored = options["tracking_uri"]
    return {**raw, "trainer": {**trainer, "mlflow": {**options, "tracking_uri": None}}}, stored


def stored_uri_warnings(config: dict, stored: object) -> list[str]:
    """What a resume says when it leaves the checkpoint's tracking_uri alone and logs to
    another store (none when MLflow is off, the command line named a tracking_uri, or the
    store is the same)."""
    trainer = config["trainer"]
    if stored is None or "mlflow" not in trainer["loggers"] or \
            trainer["mlflow"]["tracking_uri"] is not None:
        return []
    uri = tracking_uri(config)
    if uri == stored:
        return []
    return [f"{KEY}: the checkpoint's {stored!r} is not contacted on -r unless this command "
            f"line names it ({KEY}=...); MLflow logs to {uri}"]
