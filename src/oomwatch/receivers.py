"""The receivers and routes file (YAML), merged with the simple OOMWATCH_* receivers.

Every secret accepts a `*_file` form (a mounted Kubernetes Secret). A mistake in
the file is one ConfigError naming the file and the place in it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Self

from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from oomwatch.errors import ConfigError
from oomwatch.notify import Notifier
from oomwatch.notify.common import Context, StrictModel
from oomwatch.notify.registry import KINDS
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


def _kinds_of(model: BaseModel) -> list[str]:
    return [k for k in KINDS if getattr(model, k, None)]


class _ReceiverBase(StrictModel):
    name: str
    group_interval: float | None = Field(None, gt=0)
    repeat_interval: float | None = Field(None, gt=0)

    @property
    def kind(self) -> str:
        """Which kind of receiver this is."""
        return _kinds_of(self)[0]

    @property
    def kind_config(self) -> Any:
        """The value under the kind's name: that kind's config model."""
        return getattr(self, self.kind)

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        kinds = _kinds_of(self)
        if len(kinds) != 1:
            raise ValueError(
                f"receiver {self.name!r} needs exactly one kind of {', '.join(KINDS)}; "
                f"got {', '.join(kinds) or 'none'}"
            )
        return self


# one optional field per notifier kind, from the registry: a new kind needs no edit here
ReceiverConfig = create_model(
    "ReceiverConfig",
    __base__=_ReceiverBase,
    __doc__="One named receiver: exactly one kind.",
    **{name: (k.config | None, None) for name, k in KINDS.items()},  # type: ignore[call-overload]
)


class Matcher(StrictModel):
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


class RouteConfig(StrictModel):
    """A node of the routing tree, in Alertmanager's vocabulary."""

    matchers: list[Matcher] = Field(default_factory=list)
    receivers: list[str] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)
    continue_: bool = Field(False, alias="continue")

    @field_validator("matchers", mode="before")
    @classmethod
    def _parse_matchers(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [Matcher.parse(x) if isinstance(x, str) else x for x in v]
        return v


class FileConfig(StrictModel):
    """The whole file."""

    receivers: list[ReceiverConfig] = Field(default_factory=list)
    route: RouteConfig | None = None


def load_file(path: Path) -> FileConfig:
    """Read and validate the YAML file; any mistake is one ConfigError naming the file."""
    import yaml

    try:
        raw = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        column = e.start - (e.object.rfind(b"\n", 0, e.start) + 1) + 1
        raise ConfigError(
            f"config {path} is not UTF-8: line {line}, column {column}: "
            f"byte 0x{e.object[e.start]:02x}"
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"config {path} is not valid YAML: {where}{problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config {path}: expected a mapping at the top")
    try:
        return FileConfig.model_validate(raw)
    except ValidationError as e:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'top'}: {err['msg']}" for err in e.errors()
        ]
        raise ConfigError(f"config {path}: " + "; ".join(problems)) from None


def effective(settings: Settings, file: FileConfig | None) -> FileConfig:
    """The file's receivers and route, plus the receivers the environment names."""
    receivers = list(file.receivers if file else [])
    names = {r.name for r in receivers}
    extra = []
    for name, kind in KINDS.items():
        try:
            made = kind.from_settings(settings) if kind.from_settings else None
        except ValidationError as e:
            raise ConfigError(_env_problems(name, e)) from None
        receiver = name.replace("_", "-")
        if made is not None and receiver not in names:
            extra.append(ReceiverConfig(name=receiver, **{name: made}))
    console = None
    if settings.console is not False and not any(r.kind == "console" for r in receivers):
        # the person at the agent's console sees every incident beside the receivers
        console = "console" if "console" not in names else "oomwatch-console"
        extra.append(ReceiverConfig.model_validate({"name": console, "console": True}))
    receivers += extra
    route = file.route if file and file.route else None
    if route is None:
        route = RouteConfig(receivers=[r.name for r in receivers])
    elif console is not None:
        route = RouteConfig(
            routes=[RouteConfig.model_validate({"receivers": [console], "continue": True}), route]
        )
    _check_route_names(route, {r.name for r in receivers})
    return FileConfig(receivers=receivers, route=route)


def _env_problems(kind: str, e: ValidationError) -> str:
    """A receiver from the environment that does not validate: the variables, never a value."""
    from oomwatch.settings import known_variables

    known = set(known_variables())
    out = []
    for err in e.errors():
        field = "_".join(str(p) for p in err["loc"]).upper()
        var = f"OOMWATCH_{kind.upper()}_{field}"
        where = (
            var
            if var in known
            else f"OOMWATCH_{kind.upper()}_*" + (f" ({field.lower()})" if field else "")
        )
        out.append(f"{where}: {str(err['msg']).removeprefix('Value error, ')}")
    return "; ".join(out)


def make_notifier(r: Any, ctx: Context | None = None) -> Notifier:
    """The notifier of one receiver; a missing secret is a ConfigError naming it."""
    return KINDS[r.kind].build(r.name, r.kind_config, ctx or Context())


def _check_route_names(route: RouteConfig, names: set[str]) -> None:
    unknown = [n for n in route.receivers if n not in names]
    if unknown:
        raise ConfigError(
            f"route names unknown receiver(s): {', '.join(unknown)}; known: "
            f"{', '.join(sorted(names))}"
        )
    for child in route.routes:
        _check_route_names(child, names)
