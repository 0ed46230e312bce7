"""Opaque, unguessable ids: a readable type prefix plus 64 random bits in hex.

Ids are random rather than sequential or content-derived so that two hubs,
two jobs making identical bytes, or a restored archive never collide.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable

IdFactory = Callable[[str], str]

SESSION = "ses_"
SECTION = "sec_"
TAKE = "take_"
JOB = "job_"
GROUP = "grp_"
ARTIFACT = "art_"


def new_id(prefix: str) -> str:
    """``prefix`` followed by 16 lowercase hex characters, e.g. ``ses_3f9a0c1b2d4e5f60``."""
    return prefix + secrets.token_hex(8)
