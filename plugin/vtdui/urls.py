"""URLs given by an operator: credentials taken out of them, and never shown.

``http://user:password@host/fhir`` is a common way to write a server's Basic credentials. vtdui keeps the
URL without them (everything that logs, prints or stores the URL then shows no password) and carries the
credentials separately.
"""

from __future__ import annotations

import base64
from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = ["redact_userinfo", "split_credentials"]


def split_credentials(url: str) -> tuple[str, str | None]:
    """Return ``url`` without its user info, and the matching ``Basic …`` header value (``None``: none).

    Raises:
        ValueError: the URL cannot be parsed (bad port, bad IPv6 literal).
    """
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), f"Basic {token}"


def redact_userinfo(text: str) -> str:
    """Return ``text`` (a URL, or a message quoting one) with passwords in URLs shown as ``user:***@``."""
    out: list[str] = []
    rest = text
    while True:
        index = rest.find("://")
        if index < 0:
            out.append(rest)
            return "".join(out)
        head, tail = rest[:index + 3], rest[index + 3:]
        end = len(tail)
        for stop in "/?# \t\n'\"<>":
            found = tail.find(stop)
            if 0 <= found < end:
                end = found
        authority = tail[:end]
        if "@" in authority:
            userinfo, _, host = authority.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            # the user name helps the operator and is no secret; a lone user info may be a token
            authority = f"{user}:***@{host}" if colon else f"***@{host}"
        out.append(head + authority)
        rest = tail[end:]
