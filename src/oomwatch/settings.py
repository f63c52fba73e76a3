"""Settings of the agent, from OOMWATCH_* environment variables (nested with `__`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from oomwatch.errors import UsageError

DEFAULT_PORT = 9753  # documented in README and .env.example


class Thresholds(BaseModel):
    """When a memory condition opens and when it resolves."""

    mem_available_warn_pct: float = Field(10.0, ge=0, le=100)
    mem_available_crit_pct: float = Field(5.0, ge=0, le=100)
    swap_used_warn_pct: float = Field(90.0, ge=0, le=100)
    psi_full_avg10_warn: float = Field(10.0, ge=0, le=100)
    cgroup_usage_warn_pct: float = Field(90.0, ge=0, le=100)
    hysteresis_pct: float = Field(3.0, ge=0, le=50)
    min_duration_s: float = Field(30.0, ge=0)


class Settings(BaseSettings):
    """Every setting of `oomwatch run`; see `.env.example` for one line on each."""

    model_config = SettingsConfigDict(
        env_prefix="OOMWATCH_", env_nested_delimiter="__", extra="ignore"
    )

    source: Literal["auto", "kmsg", "journald", "file"] = "auto"
    first_start: Literal["summary", "all", "new"] = "summary"
    log_file: Path = Path("/var/log/kern.log")
    sample_interval: float = Field(10.0, gt=0)
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
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    api_token_file: Path | None = None
    oom_score_adj: int = Field(-900, ge=-1000, le=1000)
    hostname: str | None = None
    delivery_max_age_s: float = Field(24 * 3600, gt=0)
    group_interval_s: float = Field(300.0, gt=0)
    repeat_interval_s: float = Field(4 * 3600.0, gt=0)
    metrics_series_ttl_s: float = Field(3600.0, gt=0)
    thresholds: Thresholds = Thresholds()

    @field_validator("listen")
    @classmethod
    def _listen_has_port(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("expected HOST:PORT, for example 127.0.0.1:9753 or 0.0.0.0:9753")
        return v

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
    names = [f"OOMWATCH_{n.upper()}" for n in Settings.model_fields if n != "thresholds"]
    names += [f"OOMWATCH_THRESHOLDS__{n.upper()}" for n in Thresholds.model_fields]
    return sorted([*names, *_OTHER_VARIABLES])


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Settings from the environment and a `.env` file; a mistake is one line, not a traceback.

    The `.env` file is the working directory's, or the one OOMWATCH_ENV_FILE names.
    An unknown OOMWATCH_* name is an error with the closest known one; no message
    ever holds a setting's value (it may be a secret).
    """
    env = os.environ if environ is None else environ
    env_file = Path(env.get("OOMWATCH_ENV_FILE") or ".env")
    if "OOMWATCH_ENV_FILE" in env and not env_file.is_file():
        raise UsageError(f"OOMWATCH_ENV_FILE: {env_file} is not a readable file")
    names = [k for k in env if k.startswith("OOMWATCH_")]
    if env_file.is_file():
        from dotenv import dotenv_values

        names += [k for k in dotenv_values(env_file) if k.startswith("OOMWATCH_")]
    _check_names(names, f" (in {env_file})" if env_file.is_file() else "")
    try:
        return Settings(_env_file=env_file if env_file.is_file() else None)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            name = "OOMWATCH_" + "__".join(str(p).upper() for p in err["loc"])
            problems.append(f"{name}: {_plain(err['msg'])}")
        raise UsageError("bad setting: " + "; ".join(problems)) from None


def _check_names(names: list[str], where: str) -> None:
    known = known_variables()
    unknown = sorted({n for n in names if n not in known})
    if not unknown:
        return
    import difflib  # only for a mistake: not kept in the agent's memory

    words = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else "; see docs/config.md"
        words.append(f"{name}: unknown setting{hint}")
    raise UsageError("; ".join(words) + (where if len(unknown) == 1 else ""))


def _plain(msg: str) -> str:
    """Pydantic's message without its "Value error, " prefix."""
    return msg.removeprefix("Value error, ")
