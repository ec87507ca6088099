"""The one error sigmai raises.

A failed handshake or record never tells the peer why: the transport closes the channel and logs the
reason locally. The reason strings are fixed texts and never contain key material.
"""


class ProtocolError(Exception):
    """The channel is unusable and must be closed without further detail to the peer."""
