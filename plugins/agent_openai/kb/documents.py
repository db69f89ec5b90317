"""Reading documents of every supported kind as Markdown-like text.

``.md`` and ``.txt`` are read as they are (UTF-8), ``.html`` through the standard
library's parser (headings, paragraphs and list items kept; scripts, styles and navigation
dropped), ``.pdf`` with pypdf (one section per page) and ``.docx`` with python-docx
(Word heading styles become headings). Nothing touches the network. A file that cannot be
read raises :class:`UnreadableDocument`.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

SUFFIXES = (".md", ".markdown", ".txt", ".html", ".htm", ".pdf", ".docx")


class UnreadableDocument(Exception):
    """The file is damaged, encrypted or not what its name says."""


@dataclass(frozen=True, slots=True)
class SourceText:
    """A document as Markdown-like text, with the title its format carries (if any)."""

    text: str
    title: str | None = None


def read_document(path: Path, raw: bytes) -> SourceText:
    """``raw`` (the content of ``path``) as text; :class:`UnreadableDocument` if it is not."""
    try:
        source = _convert(path.suffix.lower(), raw)
    except UnreadableDocument:
        raise
    except Exception as exc:  # every converter has its own ways to fail on a bad file
        raise UnreadableDocument(f"{type(exc).__name__}: {exc}") from exc
    if source.title is not None and _H1.search(source.text):
        return SourceText(source.text)  # the visible first heading names it, not metadata
    return source


_H1 = re.compile(r"^# \S", re.MULTILINE)


def _convert(suffix: str, raw: bytes) -> SourceText:
    if suffix == ".pdf":
        return _pdf(raw)
    if suffix == ".docx":
        return _docx(raw)
    text = _decode(raw)
    if suffix in (".html", ".htm"):
        return _html(text)
    if suffix == ".txt":
        return _plain(text)
    return SourceText(text)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableDocument("not UTF-8 text") from exc


def _plain(text: str) -> SourceText:
    """A short first line followed by a blank line is the title of a plain-text file."""
    lines = text.replace("\r\n", "\n").split("\n")
    if len(lines) > 2 and lines[0].strip() and len(lines[0]) <= 80 and not lines[1].strip():
        return SourceText(f"# {lines[0].strip()}\n" + "\n".join(lines[1:]))
    return SourceText(text)


def _pdf(raw: bytes) -> SourceText:
    import pypdf

    reader = pypdf.PdfReader(io.BytesIO(raw))
    if reader.is_encrypted:
        raise UnreadableDocument("the PDF is encrypted")
    title = None
    if reader.metadata is not None and reader.metadata.title:
        title = str(reader.metadata.title).strip() or None
    parts = []
    for number, page in enumerate(reader.pages, 1):
        text = (page.extract_text() or "").strip()
        if not text:
            continue
        lines = text.split("\n")
        if title is None and lines[0].strip() and len(lines[0]) <= 80:
            title = lines[0].strip()  # the first line of the first page names the document
            lines = lines[1:]
        parts.append(f"## page {number}\n\n" + "\n".join(lines))
    if not parts:
        raise UnreadableDocument("the PDF has no extractable text (scanned?)")
    return SourceText("\n\n".join(parts), title)


def _docx(raw: bytes) -> SourceText:
    import docx

    document = docx.Document(io.BytesIO(raw))
    title = (document.core_properties.title or "").strip() or None
    out: list[str] = []
    for paragraph in document.paragraphs:
        text = paragraph.text.strip()
        if not text:
            continue
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        level = re.match(r"(?:Heading|Заголовок)\s*(\d)", style)
        if style == "Title":
            out.append(f"# {text}")
        elif level:
            out.append(f"{'#' * int(level.group(1))} {text}")
        elif "List" in style:
            out.append(f"- {text}")
        else:
            out.append(text)
        out.append("")
    for table in document.tables:
        for row in table.rows:
            cells = [cell.text.strip() for cell in row.cells if cell.text.strip()]
            if cells:
                out.append(" | ".join(dict.fromkeys(cells)))
        out.append("")
    return SourceText("\n".join(out), title)


_BLOCK = {"p", "div", "section", "article", "br", "tr", "table", "blockquote", "pre"}
_SKIP = {"script", "style", "nav", "header", "footer", "noscript", "template", "svg"}


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.title: str | None = None
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif re.fullmatch(r"h[1-6]", tag):
            self.out.append(f"\n\n{'#' * int(tag[1])} ")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in _BLOCK:
            self.out.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif re.fullmatch(r"h[1-6]", tag) or tag in _BLOCK or tag in ("ul", "ol"):
            self.out.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data.strip()
        elif not self._skip:
            self.out.append(re.sub(r"\s+", " ", data))


def _html(text: str) -> SourceText:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    body = "".join(parser.out)
    body = "\n".join(line.strip() for line in body.split("\n"))
    return SourceText(re.sub(r"\n{3,}", "\n\n", body).strip(), parser.title or None)
