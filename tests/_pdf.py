"""A tiny PDF writer for tests: text pages in Helvetica that pypdf can extract.

Also used once to write the sample knowledge base's PDF
(``python tests/_pdf.py`` regenerates it).
"""

from __future__ import annotations

from pathlib import Path


def _literal(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("cp1252") + b")"


def make_pdf(pages: list[list[str]], title: str | None = None) -> bytes:
    """Return the bytes of a PDF with one page per list of text lines."""
    count = len(pages)
    page_ids = [4 + 2 * i for i in range(count)]
    info_id = 4 + 2 * count
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: b"<< /Type /Pages /Kids ["
        + b" ".join(b"%d 0 R" % i for i in page_ids)
        + b"] /Count %d >>" % count,
        3: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    }
    for page_id, lines in zip(page_ids, pages, strict=True):
        ops = [b"BT /F1 11 Tf 14 TL 56 740 Td"]
        ops += [_literal(line) + b" Tj T*" for line in lines]
        ops.append(b"ET")
        stream = b"\n".join(ops)
        objects[page_id] = (
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
            b"/Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>" % (page_id + 1)
        )
        objects[page_id + 1] = b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"
    info = b"<< /Producer (phi3industry tests)"
    if title:
        info += b" /Title " + _literal(title)
    objects[info_id] = info + b" >>"

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += b"%d 0 obj\n" % number + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (info_id + 1)
    out += b"".join(b"%010d 00000 n \n" % offsets[n] for n in range(1, info_id + 1))
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info %d 0 R >>\n" % (info_id + 1, info_id)
    out += b"startxref\n%d\n%%%%EOF\n" % xref
    return bytes(out)


SAMPLE_PAGES = [
    [
        "AR7 Preventive Maintenance Schedule",
        "Document NW-DOC-AR7-PM, revision B. For AR7 robots, part NW-AR7-0450.",
        "",
        "Intervals are in operating hours as shown in FleetOS > Fleet > Robot > Counters.",
        "",
        "Daily: wipe both lidar windows; check the bumper strip; remove debris from the wheels.",
        "Weekly: test both e-stop buttons and the pendant e-stop; log the test in FleetOS.",
        "Every 250 operating hours: inspect the drive wheel treads and clean the wheel hubs.",
        "Every 1,000 operating hours: check the drive belt tension (Level 2 technician).",
        "Every 6 months: battery health check in FleetOS (capacity, cell balance, cycles).",
        "Every 24 months: replace the dock contact pad set NW-SP-5120.",
    ],
    [
        "Wear limits",
        "",
        "Drive wheel tread: replace the drive wheel module NW-SP-2210 when the tread depth",
        "is below 3 mm at any point, or when the tread shows cracks or flat spots.",
        "Bumper strip NW-SP-1105: replace when torn or when the strip no longer triggers a stop.",
        "Battery pack NW-SP-3300: replace when the capacity in FleetOS is below 80 percent.",
        "",
        "A typical AR7 in two-shift operation runs about 4,000 operating hours per year.",
        "Record every maintenance task in the FleetOS maintenance log; warranty claims",
        "under policy NR-POL-014 require a complete log.",
    ],
]


if __name__ == "__main__":
    target = Path(__file__).resolve().parents[1] / (
        "phi3industry/assets/sample_kb/docs/manuals/ar7-maintenance-schedule.pdf"
    )
    target.write_bytes(make_pdf(SAMPLE_PAGES, title="AR7 Preventive Maintenance Schedule"))
    print(f"wrote {target}")
