"""The request header reader (authserver/transport/headers.py) reads every header block as gevent's own
factory does (``http.client.parse_headers`` into its message class): the same name/value pairs, status,
payload and defects, and the same bytes left unread, for plain blocks and for every unusual one (folded
lines, bare CR, missing names, "From " lines, bytes outside ASCII, over-long lines, too many headers)."""

import http.client
import io
import random

import pytest
from gevent.pywsgi import OldMessage

from authserver.transport import headers

BODY = b"body that must stay unread"

TRICKY = [
    b"\r\n",
    b"\n",
    b"",
    b"Host: example.com\r\n\r\n",
    b"Host: example.com\n\n",
    b"Host:example.com\r\nX-A:\t value with trailing blanks \t\r\n\r\n",
    b"Cookie: a=1; nextauth_session=abc.def\r\nCookie: b=2\r\n\r\n",
    b"X-Folded: one\r\n two\r\n\r\n",
    b"X-Folded: one\r\n\ttwo\r\nHost: h\r\n\r\n",
    b"X-Bare-CR: one\rX-Injected: two\r\n\r\n",
    b"No colon here\r\nHost: h\r\n\r\n",
    b": empty name\r\n\r\n",
    b"Bad Name: v\r\n\r\n",
    b"From someone\r\nHost: h\r\n\r\n",
    b"Host: h\r\nFrom x: y\r\n\r\n",
    b"Host: h\r\nFrom: x\r\n\r\n",
    b"X-Latin: caf\xe9\r\n\r\n",
    b"X-Utf8: \xc3\xa4\r\n\r\n",
    b"X-Nul: a\x00b\r\n\r\n",
    b"X-Del\x7f: v\r\n\r\n",
    b"Host: cut short",
    b"Host: h\r\n",
    b" leading: blank\r\n\r\n",
    b"X-A: 1\r\nX-A: 2\r\nx-a: 3\r\n\r\n",
    b"X-Colons: a:b:c\r\n\r\n",
    b"X-Empty:\r\n\r\n",
    b"X-Empty: \r\n\r\n",
]

NAMES = ["Host", "X-Forwarded-Uri", "cookie", "From", "From ", "", "Bad Name", "a_b", "X\x7f", "X\xe9", "X:Y"]
SEPARATORS = [":", ": ", ":\t", " :", ":  \t "]
VALUES = ["", "v", " v ", "a\rb", "a\x00b", "caf\xe9", "x" * 40, "/p?a=1&b=2", "\t", "a,b;c=d"]
ENDS = ["\r\n", "\n", "\r\n", "\r\n", "\r"]
FOLDS = [" more\r\n", "\tmore\n"]


def _random_block(rng: random.Random) -> bytes:
    lines = []
    for _ in range(rng.randint(0, 8)):
        if lines and rng.random() < 0.05:
            lines.append(rng.choice(FOLDS))
            continue
        name = rng.choice(NAMES) if rng.random() < 0.3 else rng.choice(NAMES[:3])
        sep = rng.choice(SEPARATORS) if rng.random() < 0.3 else ": "
        value = rng.choice(VALUES) if rng.random() < 0.4 else "value"
        end = rng.choice(ENDS) if rng.random() < 0.2 else "\r\n"
        lines.append(name + sep + value + end)
    lines.append(rng.choice(["\r\n", "\n", "\r\n", ""]))
    return "".join(lines).encode("iso-8859-1")


def _read(parse: object, block: bytes) -> tuple[object, ...]:
    stream = io.BytesIO(block + BODY)
    try:
        message = parse(stream)  # type: ignore[operator]
    except http.client.HTTPException as exc:
        return ("raised", type(exc), str(exc), stream.read())
    return (
        list(message._headers),
        message.status,
        message.get_payload(),
        [type(defect) for defect in message.defects],
        message.get_unixfrom(),
        stream.read(),
    )


def _stdlib(stream: io.BytesIO) -> object:
    return http.client.parse_headers(stream, _class=OldMessage)


def _ours(stream: io.BytesIO) -> object:
    return headers.parse(stream, OldMessage)


@pytest.mark.parametrize("block", TRICKY)
def test_tricky_blocks_read_as_the_standard_library_reads_them(block: bytes) -> None:
    assert _read(_ours, block) == _read(_stdlib, block)


def test_random_blocks_read_as_the_standard_library_reads_them() -> None:
    rng = random.Random(20261205)
    plain = 0
    for _ in range(4000):
        block = _random_block(rng)
        ours = _read(_ours, block)
        assert ours == _read(_stdlib, block), block
        plain += headers._PLAIN_BLOCK.fullmatch(block.decode("iso-8859-1")) is not None
    assert 500 < plain < 3900, plain  # both ways were taken, often


def test_limits_are_http_clients() -> None:
    too_long = b"X-Long: " + b"a" * headers.MAX_LINE + b"\r\n\r\n"
    assert _read(_ours, too_long) == _read(_stdlib, too_long)
    assert _read(_ours, too_long)[0] == "raised"
    too_many = b"".join(b"X-%d: v\r\n" % n for n in range(headers.MAX_HEADERS + 1)) + b"\r\n"
    assert _read(_ours, too_many) == _read(_stdlib, too_many)
    assert _read(_ours, too_many)[0] == "raised"
    just_enough = b"".join(b"X-%d: v\r\n" % n for n in range(headers.MAX_HEADERS - 1)) + b"\r\n"
    assert len(_read(_ours, just_enough)[0]) == headers.MAX_HEADERS - 1  # type: ignore[arg-type]


def test_the_handlers_read_headers_this_way() -> None:
    """ns's REST ports and the IdP use the handler that reads with it, and answer an over-long line as
    gevent does (status "Line too long", refused with 400 by gevent)."""
    from authserver.transport.wsgi import NoDelayHandler

    handler = NoDelayHandler.__new__(NoDelayHandler)
    message = handler.MessageClass(io.BytesIO(b"Host: h\r\nX-A: 1\r\n\r\n"), 0)
    assert message._headers == [("Host", "h"), ("X-A", "1")] and message.status == ""
    refused = handler.MessageClass(io.BytesIO(b"X: " + b"a" * (headers.MAX_LINE + 5) + b"\r\n\r\n"), 0)
    assert refused.status == "Line too long"


GOTTEN = ["host", "Host", "HOST", "connection", "Content-Length", "content-type", "transfer-encoding",
          "upgrade", "cookie", "x-a", "from", "x-folded", "missing"]  # fmt: skip


def _environ_headers(message: object) -> list[tuple[str, str]]:
    from gevent.pywsgi import WSGIHandler

    from authserver.transport.wsgi import NoDelayHandler

    ours, gevents = NoDelayHandler.__new__(NoDelayHandler), WSGIHandler.__new__(WSGIHandler)
    ours.headers = gevents.headers = message
    found = list(ours._headers())
    assert found == list(WSGIHandler._headers(gevents))
    return found


def _same_answers(block: bytes) -> None:
    """Our message class answers every lookup as gevent's, and the environ gets the same HTTP_ entries."""
    try:
        ours = headers.parse(io.BytesIO(block), headers.RequestHeaders)
        theirs = http.client.parse_headers(io.BytesIO(block), _class=OldMessage)
    except http.client.HTTPException:
        return
    for name in GOTTEN:
        assert ours.get(name) == theirs.get(name), (block, name)
        assert ours.get(name, "default") == theirs.get(name, "default")
    _environ_headers(ours)
    # gevent deletes Content-Length of a chunked request: the answers follow the change.
    del ours["content-length"], theirs["content-length"]
    ours["X-Added"] = theirs["X-Added"] = "1"
    for name in [*GOTTEN, "x-added"]:
        assert ours.get(name) == theirs.get(name), (block, name)


@pytest.mark.parametrize("block", TRICKY)
def test_lookups_and_environ_entries_are_gevents(block: bytes) -> None:
    _same_answers(block)


def test_lookups_and_environ_entries_are_gevents_for_random_blocks() -> None:
    rng = random.Random(20261206)
    for _ in range(3000):
        _same_answers(_random_block(rng) + b"Content-Length: 3\r\nconnection: keep-alive\r\n\r\n")
    message = headers.parse(
        io.BytesIO(b"X-A: 1\r\nx-a: 2\r\nX_Under: no\r\nContent-Type: t\r\n\r\n"), headers.RequestHeaders
    )
    assert message.get("X-A") == "1"  # the first of a name
    message.replace_header("x-a", "changed")
    assert message.get("x-a") == "changed"
    assert _environ_headers(message) == [("HTTP_X_A", "changed"), ("HTTP_X_A", "2")]
