"""The InstaXchange API without I/O: its URLs, and what its answers mean.

Pure functions from ids to URLs and from a :class:`~instax_async.Response` to a model or to the
:class:`~instax_async.APIStatusError` it stands for. The client builds requests with them and
:mod:`instax_async._requester` sends them; :class:`~instax_async.BlockchainPoller` reads its
answers with them too. Nothing here awaits, sleeps or touches a socket, so a sync client can
share it as it is (gidgethub's ``sansio`` is the model).
"""

from __future__ import annotations

import functools
import platform
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from ._validate import check_id
from ._version import __version__
from .errors import APIStatusError, RateLimitError, ValidationError, status_error_class
from .models import CHECKOUT_URL_KEYS, PaymentSession, checkout_url_in
from .serialization import get_converter, loads
from .transports.base import Response

if TYPE_CHECKING:
    from .models import BlockchainStatus, SessionStatus

__all__ = [
    "DEFAULT_BASE_URL",
    "CheckoutTemplate",
    "blockchain_status_from",
    "blockchain_status_url",
    "checkout_template",
    "checkout_url",
    "error_message",
    "json_object",
    "payment_session_from",
    "session_status_from",
    "session_status_url",
    "session_url",
    "status_error",
    "user_agent",
]

#: The production API.
DEFAULT_BASE_URL = "https://instaxchange.com"

_CHECKOUT_KEYS = frozenset(CHECKOUT_URL_KEYS)

# Ids such as ``ps_<uuid>`` need no quoting in a path; anything else is percent-encoded.
_PATH_SAFE = re.compile(r"[A-Za-z0-9_.~-]+").fullmatch


@functools.cache
def user_agent() -> str:
    """The ``User-Agent`` every request carries."""
    from importlib import metadata  # only when the first client is built: it is slow to import

    try:
        aiohttp_version = metadata.version("aiohttp")
    except metadata.PackageNotFoundError:  # pragma: no cover - aiohttp is a core dependency
        aiohttp_version = "unknown"
    return (
        f"instax-async/{__version__} python/{platform.python_version()} aiohttp/{aiohttp_version}"
    )


# -- URLs (ids already checked with check_id) ---------------------------------------------------


def session_url(base_url: str) -> str:
    """``POST`` here to create a payment session."""
    return f"{base_url}/api/session"


#: A checkout URL template split at its ``{id}``: what goes before the id, and after it.
CheckoutTemplate = tuple[str, str]


def checkout_template(template: str) -> CheckoutTemplate:
    """``template`` (checked: one ``{id}``) as the two parts around its ``{id}``, split once so
    that each session's URL is two concatenations."""
    before, _, after = template.partition("{id}")
    return before, after


def checkout_url(template: CheckoutTemplate, session_id: str) -> str:
    """A session's checkout page: the template with the id, percent-encoded, in place."""
    if not _PATH_SAFE(session_id):
        session_id = quote(session_id, safe="")
    return template[0] + session_id + template[1]


def blockchain_status_url(base_url: str, tx_id: str) -> str:
    """``GET`` here for a payout's on-chain status."""
    return f"{base_url}/utils/blockchain-status?txId={quote(tx_id, safe='')}"


def session_status_url(base_url: str, session_id: str) -> str:
    """``GET`` here (with the api key) for a session's status."""
    return f"{base_url}/api/session/{quote(session_id, safe='')}/status"


# -- answers ------------------------------------------------------------------------------------


def _not_understood(response: Response, message: str) -> APIStatusError:
    return APIStatusError(
        message, status=response.status, body=response.content, headers=response.headers
    )


def json_object(response: Response) -> dict[str, Any]:
    """The response's body as a JSON object, or the :class:`APIStatusError` it is."""
    try:
        data = loads(response.content)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise _not_understood(
            response, f"InstaXchange answered with a body that is not JSON: {exc}"
        ) from exc
    if not isinstance(data, dict):
        raise _not_understood(
            response,
            f"InstaXchange answered with JSON that is not an object ({type(data).__name__})",
        )
    return data


def read_only(headers: Mapping[str, str]) -> Mapping[str, str]:
    """``headers`` as a mapping nobody can change."""
    # Whether it can be changed, by its __setitem__: an ABC isinstance check (MutableMapping)
    # costs 2,100 instructions per created session, this one 500 (valgrind); the saving pays
    # for the look for a checkout URL in every answer.
    if hasattr(headers, "__setitem__"):
        return MappingProxyType(headers)
    return headers  # aiohttp's own mapping is read-only


def payment_session_from(response: Response, checkout: CheckoutTemplate) -> PaymentSession:
    """The :class:`PaymentSession` a ``POST /api/session`` answered.

    Its ``iframe_url`` is the checkout URL the answer carries (:func:`~instax_async.models.
    checkout_url_in`), else ``checkout`` with the session's id.
    """
    data = json_object(response)
    session_id = data.get("id") or data.get("sessionId")
    try:
        # "." or "..": its checkout URL, /embed/.., would be another page; a lone
        # surrogate has no URL form at all
        session_id = check_id(session_id, "id")
    except ValidationError:
        raise _not_understood(
            response,
            "InstaXchange answered without a session id ('id' or 'sessionId') that can "
            "name its checkout page",
        ) from None
    # Today's answers carry no checkout URL: one set check in C (1,750 instructions of a
    # request's 550,000, valgrind) before the walk through CHECKOUT_URL_KEYS.
    url = None if _CHECKOUT_KEYS.isdisjoint(data) else checkout_url_in(data)
    return PaymentSession(
        id=session_id,
        iframe_url=url or checkout_url(checkout, session_id),
        raw=data,
        headers=read_only(response.headers),
    )


def blockchain_status_from(tx_id: str, response: Response) -> BlockchainStatus:
    """The :class:`BlockchainStatus` of ``tx_id`` a blockchain-status request answered."""
    from .models import BlockchainStatus  # built on first use, not with the client

    return BlockchainStatus.from_mapping(tx_id, json_object(response))


def session_status_from(response: Response) -> SessionStatus:
    """The :class:`SessionStatus` a session-status request answered."""
    from .models import SessionStatus  # built on first use, not with the client

    data = json_object(response)
    try:
        return get_converter().structure(data, SessionStatus)
    except Exception as exc:  # cattrs wraps what it finds in its own exception groups
        raise _not_understood(
            response,
            "InstaXchange answered with a session status that does not parse: "
            f"{_structure_errors(exc)}",
        ) from exc


def _structure_errors(error: Exception) -> str:
    import cattrs

    try:
        return "; ".join(cattrs.transform_error(error))
    except Exception:  # pragma: no cover - transform_error handles every cattrs error
        return f"{type(error).__name__}: {error}"


def error_message(status: int, data: Any) -> str:
    """What an error answer says: its ``message`` or ``error`` (or ``error.message``)."""
    if isinstance(data, Mapping):
        for key in ("message", "error"):
            value = data.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, Mapping) and isinstance(value.get("message"), str):
                return str(value["message"])
    return f"InstaXchange answered HTTP {status}"


def status_error(response: Response, retry_after: float | None) -> APIStatusError:
    """The :class:`APIStatusError` subclass for a response that is not a success."""
    try:
        data = loads(response.content) if response.content else None
    except ValueError:  # not JSON, or nested deeper than MAX_JSON_DEPTH: no message in it
        data = None
    status = response.status
    cls = status_error_class(status)
    message = error_message(status, data)
    if cls is RateLimitError:
        return RateLimitError(
            message,
            status=status,
            body=response.content,
            headers=response.headers,
            retry_after=retry_after,
        )
    return cls(message, status=status, body=response.content, headers=response.headers)
