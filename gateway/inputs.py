"""What a caller sent, read at the HTTP edge: the body (JSON or YAML, a model) and values from the path and
the query, each refused with a clear 4xx naming what is wrong when it cannot be used."""

from __future__ import annotations

import json
import re
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Any, TypeVar

import orjson
import pydantic
import yaml
from aiohttp import web

from .appkeys import SETTINGS
from .errors import BadRequest, GatewayError, Invalid, TooLarge, field_error
from .http import MAX_BODY
from .rules.params import BIGINT_MAX

M = TypeVar("M", bound=pydantic.BaseModel)


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The raw body; one declared larger than the limit (the app's, unless this endpoint names its
    own) is refused before a byte of it is read."""
    limit = limit or request.app[MAX_BODY]
    declared = request.content_length
    if declared is not None and declared > limit:
        raise TooLarge("the request body is larger than this endpoint accepts")
    if limit > request.app[MAX_BODY]:  # aiohttp's own cap is the app's: read this one by hand
        return await _read_upto(request, limit)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:  # no length declared (chunked): aiohttp stops at the limit
        raise TooLarge("the request body is larger than this endpoint accepts") from None
    if len(raw) > limit:
        raise TooLarge("the request body is larger than this endpoint accepts")
    return raw


async def _read_upto(request: web.Request, limit: int) -> bytes:
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise TooLarge("the request body is larger than this endpoint accepts")
        chunks.append(chunk)
    return b"".join(chunks)


def client_address(request: web.Request) -> str:
    """The address a request came from. Behind a proxy the gateway trusts (GATEWAY_TRUSTED_PROXIES),
    the nearest address in X-Forwarded-For that is not one of those proxies: the hops a client wrote
    itself lie to the left of it and are never taken. Without trusted proxies, the peer's address."""
    remote = request.remote or ""
    proxies = request.app[SETTINGS].trusted_proxies
    if not proxies or not _within(_ip(remote), proxies):
        return remote
    hops = ",".join(request.headers.getall("X-Forwarded-For", ())).split(",")
    for raw in reversed(hops):
        hop = _bare(raw.strip())
        if not hop:
            continue
        ip = _ip(hop)
        if ip is None:
            return remote  # not an address ('unknown'): the proxy's own, as a last resort
        if not _within(ip, proxies):
            return str(ip)
    return remote


def _bare(hop: str) -> str:
    """An X-Forwarded-For hop without the port some balancers add: 203.0.113.5:4711, [2001:db8::1]:443."""
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    if hop.count(":") == 1:
        return hop.partition(":")[0]
    return hop


def _ip(text: str) -> IPv4Address | IPv6Address | None:
    try:
        return ip_address(text)
    except ValueError:
        return None


def _within(ip: IPv4Address | IPv6Address | None, networks: tuple[IPv4Network | IPv6Network, ...]) -> bool:
    return ip is not None and any(ip in net for net in networks)


def attempt_note(request: web.Request, exc: GatewayError) -> str:
    """What the contact log keeps of a request whose body could not be read: why, the size it
    declared and the address it came from (the body itself may never have been read)."""
    size = "no declared size" if request.content_length is None else f"Content-Length {request.content_length}"
    return f"{exc.message} ({size}; from {client_address(request) or 'an unknown address'})"


_LONG_NUMBER = re.compile(rb"[0-9]{19}")


def is_json_type(content_type: str) -> bool:
    """Whether a body of this media type (without its parameters, lower case) is read as JSON."""
    return content_type in ("application/json", "", "application/octet-stream") or content_type.endswith("+json")


async def read_json(request: web.Request) -> Any:
    if not is_json_type(request.content_type):
        raise BadRequest(
            f"expected a JSON body (Content-Type: application/json), got {request.content_type}",
            code="unsupported_media_type",
        )
    return json_of(await read_body(request))


def json_of(raw: bytes) -> Any:
    """A body's JSON, or a BadRequest saying why it is not JSON we read."""
    if not _LONG_NUMBER.search(raw):  # orjson reads an integer over 64 bits as a float: those go below
        try:  # a tenth of the standard library's cost; what it refuses is read (or refused) as always, below
            return orjson.loads(raw)
        except orjson.JSONDecodeError:  # not JSON, or JSON orjson does not take: NaN, a BOM, 1e400, ...
            pass
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", code="malformed_json") from None
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid JSON: it is not UTF-8 text", code="malformed_json") from None
    except RecursionError:
        raise BadRequest("the body's JSON is nested too deeply", code="malformed_json") from None
    except ValueError:  # Python refuses to convert an integer of more than 4300 digits
        raise BadRequest("the body's JSON has a number with too many digits", code="malformed_json") from None


YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")


class _PlainYaml(yaml.SafeLoader):
    """Safe YAML without anchors and aliases (a few lines of aliases can expand to gigabytes)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.MarkedYAMLError(None, None, "anchors and aliases are not accepted")
        return super().compose_node(parent, index)


def _plain(value: Any) -> Any:
    """YAML as JSON would carry it: dates and times become ISO text; what JSON has no form for
    (`!!binary`, `!!set`, ...) is refused, so that it cannot slip past the checks made on text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise ValueError(f"not valid here: YAML {type(value).__name__} values have no JSON form")


def printable(text: str) -> str:
    """Text as it can be sent in a page or a header: a lone surrogate written as its escape."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


async def read_json_or_yaml(request: web.Request) -> Any:
    """A JSON body, or YAML (for people) when the Content-Type says so; refused if it holds what no
    record can."""
    data = await (read_json(request) if request.content_type not in YAML_TYPES else _read_yaml(request))
    where = unstorable_path(data)
    if where is not None:
        raise field_error(where or "body", "contains a character no record can hold (NUL or a lone surrogate)")
    return data


def parse_yaml(text: str) -> Any:
    """Safe YAML, without anchors and aliases, as JSON would carry it; ValueError says what is wrong."""
    try:
        return _plain(yaml.load(text, Loader=_PlainYaml))
    except yaml.YAMLError as exc:
        raise ValueError(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise ValueError("the YAML is nested too deeply") from None


async def _read_yaml(request: web.Request) -> Any:
    raw = await read_body(request)
    try:
        return parse_yaml(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest("the body is not valid YAML: it is not UTF-8 text", code="malformed_yaml") from None
    except ValueError as exc:
        raise BadRequest(f"the body is {exc}", code="malformed_yaml") from None


async def read_model(request: web.Request, model: type[M]) -> M:
    data = await read_json(request)
    if not isinstance(data, dict):
        raise Invalid("the body must be a JSON object", [{"field": "body", "message": "not an object"}])
    where = unstorable_path(data)
    if where is not None:  # a record is refused, not altered (a contact is altered and logged: Contact)
        raise field_error(where or "body", "contains a character no record can hold (NUL or a lone surrogate)")
    return model.model_validate(data)


def _storable(text: str) -> bool:
    """PostgreSQL text holds no NUL; JSON can escape a lone surrogate (\\ud800), which UTF-8 cannot."""
    return "\x00" not in text and (text.isascii() or not any("\ud800" <= c <= "\udfff" for c in text))


def unstorable_path(value: Any, path: str = "") -> str | None:
    """The path of the first string (or key) in a JSON value that no record can hold, else None."""
    if isinstance(value, str):
        return None if _storable(value) else path
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        where = f"{path}.{key}" if path else str(key)
        if not _storable(str(key)):
            return where
        found = unstorable_path(item, where)
        if found is not None:
            return found
    return None


def query_text(request: web.Request, name: str, *, max_length: int) -> str:
    """A free-text query parameter, trimmed; refused (422) if it holds what no record can."""
    value = request.query.get(name, "").strip()
    if not _storable(value):
        raise field_error(name, "contains a character no record can hold (NUL)")
    return value[:max_length]


_YES, _NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def query_flag(request: web.Request, name: str) -> bool | None:
    """?name=1|0 (true/false, yes/no); None when not given."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() in _YES:
        return True
    if raw.lower() in _NO:
        return False
    raise field_error(name, "1 or 0 (true or false)")


INT_MAX = 2**31 - 1  # a PostgreSQL integer column (rule set versions)
# ASCII digits only: int() would also take "١" (Arabic-Indic one), "1_0" and " 1".
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,19}")


def _whole_number(raw: str) -> int | None:
    return int(raw) if _WHOLE_NUMBER.fullmatch(raw) else None


def query_int(
    request: web.Request, name: str, default: int | None = None, *, low: int = 0, high: int = BIGINT_MAX
) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    value = _whole_number(raw)
    if value is None:
        raise field_error(name, "not a whole number")
    if not low <= value <= high:
        raise field_error(name, f"out of range {low}..{high}")
    return value


def path_id(request: web.Request, name: str = "id", *, high: int = BIGINT_MAX) -> int:
    """The id in the path: a whole number 1..high (the range of its column), in ASCII digits."""
    value = _whole_number(request.match_info[name])
    if value is None or not 1 <= value <= high:
        raise field_error(name, f"not an id (a whole number from 1 to {high})")
    return value
