"""The aiohttp binding: one request in, ``(status, headers, body)`` out.

It owns the aiohttp session (or borrows the caller's) and sends; nothing
more: what a status means, retries and pacing are in
:mod:`copper_async._http`. This is the only place aiohttp and asyncio
errors are caught. Each is translated once into
:class:`~copper_async.exceptions.TransportError` (or its
:class:`~copper_async.exceptions.RequestTimeoutError`; a caller's session
that cannot send in the running loop, a plain CopperError, never retried),
raised from a copy of the aiohttp error scrubbed of the access token.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Final

import aiohttp
import attrs

from copper_async._redact import Redactor
from copper_async.exceptions import (
    ClientClosedError,
    CopperError,
    RequestTimeoutError,
    ResponseTooLargeError,
    TransportError,
)

__all__ = ["ERROR_BODY_BYTES", "AiohttpTransport", "Response"]

#: How much of a non-2xx body is read: it is only shown to people.
ERROR_BODY_BYTES: Final = 8192


@attrs.frozen
class Response:
    """What came back: the status, the headers (case-insensitive) and the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class AiohttpTransport:
    """Sends requests on one aiohttp session.

    With ``session=None`` the session is created on first use, inside the
    running loop, and closed by :meth:`aclose`; a caller's session is used
    and left open. ``redactor`` scrubs the token from translated causes;
    ``trace_configs`` go to the session it creates.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession | None,
        redactor: Redactor,
        trace_configs: Sequence[aiohttp.TraceConfig] = (),
    ) -> None:
        self._session = session
        self._trace_configs = list(trace_configs)
        self._owns_session = session is None
        self._redactor = redactor
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop our session is bound to

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The session in use; None before first use and after :meth:`aclose`."""
        return self._session

    @property
    def closed(self) -> bool:
        """True once :meth:`aclose` ran or the caller's session was closed."""
        return self._closed or (self._session is not None and self._session.closed)

    def open(self) -> aiohttp.ClientSession:
        """The session, created if needed; ClientClosedError once closed."""
        if self._closed:
            raise ClientClosedError("the client is closed")
        if self._session is None:
            self._session = aiohttp.ClientSession(trace_configs=self._trace_configs or None)
            self._loop = asyncio.get_running_loop()
        elif self._owns_session and self._loop is not asyncio.get_running_loop():
            raise CopperError(
                "this client's session belongs to an event loop that has ended (an earlier "
                "asyncio.run()): create the client inside the asyncio.run() that uses it, "
                "and close it there with 'async with client:' or 'await client.aclose()'"
            )
        elif self._session.closed:
            raise ClientClosedError("the aiohttp session given to the client is closed")
        return self._session

    async def aclose(self) -> None:
        """Close the session if this transport created it; idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session and not session.closed:
            await session.close()

    async def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        body: bytes,
        timeout: float,  # noqa: ASYNC109 - aiohttp's own, which also bounds connecting
        max_bytes: int,
    ) -> Response:
        """One request, given ``timeout`` seconds in all.

        A 2xx body above ``max_bytes`` raises ResponseTooLargeError, read no
        further; any other status's body is cut at :data:`ERROR_BODY_BYTES`.
        """
        session = self.open()
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers,
                # Unrounded: aiohttp would end a timeout of 5 s or more at the next
                # whole second, past the deadline the caller computed it from.
                timeout=aiohttp.ClientTimeout(total=timeout, ceil_threshold=math.inf),
                allow_redirects=False,  # a redirect would carry the token elsewhere
                raise_for_status=False,  # statuses are read above, not raised here
            ) as response:
                return await _read(response, max_bytes)
        except (TimeoutError, aiohttp.ClientError, OSError) as err:
            error: BaseException = err
            translated: CopperError = self._translate(err, url, timeout)
        except RuntimeError as err:
            # A caller's session bound to another (ended) event loop: no retry can help.
            error, translated = (
                err,
                CopperError(
                    f"the aiohttp session given to the client cannot send in this event loop "
                    f"({err}): create it inside the asyncio.run() that uses the client"
                ),
            )
        # Raised outside the handler, so the unscrubbed error is not its __context__.
        raise translated from self._redactor.exception(error)

    def _translate(self, error: BaseException, url: str, timeout: float) -> TransportError:
        if isinstance(error, TimeoutError):  # asyncio's and aiohttp's timeouts alike
            return RequestTimeoutError(f"no response within {timeout:g}s from {url}")
        detail = self._redactor.text(f"{type(error).__name__}: {error}")
        return TransportError(f"request to {url} failed: {detail}")


async def _read(response: aiohttp.ClientResponse, max_bytes: int) -> Response:
    status = response.status
    if not 200 <= status < 300:
        body = await _read_bounded(response.content, ERROR_BODY_BYTES, truncate=True)
        return Response(status, response.headers, body or b"")
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        response.close()
        raise _too_large(f"{declared} bytes", max_bytes)
    body = await _read_bounded(response.content, max_bytes)
    if body is None:
        response.close()
        raise _too_large("more than that", max_bytes)
    return Response(status, response.headers, body)


def _too_large(size: str, max_bytes: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(f"response body of {size} exceeds max_response_bytes={max_bytes}")


async def _read_bounded(
    content: aiohttp.StreamReader, limit: int, *, truncate: bool = False
) -> bytes | None:
    """Read a body up to ``limit`` bytes without buffering more.

    Past the limit: None, or with ``truncate`` the first ``limit`` bytes.
    """
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.readany():
        size += len(chunk)
        if size > limit:
            if not truncate:
                return None
            chunks.append(chunk[: limit - (size - len(chunk))])
            break
        chunks.append(chunk)
    return b"".join(chunks)
