"""The receivers and routes file (YAML), merged with the simple OOMWATCH_* receivers.

Every secret accepts a `*_file` form (a mounted Kubernetes Secret). A mistake in
the file is one UsageError naming the file and the place in it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from oomwatch.errors import UsageError
from oomwatch.settings import Settings

MATCHER = re.compile(r"^\s*(?P<label>[a-z_]+)\s*(?P<op>=~|!~|!=|=)\s*(?P<value>.*?)\s*$")
LABELS = (
    "kind",
    "severity",
    "status",
    "host",
    "namespace",
    "pod",
    "container",
    "owner",
    "comm",
    "constraint",
    "cgroup",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _secret(value: str | None, file: Path | None, what: str) -> str | None:
    if value:
        return value
    if file is None:
        return None
    try:
        return file.read_text().strip() or None
    except OSError as e:
        raise UsageError(f"{what}_file: cannot read {file}: {e.strerror}") from e


class SlackConfig(_Strict):
    """Slack by bot token (threads, updates) or by incoming webhook (no threads)."""

    token: str | None = None
    token_file: Path | None = None
    channel: str | None = None
    webhook_url: str | None = None
    webhook_url_file: Path | None = None
    api_url: str = "https://slack.com/api/"

    @model_validator(mode="after")
    def _one_way(self) -> SlackConfig:
        has_token = bool(self.token or self.token_file)
        has_hook = bool(self.webhook_url or self.webhook_url_file)
        if has_token == has_hook:
            raise ValueError("give either token (with channel) or webhook_url")
        if has_token and not self.channel:
            raise ValueError("a bot token needs a channel")
        return self


class WebhookConfig(_Strict):
    """A generic webhook (docs/webhook.md)."""

    url: str | None = None
    url_file: Path | None = None
    hmac_secret: str | None = None
    hmac_secret_file: Path | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    template: str | None = None


class PagerDutyConfig(_Strict):
    """PagerDuty Events API v2."""

    routing_key: str | None = None
    routing_key_file: Path | None = None
    url: str = "https://events.pagerduty.com/v2/enqueue"


class OpsgenieConfig(_Strict):
    """Opsgenie Alert API."""

    api_key: str | None = None
    api_key_file: Path | None = None
    url: str = "https://api.opsgenie.com"


class AlertmanagerConfig(_Strict):
    """Prometheus Alertmanager, API v2."""

    url: str


class KubernetesEventsConfig(_Strict):
    """Kubernetes Events on the pod (or node) of each kill."""

    api_url: str | None = None


class EmailConfig(_Strict):
    """SMTP, with STARTTLS or implicit TLS, optional login."""

    smtp_host: str
    smtp_port: int = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    password_file: Path | None = None
    verify: bool = True
    ca_file: Path | None = None
    sender: str = Field(alias="from")
    to: list[str]

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ReceiverConfig(_Strict):
    """One named receiver: exactly one kind."""

    name: str
    slack: SlackConfig | None = None
    webhook: WebhookConfig | None = None
    pagerduty: PagerDutyConfig | None = None
    opsgenie: OpsgenieConfig | None = None
    alertmanager: AlertmanagerConfig | None = None
    email: EmailConfig | None = None
    kubernetes_events: KubernetesEventsConfig | None = None
    console: bool = False
    jsonl: Path | None = None
    group_interval: float | None = Field(None, gt=0)
    repeat_interval: float | None = Field(None, gt=0)

    @property
    def kind(self) -> str:
        """Which kind of receiver this is."""
        for k in (
            "slack",
            "webhook",
            "pagerduty",
            "opsgenie",
            "alertmanager",
            "email",
            "kubernetes_events",
            "jsonl",
        ):
            if getattr(self, k):
                return k
        return "console"

    @model_validator(mode="after")
    def _exactly_one(self) -> ReceiverConfig:
        kinds = [
            k
            for k in (
                "slack",
                "webhook",
                "pagerduty",
                "opsgenie",
                "alertmanager",
                "email",
                "kubernetes_events",
                "jsonl",
            )
            if getattr(self, k)
        ] + (["console"] if self.console else [])
        if len(kinds) != 1:
            raise ValueError(
                f"receiver {self.name!r} needs exactly one kind, got {', '.join(kinds) or 'none'}"
            )
        return self


class Matcher(_Strict):
    """`label=value`, `label!=value`, `label=~regex` or `label!~regex`."""

    label: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """Read one matcher."""
        m = MATCHER.match(text)
        if m is None or m.group("label") not in LABELS:
            raise ValueError(
                f"matcher {text!r}: expected LABEL=VALUE, LABEL!=VALUE, "
                f"LABEL=~REGEX or LABEL!~REGEX with LABEL one of {', '.join(LABELS)}"
            )
        if m.group("op") in ("=~", "!~"):
            try:
                re.compile(m.group("value"))
            except re.error as e:
                raise ValueError(f"matcher {text!r}: bad regex: {e}") from None
        return cls(label=m.group("label"), op=m.group("op"), value=m.group("value"))

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether the labels satisfy this matcher (a missing label is the empty string)."""
        v = labels.get(self.label) or ""
        if self.op == "=":
            return v == self.value
        if self.op == "!=":
            return v != self.value
        hit = re.fullmatch(self.value, v) is not None
        return hit if self.op == "=~" else not hit


class RouteConfig(_Strict):
    """A node of the routing tree, in Alertmanager's vocabulary."""

    matchers: list[Matcher] = Field(default_factory=list)
    receivers: list[str] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse_matchers(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [Matcher.parse(x) if isinstance(x, str) else x for x in v]
        return v


class FileConfig(_Strict):
    """The whole file."""

    receivers: list[ReceiverConfig] = Field(default_factory=list)
    route: RouteConfig | None = None


def load_file(path: Path) -> FileConfig:
    """Read and validate the YAML file; any mistake is one UsageError naming the file."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except OSError as e:
        raise UsageError(f"cannot read config {path}: {e.strerror}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise UsageError(f"config {path} is not valid YAML: {where}{problem}") from None
    if not isinstance(raw, dict):
        raise UsageError(f"config {path}: expected a mapping at the top")
    try:
        return FileConfig.model_validate(raw)
    except ValidationError as e:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'top'}: {err['msg']}" for err in e.errors()
        ]
        raise UsageError(f"config {path}: " + "; ".join(problems)) from None


def effective(settings: Settings, file: FileConfig | None) -> FileConfig:
    """The file's receivers and route, plus the receivers the environment names."""
    receivers = list(file.receivers if file else [])
    names = {r.name for r in receivers}
    extra: list[ReceiverConfig] = []

    def add(name: str, **kind: Any) -> None:
        if name not in names:
            extra.append(ReceiverConfig(name=name, **kind))

    if settings.slack_bot_token or settings.slack_bot_token_file:
        add(
            "slack",
            slack=SlackConfig(
                token=settings.slack_bot_token,
                token_file=settings.slack_bot_token_file,
                channel=settings.slack_channel,
                api_url=settings.slack_api_url,
            ),
        )
    elif settings.slack_webhook_url or settings.slack_webhook_url_file:
        add(
            "slack",
            slack=SlackConfig(
                webhook_url=settings.slack_webhook_url,
                webhook_url_file=settings.slack_webhook_url_file,
            ),
        )
    if settings.webhook_url or settings.webhook_url_file:
        add(
            "webhook",
            webhook=WebhookConfig(url=settings.webhook_url, url_file=settings.webhook_url_file),
        )
    if settings.pagerduty_routing_key or settings.pagerduty_routing_key_file:
        add(
            "pagerduty",
            pagerduty=PagerDutyConfig(
                routing_key=settings.pagerduty_routing_key,
                routing_key_file=settings.pagerduty_routing_key_file,
                **({"url": settings.pagerduty_url} if settings.pagerduty_url else {}),
            ),
        )
    if settings.opsgenie_api_key or settings.opsgenie_api_key_file:
        add(
            "opsgenie",
            opsgenie=OpsgenieConfig(
                api_key=settings.opsgenie_api_key,
                api_key_file=settings.opsgenie_api_key_file,
                **({"url": settings.opsgenie_url} if settings.opsgenie_url else {}),
            ),
        )
    if settings.alertmanager_url:
        add("alertmanager", alertmanager=AlertmanagerConfig(url=settings.alertmanager_url))
    if settings.smtp_host and settings.email_to:
        add(
            "email",
            email=EmailConfig.model_validate(
                {
                    "smtp_host": settings.smtp_host,
                    "smtp_port": settings.smtp_port,
                    "security": settings.smtp_security,
                    "username": settings.smtp_username,
                    "password": settings.smtp_password,
                    "password_file": settings.smtp_password_file,
                    "from": settings.email_from or f"oomwatch@{settings.hostname or 'localhost'}",
                    "to": [a.strip() for a in settings.email_to.split(",") if a.strip()],
                }
            ),
        )
    if settings.kubernetes_events:
        add(
            "kubernetes-events",
            kubernetes_events=KubernetesEventsConfig(api_url=settings.kubernetes_api_url),
        )
    if settings.jsonl_path is not None:
        add("jsonl", jsonl=settings.jsonl_path)
    if settings.console or (settings.console is None and not receivers and not extra):
        add("console", console=True)
    receivers += extra
    route = file.route if file and file.route else None
    if route is None:
        route = RouteConfig(receivers=[r.name for r in receivers])
    _check_route_names(route, {r.name for r in receivers})
    return FileConfig(receivers=receivers, route=route)


def _check_route_names(route: RouteConfig, names: set[str]) -> None:
    unknown = [n for n in route.receivers if n not in names]
    if unknown:
        raise UsageError(
            f"route names unknown receiver(s): {', '.join(unknown)}; known: "
            f"{', '.join(sorted(names))}"
        )
    for child in route.routes:
        _check_route_names(child, names)


def secret(value: str | None, file: Path | None, what: str) -> str | None:
    """A secret from its value or its file."""
    return _secret(value, file, what)


def mask(text: str | None) -> str | None:
    """A secret as check-config prints it."""
    if not text:
        return text
    return text[:4] + "…" if len(text) > 8 else "…"
