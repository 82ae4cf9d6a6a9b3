"""VOTable STREAM links, refused wherever a VOTable from elsewhere is read.

A ``<STREAM href="...">`` names a table's rows outside the document, and astropy's
parser opens such a link itself (``urllib``: ``file:`` reads a file of this machine,
``http:`` makes a request from it to anywhere, past any outbound policy). Uploads,
remote answers, operator ingest and the client's reader refuse them before astropy
parses the document. No dependency but astropy (the client uses it too).
"""

from __future__ import annotations

import io
from typing import IO

#: What the error says (each caller adds where the document came from).
MESSAGE = ("a STREAM with an href (rows outside the document) is not accepted; the rows"
           " must be inside the VOTable (TABLEDATA, or a base64 BINARY/BINARY2 STREAM)")


class StreamLink(ValueError):
    """A VOTable names its rows by a STREAM href."""


def find_stream_link(data: bytes | IO[bytes]) -> str | None:
    """The ``href`` of the first STREAM that names its data by one, or None. The
    document is walked with the same tokenizer as astropy's parse, so namespace
    prefixes and encodings are seen as astropy sees them."""
    from astropy.utils.xml import iterparser

    if isinstance(data, bytes):
        if b"href" not in data and b"h\x00r\x00e\x00f" not in data:
            return None  # no such attribute in any encoding expat reads (walking costs
            # ~1 us an element: 4 s for a 19 MB TABLEDATA)
        data = io.BytesIO(data)
    with iterparser.get_xml_iterator(data) as events:
        for start, tag, attrs, _ in events:
            if start and tag == "STREAM":
                for key, value in attrs.items():
                    if key.rsplit(":", 1)[-1] == "href":
                        return str(value)
    return None


def refuse_stream_links(data: bytes | IO[bytes]) -> None:
    """:class:`StreamLink` if the VOTable ``data`` has a STREAM with an href."""
    if find_stream_link(data) is not None:
        raise StreamLink(MESSAGE)


__all__ = ["StreamLink", "find_stream_link", "refuse_stream_links", "MESSAGE"]
