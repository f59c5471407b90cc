"""Numbers people and programs send: one parser for every integer and decimal
(and the true/false switches).

``str.isdigit`` and ``int`` accept more than ASCII digits ("²" passes the
first and breaks the second; "１２", " 7 " and "1_000" pass ``int``), and a
5,000-digit number costs time and overflows the database. Every integer or
decimal parameter of a form, query string, JSON body or URL goes through here:
ASCII digits only, bounded in length, no sign, exponent, blanks or
separators. Anything else raises :class:`BadParameter`, answered as a 400 by
``app/errors.py`` (JSON or a page, as the route does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated
from typing import Any

from flask import current_app
from pydantic import BaseModel
from pydantic import BeforeValidator
from pydantic import ConfigDict
from pydantic import Field
from pydantic import ValidationInfo
from pydantic import WithJsonSchema
from werkzeug.datastructures import MultiDict
from werkzeug.routing import BaseConverter

# Longer numbers are refused before conversion: no id, page or count here
# needs more, and int() of a long string is quadratic.
MAX_DIGITS = 18
_INTEGER = re.compile(rf"[0-9]{{1,{MAX_DIGITS}}}", re.ASCII)
_DECIMAL = re.compile(
    rf"(?:[0-9]{{1,{MAX_DIGITS}}}(?:\.[0-9]{{0,{MAX_DIGITS}}})?|\.[0-9]{{1,{MAX_DIGITS}}})",
    re.ASCII,
)
# Primary keys are 32-bit integers (PostgreSQL INTEGER): a larger id cannot
# exist, and asking the database for one is an overflow error, not "not found".
MAX_ID = 2**31 - 1
# Beyond any real history; keeps OFFSET small whatever the page size.
MAX_PAGE = 1_000_000


class BadParameter(Exception):
    """A parameter that is not a number in the accepted range."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.code = f"invalid_{name}"
        self.message = message


def is_ascii_integer(value: object) -> bool:
    """True for a string of 1 to MAX_DIGITS ASCII digits."""
    return isinstance(value, str) and _INTEGER.fullmatch(value) is not None


def parse_int(
    value: object,
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = MAX_ID,
) -> int | None:
    """``value`` as a whole number from ``minimum`` to ``maximum``; ``default``
    when it is missing or empty. JSON integers are accepted as they are."""
    if value is None or value == "":
        return default
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif is_ascii_integer(value):
        number = int(value)
    else:
        number = None
    if number is None or not minimum <= number <= maximum:
        raise BadParameter(
            name, f"{name} must be a whole number from {minimum} to {maximum}."
        )
    return number


def parse_decimal(
    value: object,
    name: str,
    *,
    minimum: float,
    maximum: float,
    example: str,
) -> float | None:
    """``value`` as a decimal number (``0.5``, ``1``, ``.25``) from ``minimum``
    to ``maximum``; None when missing or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str) and _DECIMAL.fullmatch(value):
        number = float(value)
    else:
        number = None
    if number is None or not minimum <= number <= maximum:  # also refuses nan
        raise BadParameter(
            name,
            f"{name} must be a number from {minimum:g} to {maximum:g}, e.g. {example}.",
        )
    return number


def parse_page(value: object) -> int:
    """A page number (default 1). Pages past the end are empty, so a large one
    is clamped rather than refused."""
    return min(parse_int(value, "page", default=1, minimum=1), MAX_PAGE)


def parse_id_list(values: list[str], name: str, limit: int) -> list[int]:
    """Ids from form fields or a comma-separated value; at most ``limit``."""
    if len(values) > limit:
        raise BadParameter(name, f"At most {limit} {name} at once.")
    return [parse_int(v, name, minimum=1) for v in values if v != ""]


class IdConverter(BaseConverter):
    """``<id:name>`` in a URL: up to 10 ASCII digits, anything else does not
    match (404). A number past MAX_ID becomes 0, which no row has, so the view
    answers its usual 404 without asking the database for an overflowing id.
    (Refusing it here instead would make Werkzeug answer 405 when the same
    path has a rule for another method.)"""

    regex = rf"[0-9]{{1,{len(str(MAX_ID))}}}"
    part_isolating = True
    # How /openapi.json describes it (app/api/openapi.py).
    openapi_schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}

    def to_python(self, value: str) -> int:
        number = int(value)
        return number if number <= MAX_ID else 0

    def to_url(self, value: int) -> str:
        return str(int(value))


BOOLEAN_VALUES = {"true": True, "1": True, "false": False, "0": False}


def parse_bool(value: object, name: str, *, default: bool = False) -> bool:
    """``true``/``false``/``1``/``0`` (or a JSON boolean); ``default`` when
    missing or empty. Anything else ("yes", "TRUE", " 1") is refused."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value in BOOLEAN_VALUES:
        return BOOLEAN_VALUES[value]
    raise BadParameter(name, f"{name} must be true, false, 1 or 0.")


# --------------------------------------------------------------------------
# The same parsers as pydantic types, for the request models from which the
# API's description is generated (app/api/schemas.py). Our parsers raise
# BadParameter, which pydantic lets through: a bad value is the same 400
# ``invalid_<name>``. A bound or default may be a setting, read from the app
# when a request is validated and filled in when the description is made.


@dataclass(frozen=True)
class Setting:
    """A bound or default that is a setting of the app, e.g. ``MAX_TOP_K``."""

    name: str

    def value(self) -> Any:
        return current_app.config[self.name]


def resolve(value: Any) -> Any:
    """A setting's value in the current app; anything else as it is."""
    return value.value() if isinstance(value, Setting) else value


def described(value: Any) -> Any:
    """How a setting stands in a schema until the description is made."""
    return {"x-setting": value.name} if isinstance(value, Setting) else value


def documented(schema: dict, default: Any = None) -> tuple:
    """Annotations that make a field's schema ``schema`` (and its default
    ``default``), whatever pydantic would say of its Python type and default."""

    def set_default(field_schema: dict) -> None:
        field_schema.pop("default", None)
        if default is not None:
            field_schema["default"] = described(default)

    return WithJsonSchema(schema), Field(json_schema_extra=set_default)


def Integer(
    minimum: int | Setting,
    maximum: int | Setting,
    description: str,
    *,
    default: int | Setting | None = None,
    clamp: int | None = None,
) -> Any:
    """A whole number (:func:`parse_int`). With ``clamp``, numbers up to MAX_ID
    are accepted and those over ``clamp`` become ``clamp``."""

    def validate(value: Any, info: ValidationInfo) -> int | None:
        number = parse_int(
            value,
            info.field_name,
            default=resolve(default),
            minimum=resolve(minimum),
            maximum=MAX_ID if clamp else resolve(maximum),
        )
        return min(number, clamp) if clamp and number is not None else number

    schema = {
        "type": "integer",
        "minimum": described(minimum),
        "maximum": described(clamp or maximum),
        "description": description,
    }
    return Annotated[
        int | None, BeforeValidator(validate), *documented(schema, default)
    ]


def Decimal(minimum: float, maximum: float, description: str) -> Any:
    """A plain decimal such as ``0.5`` (:func:`parse_decimal`)."""

    def validate(value: Any, info: ValidationInfo) -> float | None:
        return parse_decimal(
            value, info.field_name, minimum=minimum, maximum=maximum, example="0.5"
        )

    schema = {
        "type": "number",
        "minimum": minimum,
        "maximum": maximum,
        "description": description,
    }
    return Annotated[float | None, BeforeValidator(validate), *documented(schema)]


def Switch(description: str) -> Any:
    """``true``/``false``/``1``/``0`` (:func:`parse_bool`); missing is false."""

    def validate(value: Any, info: ValidationInfo) -> bool:
        return parse_bool(value, info.field_name)

    schema = {
        "type": "string",
        "enum": list(BOOLEAN_VALUES),
        "description": description,
    }
    return Annotated[bool, BeforeValidator(validate), *documented(schema)]


class Params(BaseModel):
    """Query or form fields (the first value of each): unknown ones are
    ignored, and missing ones validated too (their parser gives the default)."""

    model_config = ConfigDict(frozen=True, validate_default=True)

    @classmethod
    def parse(cls, values: MultiDict) -> Params:
        return cls.model_validate(values.to_dict())
