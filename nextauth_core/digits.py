"""Numbers written in ASCII digits.

``str.isdigit`` is true for every Unicode digit: superscripts such as "²", which ``int()`` refuses with a
``ValueError``, and the digits of other scripts, which it reads. A check by ``isdigit`` followed by
``int()`` lets such text through to a traceback: a 500 where a 400 was due, a forward-auth check that
fails, a start that ends without its one-line message. Every number read from outside (settings, query
parameters, headers, path segments) is checked here instead.
"""


def only_digits(text: str) -> bool:
    """``text`` is one or more of the ASCII digits 0 to 9 and nothing else."""
    return text.isascii() and text.isdigit()
