"""Request headers for gevent's WSGI handler, read as the standard library reads them, without its e-mail
parser for the common case.

gevent reads a request's header block with ``http.client.parse_headers``, which hands the block to
``email.parser``: a general RFC 5322 parser, about twenty microseconds for the six or seven headers a proxy's
forward-auth request carries, more than the rest of the answer costs. Nearly every request's headers are
plain ``Name: value`` lines; those are taken here into the same message object with the same name/value
pairs the e-mail parser would record. Any line that is not plain (a folded continuation, a bare CR, a line
without a name, a name with characters the parser would not take, such as the blank of ``From ``)
sends the whole block to the e-mail parser, so what is unusual is read exactly as before. The limits are
http.client's.

gevent then asks the message for some headers by name, six or seven times a request (``Connection``,
``Content-Length``, ``Transfer-Encoding``, ``Upgrade``...), each a scan of every header with a lowercased
copy of each name. ``RequestHeaders`` answers those from an index of the lowercased names, made once, with
the same answers (the first header of that name, through the message's policy).
"""

import email.parser
import http.client
import re
from typing import Any, BinaryIO

from gevent.pywsgi import OldMessage

MAX_LINE = 65536  # http.client._MAXLINE
MAX_HEADERS = 100  # http.client._MAXHEADERS
# What email.feedparser accepts as a header name (its headerRE without the continuation case; a name
# has no blank, so no line of such a block is an mbox "From " line), a colon, a value without CR or LF,
# and the line's end; a block of such lines and the blank line (or the end of input) after them.
_LINE = r"[\x21-\x39\x3b-\x7e]+:[^\r\n]*\r?\n"
_PLAIN_BLOCK = re.compile(rf"(?:{_LINE})*(?:\r?\n)?")
_PAIR = re.compile(r"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*)\r?\n")


def read_lines(fp: BinaryIO) -> list[bytes]:
    """The header block's lines, the blank line (or end of input) included, as http.client reads them."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            return lines


def parse(fp: BinaryIO, message_class: type[Any]) -> Any:
    """``http.client.parse_headers(fp, _class=message_class)``, faster for plain header lines."""
    block = b"".join(read_lines(fp)).decode("iso-8859-1")
    if _PLAIN_BLOCK.fullmatch(block) is None:
        return email.parser.Parser(_class=message_class).parsestr(block)
    message = message_class()
    # The pairs the e-mail parser records: the name as sent, the value without its leading blanks.
    message._headers = _PAIR.findall(block)
    message.set_payload("")
    return message


class RequestHeaders(OldMessage):  # type: ignore[misc]  # gevent ships no types
    """gevent's message class, with ``get`` answered from an index of the names (see the module)."""

    _index: dict[str, tuple[str, Any]] | None = None
    _indexed: tuple[int, int] = (0, -1)  # the header list it was made from: its identity and length

    def get(self, name: str, failobj: Any = None) -> Any:
        headers = self._headers
        if self._index is None or self._indexed != (id(headers), len(headers)):
            index: dict[str, tuple[str, Any]] = {}
            for key, value in headers:
                index.setdefault(key.lower(), (key, value))
            self._index, self._indexed = index, (id(headers), len(headers))
        found = self._index.get(name.lower())
        if found is None:
            return failobj
        return self.policy.header_fetch_parse(*found)

    def replace_header(self, name: str, value: Any) -> None:
        # The one change to the list that keeps its identity and length: forget the index.
        self._index = None
        super().replace_header(name, value)
