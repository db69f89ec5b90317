"""Every document format is indexed with its title and headings; a broken file is skipped
with one log line naming it while the rest is indexed."""

# ruff: noqa: RUF001  (Russian document text)
from __future__ import annotations

from pathlib import Path

import pytest

from plugins.agent_openai.knowledge import KnowledgeIndex
from tests.agent.sample_documents import WARRANTY_EN_PAGES, WARRANTY_RU, write_docx, write_pdf
from tests.support.logs import captured_log

HTML = """<!DOCTYPE html><html><head><title>Бонусы</title><script>var x = "скрипт";</script>
</head><body><nav>Меню сайта</nav><h1>Бонусы и промокоды</h1>
<h2>Промокоды</h2><p>Промокод вводится в корзине
до оплаты.</p><ul><li>Один промокод на заказ.</li><li>Не суммируется с распродажей.</li></ul>
</body></html>"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "guide.md").write_text(
        "# Guide\n\n## Opening hours\n\nWe open at\nnine in the morning.\n", "utf-8"
    )
    (docs / "notes.txt").write_text("Parking\n\nFree parking behind the shop.\n", "utf-8")
    (docs / "bonuses.html").write_text(HTML, "utf-8")
    write_pdf(docs / "warranty.pdf", WARRANTY_EN_PAGES)
    write_docx(docs / "sub" / "гарантия.docx", WARRANTY_RU)
    (docs / "broken.pdf").write_bytes(b"%PDF-1.4\nthis is not really a pdf")
    (docs / "broken.docx").write_bytes(b"PK\x03\x04 not a zip archive")
    (docs / "latin1.txt").write_bytes("Café crème".encode("latin-1"))
    (docs / "image.png").write_bytes(b"\x89PNG")  # not a document kind: ignored
    return docs


@pytest.fixture
def log_lines():
    with captured_log("INFO") as lines:
        yield lines


async def test_every_format_is_indexed_and_broken_files_are_skipped(tmp_path, folder, log_lines):
    index = KnowledgeIndex(tmp_path / "k.db", folder)
    await index.open()
    try:
        report = await index.sync()
        assert (report.added, report.skipped) == (5, 3)
        skipped = [line for line in log_lines if "skipped" in line]
        assert len(skipped) == 3
        assert any("broken.pdf" in line for line in skipped)
        assert any("broken.docx" in line for line in skipped)
        assert any("latin1.txt" in line and "not UTF-8" in line for line in skipped)

        hours = (await index.search("opening hours", 1))[0]
        assert (hours.source, hours.title, hours.heading_path) == (
            "guide.md",
            "Guide",
            ("Opening hours",),
        )
        assert hours.text == "We open at nine in the morning."  # soft break joined

        parking = (await index.search("parking", 1))[0]
        assert (parking.source, parking.title) == ("notes.txt", "Parking")

        promo = (await index.search("промокод", 1))[0]
        assert (promo.source, promo.title, promo.heading_path) == (
            "bonuses.html",
            "Бонусы и промокоды",
            ("Промокоды",),
        )
        assert promo.text == (
            "Промокод вводится в корзине до оплаты.\n\n"
            "- Один промокод на заказ.\n- Не суммируется с распродажей."
        )
        assert await index.search("скрипт меню", 1) == []  # scripts and navigation dropped

        water = (await index.search("does the warranty cover water damage", 1))[0]
        assert (water.source, water.title, water.heading_path) == (
            "warranty.pdf",
            "Warranty",
            ("page 2",),
        )
        assert "water damage" in water.text

        repair = (await index.search("сколько длится ремонт по гарантии", 1))[0]
        assert (repair.source, repair.title, repair.heading_path) == (
            "sub/гарантия.docx",
            "Гарантия",
            ("Как обратиться по гарантии",),
        )
        assert "45 дней" in repair.text
        assert repair.citation == "Гарантия › Как обратиться по гарантии"

        # A skipped file is tried again at the next sync; the others are not re-read.
        again = await index.sync()
        assert (again.added, again.unchanged, again.skipped) == (0, 5, 3)
        write_pdf(folder / "broken.pdf", [["Gift wrapping", "", "Gift wrapping is free."]])
        fixed = await index.sync()
        assert (fixed.added, fixed.skipped) == (1, 2)
        assert (await index.search("gift wrapping", 1))[0].source == "broken.pdf"
    finally:
        await index.close()
