"""The receivers and the routing tree: what the receivers file declares, as plain types.

Every secret accepts a `*_file` form (a mounted Kubernetes Secret). The file is read
and checked, and merged with the simple OOMWATCH_* receivers, in
`oomwatch.validation`; the agent gets the result already checked.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from annotated_types import Gt

from oomwatch.notify import Notifier
from oomwatch.notify.common import Context
from oomwatch.notify.registry import KINDS
from oomwatch.strict import Before, Strict, aliases

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


def _kinds_of(receiver: object) -> list[str]:
    return [k for k in KINDS if getattr(receiver, k, None)]


@dataclass(frozen=True, kw_only=True)
class _ReceiverBase(Strict):
    name: str
    group_interval: Annotated[float, Gt(0)] | None = None
    repeat_interval: Annotated[float, Gt(0)] | None = None

    @property
    def kind(self) -> str:
        """Which kind of receiver this is."""
        return _kinds_of(self)[0]

    @property
    def kind_config(self) -> Any:
        """The value under the kind's name: that kind's config model."""
        return getattr(self, self.kind)

    def __post_init__(self) -> None:
        kinds = _kinds_of(self)
        if len(kinds) != 1:
            raise ValueError(
                f"receiver {self.name!r} needs exactly one kind of {', '.join(KINDS)}; "
                f"got {', '.join(kinds) or 'none'}"
            )


if TYPE_CHECKING:
    ReceiverConfig = _ReceiverBase
else:
    # one optional field per notifier kind, from the registry: a new kind needs no edit here
    ReceiverConfig = dataclasses.make_dataclass(
        "ReceiverConfig",
        [(name, k.config | None, field(default=None)) for name, k in KINDS.items()],
        bases=(_ReceiverBase,),
        frozen=True,
        kw_only=True,
        namespace={"__doc__": "One named receiver: exactly one kind."},
    )
    ReceiverConfig.__module__ = __name__  # where pickle finds it


@dataclass(frozen=True, kw_only=True)
class Matcher(Strict):
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


def _parse_matchers(v: Any) -> Any:
    if isinstance(v, list):
        return [Matcher.parse(x) if isinstance(x, str) else x for x in v]
    return v


@dataclass(frozen=True, kw_only=True)
class RouteConfig(Strict):
    """A node of the routing tree, in Alertmanager's vocabulary."""

    __pydantic_config__: ClassVar[dict[str, Any]] = aliases(continue_="continue")

    matchers: Annotated[list[Matcher], Before(_parse_matchers)] = field(default_factory=list)
    receivers: list[str] = field(default_factory=list)
    routes: list[RouteConfig] = field(default_factory=list)
    continue_: bool = False


@dataclass(frozen=True, kw_only=True)
class FileConfig(Strict):
    """The whole file, or the receivers in force: the file's and the environment's."""

    receivers: list[ReceiverConfig] = field(default_factory=list)
    route: RouteConfig | None = None


def make_notifier(r: Any, ctx: Context | None = None) -> Notifier:
    """The notifier of one receiver; a missing secret is a ConfigError naming it."""
    return KINDS[r.kind].build(r.name, r.kind_config, ctx or Context())
