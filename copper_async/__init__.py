"""copper_async: stream Copper CRM opportunities, exactly once, past the search cap."""

from __future__ import annotations

from copper_async.exceptions import (
    APIError,
    AuthenticationError,
    CapExceededError,
    CheckpointError,
    CopperError,
    InvalidFilterError,
    InvalidInputError,
    InvalidOptionError,
    InvalidRequestError,
    RateLimitedError,
    RecordError,
    RequestTimeoutError,
    ResponseError,
    ResponseFormatError,
    ServerError,
    TransportError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "APIError",
    "AuthenticationError",
    "CapExceededError",
    "CheckpointError",
    "CopperError",
    "InvalidFilterError",
    "InvalidInputError",
    "InvalidOptionError",
    "InvalidRequestError",
    "RateLimitedError",
    "RecordError",
    "RequestTimeoutError",
    "ResponseError",
    "ResponseFormatError",
    "ServerError",
    "TransportError",
    "__version__",
]
