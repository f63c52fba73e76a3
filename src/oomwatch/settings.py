"""Settings of the agent, from OOMWATCH_* environment variables (nested with `__`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Annotated, Literal

from annotated_types import Ge, Gt, Le

from oomwatch.errors import UsageError
from oomwatch.strict import After, Strict

DEFAULT_PORT = 9753  # documented in README and .env.example

Percent = Annotated[float, Ge(0), Le(100)]


@dataclass(frozen=True, kw_only=True)
class Thresholds(Strict):
    """When a memory condition opens and when it resolves."""

    mem_available_warn_pct: Percent = 10.0
    mem_available_crit_pct: Percent = 5.0
    swap_used_warn_pct: Percent = 90.0
    psi_full_avg10_warn: Percent = 10.0
    cgroup_usage_warn_pct: Percent = 90.0
    hysteresis_pct: Annotated[float, Ge(0), Le(50)] = 3.0
    min_duration_s: Annotated[float, Ge(0)] = 30.0


def _host_and_port(v: str) -> str:
    host, _, port = v.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected HOST:PORT, for example 127.0.0.1:9753 or 0.0.0.0:9753")
    return v


Seconds = Annotated[float, Gt(0)]


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every setting of `oomwatch run`; see `.env.example` for one line on each.

    Read from OOMWATCH_* variables (nested with `__`) and a `.env` file by
    `oomwatch.validation.load_settings`.
    """

    source: Literal["auto", "kmsg", "journald", "file"] = "auto"
    first_start: Literal["summary", "all", "new"] = "summary"
    log_file: Path = Path("/var/log/kern.log")
    sample_interval: Seconds = 10.0
    proc_root: Path = Path("/proc")
    sys_root: Path = Path("/sys")
    kmsg_path: Path = Path("/dev/kmsg")
    state_dir: Path | None = None
    config: Path | None = None
    kubernetes: Literal["auto", "on", "off"] = "auto"
    kubernetes_api_url: str | None = None
    kubernetes_events: bool = False
    silences_path: Path | None = None
    jsonl_path: Path | None = None
    webhook_url: str | None = None
    webhook_url_file: Path | None = None
    slack_bot_token: str | None = None
    slack_bot_token_file: Path | None = None
    slack_channel: str | None = None
    slack_webhook_url: str | None = None
    slack_webhook_url_file: Path | None = None
    slack_api_url: str = "https://slack.com/api/"
    pagerduty_routing_key: str | None = None
    pagerduty_routing_key_file: Path | None = None
    pagerduty_url: str | None = None
    opsgenie_api_key: str | None = None
    opsgenie_api_key_file: Path | None = None
    opsgenie_url: str | None = None
    alertmanager_url: str | None = None
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_password_file: Path | None = None
    email_from: str | None = None
    email_to: str | None = None
    console: bool | None = None
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    listen: Annotated[str, After(_host_and_port)] = f"127.0.0.1:{DEFAULT_PORT}"
    api_token_file: Path | None = None
    oom_score_adj: Annotated[int, Ge(-1000), Le(1000)] = -900
    hostname: str | None = None
    delivery_max_age_s: Seconds = 24 * 3600
    group_interval_s: Seconds = 300.0
    repeat_interval_s: Seconds = 4 * 3600.0
    metrics_series_ttl_s: Seconds = 3600.0
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def state_path(self) -> Path:
        """Where the SQLite state lives: /var/lib/oomwatch as root, else the user's state dir."""
        if self.state_dir is not None:
            return self.state_dir
        if os.geteuid() == 0:
            return Path("/var/lib/oomwatch")
        base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
        return Path(base) / "oomwatch"

    @property
    def silences_file(self) -> Path:
        """Where the silences are (OOMWATCH_SILENCES_PATH, else beside the state)."""
        return self.silences_path or self.state_path / "silences.json"

    @property
    def api_token(self) -> str | None:
        """The bearer token that lets other hosts read /api (from OOMWATCH_API_TOKEN_FILE)."""
        if self.api_token_file is None:
            return None
        try:
            return self.api_token_file.read_text().strip() or None
        except OSError as e:
            raise UsageError(
                f"OOMWATCH_API_TOKEN_FILE: cannot read {self.api_token_file}: {e.strerror}"
            ) from e

    @property
    def webhook(self) -> str | None:
        """The webhook URL, from the variable or from the file a Kubernetes Secret mounts."""
        if self.webhook_url:
            return self.webhook_url
        if self.webhook_url_file is not None:
            try:
                return self.webhook_url_file.read_text().strip() or None
            except OSError as e:
                raise UsageError(
                    f"OOMWATCH_WEBHOOK_URL_FILE: cannot read {self.webhook_url_file}: {e.strerror}"
                ) from e
        return None


# OOMWATCH_* variables read outside the settings model.
_OTHER_VARIABLES = ("OOMWATCH_LOG_DIR", "OOMWATCH_ENV_FILE")


def known_variables() -> list[str]:
    """Every OOMWATCH_* variable oomwatch reads."""
    names = [f"OOMWATCH_{f.name.upper()}" for f in fields(Settings) if f.name != "thresholds"]
    names += [f"OOMWATCH_THRESHOLDS__{f.name.upper()}" for f in fields(Thresholds)]
    return sorted([*names, *_OTHER_VARIABLES])
