"""PostgreSQL URLs: auditkeep's own parameters (``schema``, ``pool_max``) apart from libpq's,
and the password kept out of messages."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

OWN_PARAMS = ("schema", "pool_max")


def split_url(url: str) -> tuple[str, dict[str, str]]:
    """The libpq URL without auditkeep's own parameters (``schema``, ``pool_max``), and those."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    own = {k: v for k, v in query if k in OWN_PARAMS and v}
    rest = [(k, v) for k, v in query if k not in OWN_PARAMS]
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), own


def redact_url(url: str) -> str:
    """``url`` without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(":" + parts.password + "@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

