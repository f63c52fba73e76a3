"""Config types as frozen dataclasses, with the checks pydantic runs when it reads them.

The agent runs on these plain objects and never imports pydantic (11 MB resident):
the settings and the receivers file are read and checked in `oomwatch.validation`,
in a short-lived process, and handed over already checked. A type here declares its
checks with `Annotated` metadata (annotated_types bounds, `After`, `Before`) that
only pydantic reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

T = TypeVar("T")


class Strict:
    """Base of a config type: an unknown name is refused, not ignored."""

    # pydantic's ConfigDict, read when a config is validated; a plain dict needs no import
    __pydantic_config__: ClassVar[dict[str, Any]] = {"extra": "forbid", "populate_by_name": True}


class _Hook:
    mode = "after"

    def __init__(self, check: Callable[[Any], Any]) -> None:
        self.check = check

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], Any]) -> Any:
        from pydantic_core import core_schema

        if self.mode == "after":
            return core_schema.no_info_after_validator_function(self.check, handler(source))
        return core_schema.no_info_before_validator_function(self.check, handler(source))


class After(_Hook):
    """A check run on the value once its type is right; it raises ValueError to refuse it."""


class Before(_Hook):
    """A conversion run on the raw value before its type is checked."""

    mode = "before"


def checked(kind: type[T], /, **values: Any) -> T:
    """A config made from values, checked as if it were read from the receivers file."""
    from oomwatch.validation import validate

    return validate(kind, values)


def aliases(**names: str) -> dict[str, Any]:
    """`Strict`'s pydantic config with other names in the file for some fields."""
    return {**Strict.__pydantic_config__, "alias_generator": lambda field: names.get(field, field)}
