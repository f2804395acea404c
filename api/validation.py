"""Reading request input and checking it against its declaration (``api.bodies``): fast when it is right, and
precise about what is wrong.

``decode`` hands a body to msgspec, which decodes and checks it against its Struct in one pass. Only a body msgspec
refuses is read again, field by field, by ``Fields.explain``, which words every fault from the same declaration.
A body that cannot be read as a JSON object is a 400 ``invalid_json``; a readable body with fields at
fault is a 422 ``validation_error`` listing every field, checked before any engine call. Text that UTF-8
cannot encode (a lone surrogate such as ``"\ud800"``, valid JSON) is such a fault, wherever it is in the
body: as a value, nested, or as a field's name.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import Any, TypeVar

import msgspec
import orjson
from msgspec import inspect
from starlette.requests import ClientDisconnect, Request

from api.errors import ApiError, InvalidJson, ValidationFailed
from api.times import parse_sale_bound
from engine.ids import MAX_PRODUCT_ID, Kind, parse_id
from engine.product_rules import NOT_BLANK_PATTERN
from engine.text import CONTROL_CHARACTERS, encodable

C = TypeVar("C", bound=str)
B = TypeVar("B", bound=msgspec.Struct)

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


async def read_json(request: Request) -> bytes:
    """The raw body of a request that says it is JSON (``decode`` reads it)."""
    if not is_json(header(request, b"content-type")):
        raise InvalidJson("the body must be JSON, sent with Content-Type: application/json")
    return await read_body(request)


Header = tuple[str, str | None, Any]
"""A header checked with the body: its name, its value (None: absent), and its declared type (``api.bodies``)."""
Also = Callable[["Fields", Mapping[str, Any]], None]
"""A rule JSON Schema cannot state, checked after the body's fields: it adds its faults to the ``Fields`` given,
from the body's field values (those at fault already are left out)."""
_REFUSED = (msgspec.DecodeError, msgspec.ValidationError)
WORDED = (inspect.IntType, inspect.BoolType, inspect.LiteralType, inspect.StrType)
"""The types of a body's fields whose faults ``Fields.explain`` words."""


def decode(raw: bytes, kind: type[B], *, headers: Sequence[Header] = (), also: Also | None = None) -> B:
    """The body as its Struct, or ``ValidationFailed`` naming every field at fault, then every header, then every
    field the Struct does not know (400 ``invalid_json`` if it is no JSON object).

    msgspec decodes and checks the body in one pass; only a body it refuses is read again with the old parser
    and explained field by field (``Fields.explain``), so the answer to a bad body never depends on msgspec's words.
    A Struct that takes unknown fields is read by orjson first: msgspec skips an unknown field without checking
    its text, and such a payload is kept whole.
    """
    reader = _readers.get(kind) or _reader(kind)
    value: B | None
    try:
        value = reader.decode(raw)
    except _REFUSED:
        value = None
    if value is not None and also is None:
        for _, header_value, declared in headers:
            if header_value is not None and not _header_ok(header_value, declared):
                break
        else:
            return value
    fields = Fields(parse_object(raw) if value is None else None)
    values = fields.explain(kind) if value is None else msgspec.structs.asdict(value)
    if also is not None:
        also(fields, values)
    for name, header_value, declared in headers:
        fields.header(name, header_value, _max_length(declared))
    fields.check(closed=reader.closed)
    if value is None:  # nothing at fault by our words, yet msgspec refused: trust the old reading
        value = _convert(fields.body, kind)
    return value


class _Reader:
    """How ``decode`` reads one Struct: msgspec's decoder when the Struct refuses unknown fields, else orjson and
    ``msgspec.convert``."""

    __slots__ = ("closed", "decode")

    def __init__(self, kind: type[msgspec.Struct]) -> None:
        for field in _fields(kind):
            declared, _ = _declared(field.type)
            if not isinstance(declared, WORDED):
                raise TypeError(f"{kind.__name__}.{field.name}: api.validation cannot word a fault of {declared!r}")
        self.closed = kind.__struct_config__.forbid_unknown_fields
        decoder = msgspec.json.Decoder(kind)
        self.decode: Callable[[bytes], Any] = (
            decoder.decode if self.closed else lambda raw: msgspec.convert(parse_object(raw), kind)
        )


_readers: dict[type[msgspec.Struct], _Reader] = {}


def _reader(kind: type[msgspec.Struct]) -> _Reader:
    reader = _readers[kind] = _Reader(kind)
    return reader


@cache
def _max_length(declared: Any) -> int:
    """The ``max_length`` a declared string type (``Annotated[str, Meta(...)]``) carries."""
    info = inspect.type_info(declared)
    constraints = info.type if isinstance(info, inspect.Metadata) else info
    if not isinstance(constraints, inspect.StrType) or constraints.max_length is None:
        raise TypeError(f"a header is declared as a string with a max_length, not as {declared!r}")
    return constraints.max_length


def _header_ok(value: str, declared: Any) -> bool:
    return 0 < len(value) <= _max_length(declared) and CONTROL_CHARACTERS.search(value) is None and encodable(value)


def _convert(body: dict[str, Any], kind: type[B]) -> B:
    try:
        return msgspec.convert(body, kind)
    except msgspec.ValidationError as error:
        raise ValidationFailed([{"field": "body", "message": printable(str(error))}]) from None


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

    def explain(self, kind: type[msgspec.Struct]) -> dict[str, Any]:
        """Check each field ``kind`` declares, in order, each worded by its kind (``api.bodies.KINDS``); the values of
        the fields that are right, by attribute name."""
        values: dict[str, Any] = {}
        for field in _fields(kind):
            name = field.encode_name
            self.seen.add(name)
            value = self.body.get(name)
            if value is None:  # null is as good as absent
                if field.required:
                    self.fault(name, "is required")
                continue
            before = len(self.errors)
            self._check(kind, name, *_declared(field.type))
            if len(self.errors) == before:
                values[field.name] = value
        return values

    def _check(self, kind: type[msgspec.Struct], name: str, declared: inspect.Type, extra: Mapping[str, str]) -> None:
        if isinstance(declared, inspect.IntType):
            self.integer(name, declared.ge or 0, declared.le or 0)
        elif isinstance(declared, inspect.BoolType):
            if not isinstance(self._get(name, True), bool):
                self.fault(name, "must be true or false")
        elif isinstance(declared, inspect.LiteralType):
            self.choice(name, tuple(str(v) for v in declared.values))
        elif isinstance(declared, inspect.StrType):
            words = extra.get("kind", "text")
            if words in ("hold", "order"):
                self.identifier(name, "hold" if words == "hold" else "order")
            elif words == "sale_bound":
                self.sale_bound(name)
            elif words == "name":
                self.name(name, declared.max_length or 0)
            elif (text := self.text(name, declared.max_length or 0)) is not None:
                refused = [c for c in extra.get("refuse", "") if c in text]
                if refused:
                    self.fault(name, f"must not contain '{refused[0]}'")
        else:
            raise TypeError(f"{kind.__name__}.{name}: {declared!r} has no wording in api.validation")

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


@cache
def _fields(kind: type[msgspec.Struct]) -> tuple[inspect.Field, ...]:
    info = inspect.type_info(kind)
    assert isinstance(info, inspect.StructType)
    return info.fields


def _declared(declared: inspect.Type) -> tuple[inspect.Type, Mapping[str, str]]:
    """A field's type without ``| None``, and the ``extra`` of its ``Meta``."""
    if isinstance(declared, inspect.UnionType):
        (declared,) = (t for t in declared.types if not isinstance(t, inspect.NoneType))
    if isinstance(declared, inspect.Metadata):
        return declared.type, declared.extra or {}
    return declared, {}
