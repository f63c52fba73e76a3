"""The settings, the receivers file and the environment's receivers, read and checked.

The only module that imports pydantic and pydantic-settings. The CLI's short-lived
commands call it in their own process; the agent has it run in a child process
(`oomwatch.configchild`) and keeps only the plain, checked result, so neither
library stays in its memory.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar, cast, get_type_hints

from pydantic import Field, TypeAdapter, ValidationError, create_model
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from oomwatch.errors import ConfigError, UsageError
from oomwatch.notify.registry import KINDS
from oomwatch.receivers import FileConfig, ReceiverConfig, RouteConfig
from oomwatch.settings import Settings, known_variables

T = TypeVar("T")


_adapters: dict[type[Any], TypeAdapter[Any]] = {}  # a schema is built once per type


def validate(kind: type[T], data: Any) -> T:
    """`data` checked and made into a `kind`; a pydantic ValidationError says what is wrong."""
    adapter = _adapters.get(kind) or _adapters.setdefault(kind, TypeAdapter(kind))
    value: T = adapter.validate_python(data)
    return value


def message(err: ErrorDetails) -> str:
    """One problem in words, without pydantic's "Value error, " prefix."""
    if err["type"] == "unexpected_keyword_argument":
        return "unknown name"
    return err["msg"].removeprefix("Value error, ")


class _SettingsBase(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OOMWATCH_", env_nested_delimiter="__", extra="ignore"
    )


@functools.cache
def _settings_loader() -> type[BaseSettings]:
    """A pydantic-settings class with the fields of `Settings`: one declaration of each."""
    hints = get_type_hints(Settings, include_extras=True)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(Settings):
        if f.default is dataclasses.MISSING:
            fields[f.name] = (hints[f.name], Field(default_factory=cast(Any, f.default_factory)))
        else:
            fields[f.name] = (hints[f.name], f.default)
    loader: type[BaseSettings] = create_model("SettingsLoader", __base__=_SettingsBase, **fields)
    return loader


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
        loaded = _settings_loader()(_env_file=env_file if env_file.is_file() else None)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            name = "OOMWATCH_" + "__".join(str(p).upper() for p in err["loc"])
            problems.append(f"{name}: {message(err)}")
        raise UsageError("bad setting: " + "; ".join(problems)) from None
    return Settings(**{f.name: getattr(loaded, f.name) for f in dataclasses.fields(Settings)})


def _check_names(names: list[str], where: str) -> None:
    known = known_variables()
    unknown = sorted({n for n in names if n not in known})
    if not unknown:
        return
    import difflib

    words = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f"; did you mean {close[0]}?" if close else "; see docs/config.md"
        words.append(f"{name}: unknown setting{hint}")
    raise UsageError("; ".join(words) + (where if len(unknown) == 1 else ""))


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
        return validate(FileConfig, raw)
    except ValidationError as e:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'top'}: {message(err)}" for err in e.errors()
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
        extra.append(ReceiverConfig(name=console, **{"console": True}))
    receivers += extra
    route = file.route if file and file.route else None
    if route is None:
        route = RouteConfig(receivers=[r.name for r in receivers])
    elif console is not None:
        route = RouteConfig(routes=[RouteConfig(receivers=[console], continue_=True), route])
    _check_route_names(route, {r.name for r in receivers})
    return FileConfig(receivers=receivers, route=route)


def _env_problems(kind: str, e: ValidationError) -> str:
    """A receiver from the environment that does not validate: the variables, never a value."""
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
        out.append(f"{where}: {message(err)}")
    return "; ".join(out)


def _check_route_names(route: RouteConfig, names: set[str]) -> None:
    unknown = [n for n in route.receivers if n not in names]
    if unknown:
        raise ConfigError(
            f"route names unknown receiver(s): {', '.join(unknown)}; known: "
            f"{', '.join(sorted(names))}"
        )
    for child in route.routes:
        _check_route_names(child, names)


def receivers_of(settings: Settings) -> FileConfig:
    """The receivers and the route in force: the settings' file's and the environment's."""
    return effective(settings, load_file(settings.config) if settings.config else None)
