"""Request ids: taken from an incoming X-Request-ID or made here, logged and echoed back."""

import re
import uuid

HEADER = "X-Request-ID"
# An id from outside is trusted only if it is short and plain, since it goes into every log line.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def choose_request_id(incoming: str | None) -> str:
    if incoming and _ACCEPTABLE.fullmatch(incoming):
        return incoming
    return uuid.uuid4().hex
