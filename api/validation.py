"""Reading and checking request input by hand: cheap on the hot path, and precise about what is wrong.

A body that cannot be read as a JSON object is a 400 ``invalid_json``; a readable body with fields at
fault is a 422 ``validation_error`` listing every field, checked before any engine call. Text that UTF-8
cannot encode (a lone surrogate such as ``"\ud800"``, valid JSON) is such a fault, wherever it is in the
body: as a value, nested, or as a field's name.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, TypeVar

import orjson
from starlette.requests import ClientDisconnect, Request

from api.errors import ApiError, InvalidJson, ValidationFailed
from api.times import parse_sale_bound
from engine.ids import MAX_PRODUCT_ID, Kind, parse_id
from engine.product_rules import NOT_BLANK_PATTERN
from engine.text import CONTROL_CHARACTERS, encodable

C = TypeVar("C", bound=str)

MAX_BODY_BYTES = 16 * 1024

_PRODUCT_ID = re.compile(r"[1-9][0-9]{0,14}", re.ASCII)
_NOT_BLANK = re.compile(NOT_BLANK_PATTERN)
UNENCODABLE = "must be text that UTF-8 can encode (no lone surrogates such as \\ud800)"


def is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def header(request: Request, name: bytes) -> str | None:
    """The first value of a header (``name`` in lower case): ``request.headers.get`` without building
    ``Headers``, or raising and catching KeyError when the header is absent."""
    headers: list[tuple[bytes, bytes]] = request.scope["headers"]
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


async def read_body(request: Request) -> bytes:
    """The raw body, refused with 413 past MAX_BODY_BYTES without reading the rest."""
    length = header(request, b"content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise _too_large()
    # The messages themselves, not request.stream(): an async generator per request is a cost on the hot path.
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _too_large()
        if not message.get("more_body", False):
            return b"".join([*chunks, chunk]) if chunks else chunk
        chunks.append(chunk)


def _too_large() -> ApiError:
    return ApiError(413, "payload_too_large", f"the request body is larger than {MAX_BODY_BYTES} bytes")


async def read_json(request: Request) -> tuple[dict[str, Any], bytes]:
    """The body as a JSON object, and its raw bytes."""
    if not is_json(header(request, b"content-type")):
        raise InvalidJson("the body must be JSON, sent with Content-Type: application/json")
    raw = await read_body(request)
    return parse_object(raw), raw


def parse_object(raw: bytes) -> dict[str, Any]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = _loads_strict(raw)
        if isinstance(body, dict):
            # orjson refuses lone surrogates; the standard parser lets them through, and no store can keep them.
            _refuse_unencodable(body)
    if not isinstance(body, dict):
        raise InvalidJson("the body must be a JSON object")
    return body


def printable(text: str) -> str:
    """``text`` fit for an answer: lone surrogates written out as ``\\ud800``."""
    return text if encodable(text) else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _holds_unencodable(value: Any) -> bool:
    """Whether any string in ``value`` (a parsed JSON value), or any object key, cannot be encoded.

    Iterative: the parser allows nesting about as deep as the interpreter's recursion limit."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not encodable(item):
                return True
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
    return False


def _refuse_unencodable(body: dict[str, Any]) -> None:
    errors = []
    for name, value in body.items():
        if not encodable(name):
            errors.append({"field": printable(name[:64]), "message": f"is not a known field: its name {UNENCODABLE}"})
        elif _holds_unencodable(value):
            errors.append({"field": printable(name[:64]), "message": UNENCODABLE})
    if errors:
        raise ValidationFailed(errors)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _loads_strict(raw: bytes) -> Any:
    """The standard parser, for the rare valid JSON orjson refuses; anything it refuses too is malformed."""
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise InvalidJson("the body is not valid JSON") from None


class Fields:
    """Collects every fault of one input, then raises them together from ``check``."""

    __slots__ = ("body", "errors", "seen")

    def __init__(self, body: dict[str, Any] | None = None) -> None:
        self.body = body or {}
        self.errors: list[dict[str, str]] = []
        self.seen: set[str] = set()

    def fault(self, field: str, message: str) -> None:
        self.errors.append({"field": printable(field[:64]), "message": printable(message)})

    def _get(self, name: str, required: bool) -> Any:
        self.seen.add(name)
        value = self.body.get(name)
        if value is None and required:
            self.fault(name, "is required")
        return value

    def integer(self, name: str, low: int, high: int, *, required: bool = True, default: int = 0) -> int:
        value = self._get(name, required)
        if value is None:
            return default
        if type(value) is not int or not low <= value <= high:  # bool is an int subclass: refused too
            self.fault(name, f"must be an integer from {low} to {high}")
            return default
        return int(value)

    def text(self, name: str, max_length: int, *, required: bool = True) -> str | None:
        value = self._get(name, required)
        if value is None:
            return None
        if not isinstance(value, str) or not value or len(value) > max_length or CONTROL_CHARACTERS.search(value):
            self.fault(
                name, f"must be a non-empty string of at most {max_length} characters, without control characters"
            )
            return None
        if not encodable(value):
            self.fault(name, UNENCODABLE)
            return None
        return value

    def name(self, name: str, max_length: int) -> str | None:
        """A display name: ``text`` that is not blank (``NOT_BLANK_PATTERN`` finds a character)."""
        value = self.text(name, max_length)
        if value is not None and _NOT_BLANK.search(value) is None:
            self.fault(name, "must not be blank")
            return None
        return value

    def choice(self, name: str, options: tuple[C, ...]) -> C:
        value = self._get(name, True)
        for option in options:
            if value == option:
                return option
        if value is not None:
            self.fault(name, f"must be one of {', '.join(options)}")
        return options[0]

    def identifier(self, name: str, kind: Kind) -> str:
        """A hold or order id from the body."""
        value = self._get(name, True)
        return "" if value is None else self.id_value(name, kind, value)

    def id_value(self, name: str, kind: Kind, value: Any) -> str:
        prefix = "h" if kind == "hold" else "o"
        try:
            parse_id(value, kind)
        except ValueError:
            self.fault(name, f"must be a {kind} id such as {prefix}42_01JD0Z3N5W8YQ2T4V6X8Z0A1B2")
            return ""
        return str(value)

    def product_id(self, name: str, value: str) -> int:
        """A product id from the path: a positive integer up to ``MAX_PRODUCT_ID``, written plainly."""
        if _PRODUCT_ID.fullmatch(value) is None:
            self.fault(name, f"must be an integer from 1 to {MAX_PRODUCT_ID}")
            return 0
        return int(value)

    def sale_bound(self, name: str) -> datetime | None:
        """An optional sale window bound (``api.times.parse_sale_bound``)."""
        value = self._get(name, False)
        if value is None:
            return None
        if not isinstance(value, str):
            self.fault(name, "must be an RFC 3339 date-time string or null")
            return None
        try:
            return parse_sale_bound(value)
        except ValueError as error:
            self.fault(name, str(error))
            return None

    def header(self, name: str, value: str | None, max_length: int) -> str | None:
        if value is None:
            return None
        if not value or len(value) > max_length or CONTROL_CHARACTERS.search(value):
            self.fault(name, f"must be 1 to {max_length} characters, without control characters")
            return None
        if not encodable(value):  # read as latin-1 a header always encodes; a value from elsewhere may not
            self.fault(name, UNENCODABLE)
            return None
        return value

    def check(self, *, closed: bool = True) -> None:
        """Raise the collected faults; with ``closed``, fields nobody asked for are faults too."""
        if closed:
            for name in self.body:
                if name not in self.seen:
                    self.fault(name, "is not a known field")
        if self.errors:
            raise ValidationFailed(self.errors)


def path_id(request: Request, name: str, kind: Kind) -> str:
    """A hold or order id from the path, or a 422 naming the parameter."""
    fields = Fields()
    value = fields.id_value(name, kind, request.path_params[name])
    fields.check()
    return value


def path_product_id(request: Request, name: str = "id") -> int:
    fields = Fields()
    value = fields.product_id(name, request.path_params[name])
    fields.check()
    return value
