"""Small real PDF and DOCX files for the ingestion tests and the shipped ``knowledge/``.

``python -m tests.agent.sample_documents`` rewrites ``knowledge/warranty.en.pdf`` and
``knowledge/warranty.ru.docx``. The PDF writer is a minimal hand-made one (one standard
Type 1 font, WinAnsi text, one content stream per page), enough for any PDF reader.
"""

# ruff: noqa: RUF001  (Russian document text)
from __future__ import annotations

from pathlib import Path

WARRANTY_EN_PAGES = [
    [
        "Warranty",
        "",
        "Household appliances carry a 12-month manufacturer's warranty;",
        "cookware and textiles carry 6 months. The warranty period is counted",
        "from the day you receive the order.",
    ],
    [
        "Warranty claims",
        "",
        "If an item breaks during the warranty period, contact support with a",
        "photo and your order number. We send it to a service centre at our",
        "expense; repairs take up to 45 days. If it cannot be repaired, we",
        "replace the item or refund you.",
        "",
        "The warranty does not cover mechanical damage, drops, water damage or",
        "consumables such as filters, bulbs and batteries.",
    ],
]

WARRANTY_RU = [
    ("h1", "Гарантия"),
    ("h2", "Гарантийный срок"),
    (
        "p",
        "На бытовую технику действует гарантия производителя 12 месяцев, на посуду и "
        "текстиль — 6 месяцев. Гарантийный срок считается со дня получения заказа.",
    ),
    ("h2", "Как обратиться по гарантии"),
    (
        "p",
        "Если товар сломался в течение гарантийного срока, напишите в поддержку и "
        "приложите фото и номер заказа. Мы отправим технику в сервисный центр за свой "
        "счёт; ремонт занимает до 45 дней. Если ремонт невозможен, заменим товар или "
        "вернём деньги.",
    ),
    ("h2", "Что не входит в гарантию"),
    (
        "p",
        "Гарантия не распространяется на механические повреждения, следы падения или "
        "залива водой, а также на расходные материалы: фильтры, лампы, батарейки.",
    ),
]


def _escape(line: str) -> str:
    return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: list[list[str]]) -> None:
    """A PDF with one page per list of lines (ASCII/WinAnsi text, Helvetica 11 pt)."""
    objects: list[bytes] = []
    page_ids = [4 + 2 * n for n in range(len(pages))]
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    kids = " ".join(f"{pid} 0 R" for pid in page_ids)
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {len(pages)} >>".encode())
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for number, lines in enumerate(pages):
        content = ["BT", "/F1 11 Tf", "14 TL", "72 770 Td"]
        for line in lines:
            content.append(f"({_escape(line)}) Tj T*")
        content.append("ET")
        stream = "\n".join(content).encode("cp1252")
        page = (
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
            f"/Resources << /Font << /F1 3 0 R >> >> /Contents {page_ids[number] + 1} 0 R >>"
        )
        objects.append(page.encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    path.write_bytes(bytes(out))


def write_docx(path: Path, blocks: list[tuple[str, str]]) -> None:
    """A DOCX of headings (``h1``..``h3``), paragraphs (``p``) and list items (``li``)."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind.startswith("h"):
            document.add_heading(text, level=int(kind[1]))
        elif kind == "li":
            document.add_paragraph(text, style="List Bullet")
        else:
            document.add_paragraph(text)
    document.core_properties.title = blocks[0][1]
    document.save(str(path))


if __name__ == "__main__":
    folder = Path(__file__).resolve().parents[2] / "knowledge"
    write_pdf(folder / "warranty.en.pdf", WARRANTY_EN_PAGES)
    write_docx(folder / "warranty.ru.docx", WARRANTY_RU)
    print(f"wrote {folder}/warranty.en.pdf and warranty.ru.docx")
