"""The text files users write — data files, configuration files, study files, recipes — read with errors that
name the file, the line and the fix, instead of a decoder's or a parser's traceback.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Any

import yaml

__all__ = ["check_text_file", "read_mapping_file"]

_BOMS = {codecs.BOM_UTF16_LE: "UTF-16", codecs.BOM_UTF16_BE: "UTF-16", codecs.BOM_UTF32_LE: "UTF-32"}


def check_text_file(path: str | Path, *, chunk_bytes: int = 1 << 20) -> None:
    """Refuse a data file that is not UTF-8 text (with or without a byte-order mark), naming the line of the
    first undecodable byte and how to convert it — instead of a decoder error deep inside a reader.

    Raises:
        ValueError: UTF-16/UTF-32 (by its byte-order mark) or bytes that are not UTF-8 (Latin-1, Windows-1252...).
    """
    path = Path(path)
    with path.open("rb") as stream:
        head = stream.read(4)
        for bom, name in _BOMS.items():
            if head.startswith(bom):
                raise ValueError(
                    f"{path} is {name} text; data files are read as UTF-8: convert it, e.g. "
                    f"iconv -f {name} -t UTF-8 {path} > {path.with_suffix('.utf8' + path.suffix)}"
                )
        stream.seek(0)
        decoder = codecs.getincrementaldecoder("utf-8")()
        line, offset = 1, 0
        while chunk := stream.read(chunk_bytes):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as error:
                bad = chunk[error.start]
                line += chunk[: error.start].count(b"\n")
                raise ValueError(
                    f"{path}, line {line}: byte 0x{bad:02x} (at byte {offset + error.start}) is not UTF-8 — the file "
                    "is likely Latin-1 or Windows-1252: convert it, e.g. iconv -f latin1 -t UTF-8 "
                    f"{path} > {path.with_suffix('.utf8' + path.suffix)}"
                ) from None
            line += chunk.count(b"\n")
            offset += len(chunk)


def read_mapping_file(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML or JSON file (JSON is YAML) holding a mapping; ``what`` names it in messages ("config file").

    Raises:
        FileNotFoundError: no such file.
        ValueError: not UTF-8, a syntax error (with its line), or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    check_text_file(path)
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ValueError(f"{where}: not valid YAML or JSON ({problem}); fix the {what}'s syntax") from None
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ValueError(
            f"{path} holds a {type(content).__name__}, but a {what} is a mapping of names to values "
            "(name: value lines in YAML, an object in JSON)"
        )
    return content
