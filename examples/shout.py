"""A handler for `socketkit serve examples.shout:shout --codec lines`: replies in capitals."""

import socketkit as sk


def shout(message: bytes, conn: sk.Connection) -> bytes:
    return message.upper()
