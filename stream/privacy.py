"""Privacy: pseudonymous user ids and erasing a user.

With ``SHOPSTREAM_USER_KEY`` set, every user id is replaced by a keyed HMAC
(SHA-256, 32 hex characters) as soon as an event is decoded: state, outputs,
model rows and logs only ever see the pseudonym. The same key maps a shop's
own id to it again (the web views do so), and nobody without the key can map
back. The dead-letter topic keeps rejected messages' original bytes, as it
must to lose nothing: give it a retention of its own.

>>> to_pseudonym = pseudonymiser("secret")
>>> to_pseudonym("u42") == to_pseudonym("u42") != pseudonymiser("other")("u42")
True
>>> len(to_pseudonym("u42")), pseudonymiser("")("u42")
(32, 'u42')
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Callable


def pseudonymiser(key: str) -> Callable[[str], str]:
    """The user-id mapping for ``key`` (the identity when the key is empty)."""
    if not key:
        return lambda user_id: user_id
    secret = key.encode("utf-8")

    def pseudonym(user_id: str) -> str:
        return hmac.new(secret, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    return pseudonym
