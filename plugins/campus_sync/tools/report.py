"""The Sync Request History report of one selective sync, as CSV or PDF.

Both list every requested ID once, under "IDs failed to process at District" (with the reason)
or "IDs successful", with the district, the object, who requested it and when.

CSV: one row per ID, every row self-contained (batch, district, object, who, when, ID, result,
reason and what the reason's code means), so it loads straight into a spreadsheet or a database.
Times carry their zone (ISO 8601 with offset in the CSV, "UTC" or "+hh:mm" after the time in the PDF).
PDF: Campus's layout (reportlab): a header with the district and "Page x of y", the request
sentence, the two ID columns, then the failed IDs with their reasons and the synced IDs, and
the per-object counts of the request.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from campus_sync.tools import reasons
from campus_sync.tools.selective import format_ts as _campus_ts

FAILED = "IDs failed to process at District"
SUCCESSFUL = "IDs successful"
CSV_FIELDS = ("batch_id", "district_id", "district_name", "object", "key_column", "requested_by",
              "requested_at", "completed_at", "status", "records", "id", "result", "reason", "reason_text")


def to_csv(data: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_FIELDS)
    base = [data["batch_id"], data["district_id"], data["district_name"], data["object"], data["key_column"],
            data["requested_by"], _iso(data["requested_at"]), _iso(data["completed_at"]), data["status"],
            data["records"]]
    rows = [(k, "failed", r) for k, r in data["failed"]] + [(k, "successful", r) for k, r in data["successful"]]
    for key, result, reason in sorted(rows, key=lambda x: x[0]):
        w.writerow(base + [key, result, reason, _reason_text(reason)])
    return buf.getvalue()


def _reason_text(reason: str) -> str:
    """What the refusal codes in `reason` mean ("" when it names none: "not found at district")."""
    said = reasons.annotate(reason)
    return said if said != reason else ""


def format_ts(value) -> str:
    """Campus's style (01/03/2013 10:15:51 AM, local time) followed by the zone: "UTC" or "+hh:mm"."""
    text = _campus_ts(value)
    if not isinstance(value, dt.datetime) or not text:
        return text
    offset = value.astimezone().utcoffset() or dt.timedelta(0)
    if not offset:
        return f"{text} UTC"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{text} {sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _iso(value) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value or "")


def write(data: dict, fmt: str, path: Path) -> Path:
    if fmt == "csv":
        path.write_text(to_csv(data), encoding="utf-8", newline="")
    elif fmt == "pdf":
        path.write_bytes(to_pdf(data))
    else:
        raise ValueError(f"unknown report format {fmt!r}; use csv or pdf")
    return path


def to_pdf(data: dict, generated: dt.datetime | None = None) -> bytes:
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import letter
    from reportlab.lib.styles import getSampleStyleSheet
    from reportlab.lib.units import inch
    from reportlab.pdfgen import canvas as pdfcanvas
    from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, TableStyle
    from xml.sax.saxutils import escape

    generated = generated or dt.datetime.now().astimezone()
    styles = getSampleStyleSheet()
    body, small = styles["BodyText"], styles["Normal"]
    header_left = f"{data['district_id']} {data['district_name'].upper()} District"
    header_right = f"Generated on {format_ts(generated)}"

    class NumberedCanvas(pdfcanvas.Canvas):
        """Draws the header with 'Page x of y' once the page count is known."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []

        def showPage(self):  # noqa: N802 - reportlab API
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            total = len(self._pages)
            for state in self._pages:
                self.__dict__.update(state)
                self.setFont("Helvetica-Bold", 9)
                self.drawString(0.75 * inch, 10.5 * inch, header_left)
                self.setFont("Helvetica", 8)
                self.drawRightString(7.75 * inch, 10.5 * inch,
                                     f"{header_right}  Page {self._pageNumber} of {total}")
                self.line(0.75 * inch, 10.42 * inch, 7.75 * inch, 10.42 * inch)
                super().showPage()
            super().save()

    key_label = data["key_column"] or "ID"
    key_label = key_label[0].upper() + key_label[1:]
    grid = TableStyle([
        ("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
        ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#dde4ee")),
        ("FONTNAME", (0, 0), (-1, 0), "Helvetica-Bold"),
        ("FONTSIZE", (0, 0), (-1, -1), 9),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ])

    def id_rows(failed, ok, per_row: int = 6) -> list[list[str]]:
        """The two ID columns, a few IDs per row, so a long list splits across pages."""
        chunks = lambda pairs: [" ".join(str(k) for k, _ in pairs[i:i + per_row])
                                for i in range(0, len(pairs), per_row)]
        left, right = chunks(failed), chunks(ok)
        n = max(len(left), len(right), 1)
        left += [""] * (n - len(left))
        right += [""] * (n - len(right))
        return [[a, b] for a, b in zip(left, right)]

    story = [
        Paragraph("Sync Request History", styles["Title"]),
        Paragraph(escape(data["district_name"]), styles["Heading2"]),
        Paragraph(escape(
            f"The {data['object']} sync performed on {format_ts(data['requested_at'])} by "
            f"{data['requested_by']} included the following IDs:"), body),
        Paragraph(escape(
            f"Request {data['batch_id']}: {data['status']}; completed {format_ts(data['completed_at']) or '-'}; "
            f"Records: {data['records'] or '-'}"), small),
        Spacer(1, 8),
        _table([[FAILED, SUCCESSFUL]] + id_rows(data["failed"], data["successful"]),
               [3.5 * inch, 3.5 * inch], grid, inner=False),
        Spacer(1, 14),
        Paragraph(f"List of records which failed to sync (identified by {escape(key_label)})", styles["Heading3"]),
    ]
    failed_rows = [[key_label, "Reason"]] + [[str(k), Paragraph(escape(reasons.annotate(r)), small)]
                                             for k, r in data["failed"]]
    story.append(_table(failed_rows, [1.5 * inch, 5.5 * inch], grid) if data["failed"]
                 else Paragraph("None.", body))
    story += [Spacer(1, 14),
              Paragraph(f"List of records synced (identified by {escape(key_label)})", styles["Heading3"])]
    ok_rows = [[key_label, "Result"]] + [[str(k), "synced"] for k, _ in data["successful"]]
    story.append(_table(ok_rows, [1.5 * inch, 5.5 * inch], grid) if data["successful"]
                 else Paragraph("None.", body))
    if data.get("objects"):
        story += [Spacer(1, 14), Paragraph("Objects synced for these IDs", styles["Heading3"])]
        rows = [["Object", "Status", "Processed", "Errors", "Inserted", "Updated", "Deleted"]]
        rows += [[o["object"], o["status"], o["processed"], o["errors"], o["inserted"], o["updated"],
                  o["deleted"]] for o in data["objects"]]
        story.append(_table(rows, [2.2 * inch, 0.8 * inch] + [0.8 * inch] * 5, grid))

    buf = io.BytesIO()
    doc = SimpleDocTemplate(buf, pagesize=letter, topMargin=0.9 * inch, bottomMargin=0.75 * inch,
                            leftMargin=0.75 * inch, rightMargin=0.75 * inch,
                            title=f"Sync Request History {data['batch_id']}", author="campus-state-sync",
                            subject=f"{data['object']} selective sync, district {data['district_id']}")
    doc.build(story, canvasmaker=NumberedCanvas)
    return buf.getvalue()


def _table(rows, widths, style, inner: bool = True):
    from reportlab.lib import colors
    from reportlab.platypus import Table, TableStyle

    t = Table(rows, colWidths=widths, repeatRows=1)
    t.setStyle(style)
    if not inner:  # one list per column: no lines between its rows
        t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0, colors.white),
                               ("BOX", (0, 0), (-1, -1), 0.5, colors.grey),
                               ("LINEAFTER", (0, 0), (0, -1), 0.5, colors.grey),
                               ("LINEBELOW", (0, 0), (-1, 0), 0.5, colors.grey)]))
    return t
