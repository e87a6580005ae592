"""Keeping the access token out of everything the package shows.

:class:`Redactor` is the one place that knows how a secret is hidden: in
text (messages), in bytes (error bodies that echo the request back) and in
exception chains (aiohttp's errors keep the request's headers). The
transport scrubs a cause before it raises from it; the HTTP layer redacts
bodies and messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy

__all__ = ["REDACTED", "Redactor"]

REDACTED: Final = "***"


class Redactor:
    """Replaces ``secret`` with ``***`` wherever it could be shown."""

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._secret_bytes = secret.encode()

    def __repr__(self) -> str:
        return f"Redactor({REDACTED!r})"

    def text(self, value: str) -> str:
        """``value`` with the secret replaced."""
        return value.replace(self._secret, REDACTED) if self._secret in value else value

    def bytes(self, value: bytes) -> bytes:
        """``value`` with the secret replaced; done before a body is cut to length,
        so that no fragment of the secret survives the cut."""
        if self._secret_bytes not in value:
            return value
        return value.replace(self._secret_bytes, REDACTED.encode())

    def exception(self, error: BaseException) -> BaseException:
        """``error``, or a copy of it and its chain in which the secret is nowhere.

        aiohttp's ClientResponseError (bad status line, chunking,
        Content-Length, an oversized header) keeps the request's headers, the
        token among them, in ``request_info``: an error reporter that
        serialises exception chains would record it. The copy keeps the type,
        message and traceback.
        """
        clean = self._scrub(error, {}, set())
        assert clean is not None  # only a link back to an exception in progress is cut
        return clean

    def _scrub(
        self, error: BaseException, done: dict[int, BaseException], active: set[int]
    ) -> BaseException | None:
        key = id(error)
        if key in done:
            return done[key]
        if key in active:
            return None  # a cycle: the copy ends here
        active.add(key)
        links = [
            None if link is None else self._scrub(link, done, active)
            for link in (error.__cause__, error.__context__)
        ]
        active.discard(key)
        clean = error
        holds = isinstance(error, aiohttp.ClientResponseError) or self._secret in repr(
            (error.args, vars(error))
        )
        if holds or links != [error.__cause__, error.__context__]:
            clean = self._copy(error)
            clean.__cause__, clean.__context__ = links
            clean.__suppress_context__ = error.__suppress_context__
        done[key] = clean
        return clean

    def _copy(self, error: BaseException) -> BaseException:
        kind = type(error)
        try:
            # No __init__: exception constructors differ; the state is copied below.
            clean = kind.__new__(kind)
            clean.__dict__.update({name: self._value(value) for name, value in vars(error).items()})
            clean.args = tuple(self._value(value) for value in error.args)
            if isinstance(clean, aiohttp.ClientResponseError):
                # Redirects are never followed, but each response holds its request_info.
                clean.history = ()
                clean.args = (clean.request_info, ())
        except Exception:  # an exotic exception must not hide the failure it reports
            return aiohttp.ClientError(self.text(f"{kind.__name__}: {error}"))
        return clean.with_traceback(error.__traceback__)

    def _value(self, value: Any) -> Any:
        if isinstance(value, aiohttp.RequestInfo):
            headers = self._headers(value.headers)
            return aiohttp.RequestInfo(value.url, value.method, headers, value.real_url)
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.bytes(value)
        if self._secret not in repr(value):
            return value
        if isinstance(value, Mapping):
            return self._headers(value)
        if type(value) is tuple:
            return tuple(self._value(item) for item in value)
        return REDACTED

    def _headers(self, headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
        return CIMultiDictProxy(
            CIMultiDict((name, self.text(str(value))) for name, value in headers.items())
        )
