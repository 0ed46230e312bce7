"""Validation of the media type recorded beside each object.

The mime type comes from an upload's Content-Type header and is later sent back
as one, so it must be a single printable ``type/subtype[; params]`` line.
"""

from __future__ import annotations

import re

from cas.errors import InvalidMime

MAX_MIME_LENGTH = 255
# RFC 6838 restricted-name characters for type and subtype; parameters are kept verbatim
# but must be printable ASCII so they cannot inject a header line.
_MIME_RE = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
    r"(?:\s*;[\x20-\x7e]*)?"
)


def validate_mime(mime: object) -> str:
    """Return the mime type with a lowercased ``type/subtype``; raise :class:`InvalidMime`."""
    if not isinstance(mime, str) or len(mime) > MAX_MIME_LENGTH or _MIME_RE.fullmatch(mime) is None:
        shown = mime[:80] if isinstance(mime, str) else type(mime).__name__
        raise InvalidMime("mime must look like 'type/subtype'", details={"mime": shown})
    essence, sep, params = mime.partition(";")
    return essence.strip().lower() + (sep + params if sep else "")
