"""Request ids: taken from an incoming X-Request-ID or made here, logged and echoed back."""

import random
import re

HEADER = "X-Request-ID"
# An id from outside is trusted only if it is short and plain, since it goes into every log line.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def choose_request_id(incoming: str | None) -> str:
    if incoming and _ACCEPTABLE.fullmatch(incoming):
        return incoming
    # 128 random bits, as a UUID's hex: an id must be unique, not secret (a client may choose
    # its own), so the process's generator serves (no system call a request; reseeded on fork).
    return f"{random.getrandbits(128):032x}"
