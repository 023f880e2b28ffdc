"""Small file makers for loader tests (no PDF writer is installed, so PDFs are written by hand)."""

from __future__ import annotations

from pathlib import Path


def make_pdf(path: Path, pages: list[str], title: str | None = None) -> Path:
    """A minimal valid PDF with one Helvetica text page per entry (lines split on \\n)."""
    n = len(pages)
    objs = ["<< /Type /Catalog /Pages 2 0 R >>",
            f"<< /Type /Pages /Kids [{' '.join(f'{4 + 2 * i} 0 R' for i in range(n))}] /Count {n} >>",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    for i, text in enumerate(pages):
        body = " ".join(f"({line}) '" for line in text.split("\n"))
        stream = f"BT /F1 12 Tf 72 720 Td 14 TL {body} ET"
        objs.append(f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
                    f"/Resources << /Font << /F1 3 0 R >> >> /Contents {5 + 2 * i} 0 R >>")
        objs.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream")
    info = len(objs) + 1
    objs.append(f"<< /Title ({title}) >>" if title else "<< >>")
    out, offsets = "%PDF-1.4\n", []
    for i, o in enumerate(objs, 1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n" + "".join(f"{o:010d} 00000 n \n" for o in offsets)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R /Info {info} 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    path.write_bytes(out.encode("latin-1"))
    return path


def make_docx(path: Path) -> Path:
    import docx

    d = docx.Document()
    d.core_properties.title = "Warranty Handbook"
    d.add_heading("Warranty Handbook", level=1)
    d.add_paragraph("Lamps carry a 2-year warranty.")
    d.add_heading("Claims", level=2)
    d.add_paragraph("Email warranty@lumenoak.example", style="List Bullet")
    d.add_paragraph("Attach photos of the defect", style="List Bullet")
    t = d.add_table(rows=2, cols=2)
    t.cell(0, 0).text, t.cell(0, 1).text = "Item", "Years"
    t.cell(1, 0).text, t.cell(1, 1).text = "Sofa", "5"
    d.save(str(path))
    return path
