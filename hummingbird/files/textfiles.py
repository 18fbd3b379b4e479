"""Reading the small text files a user writes by hand (``classes.txt``, split lists, file sets, id lists).

One reader for all of them: UTF-8 with or without a byte-order mark (as Notepad writes it), LF or CRLF
line ends, blanks around a line and blank lines ignored. Any other encoding (Latin-1, UTF-16, ...) is
one :class:`~hummingbird.errors.DatasetError` naming the file and the offset of the first byte that is
not UTF-8, never a silently mis-read name.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from hummingbird.errors import DatasetError, HummingbirdError

_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def read_text(path: str | Path, what: str = "text file", error: type[HummingbirdError] = DatasetError) -> str:
    """The whole of ``path`` as text (UTF-8, an optional BOM removed); ``error`` naming the file otherwise."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise error(f"{path}: is a folder, not a file ({what} expected)") from None
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what} ({exc.strerror})") from exc
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        offset = exc.start + (3 if raw.startswith(codecs.BOM_UTF8) else 0)
        kind = " (it starts with a UTF-16 byte-order mark)" if raw.startswith(_UTF16_BOMS) else ""
        raise error(f"{path}: not UTF-8 text at byte {offset} (0x{raw[offset]:02x}){kind}; save it as UTF-8 "
                    f"(this {what} is read as UTF-8, with or without BOM)") from None


def read_lines(path: str | Path, what: str = "text file", error: type[HummingbirdError] = DatasetError) -> list[str]:
    """The non-blank lines of ``path``, each stripped of surrounding blanks (see :func:`read_text`)."""
    return [line.strip() for line in read_text(path, what, error).splitlines() if line.strip()]
