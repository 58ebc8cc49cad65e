"""CSV for people who open it in a spreadsheet: no cell may start a formula.

Excel, LibreOffice and Sheets run a cell that begins with = + - @ (or a tab or CR before
one) as a formula, so an entry named =HYPERLINK(…) would become a link or worse in the
organizer's copy of the results (OWASP "CSV injection"). Such text cells get a leading
apostrophe, which spreadsheets show as plain text; numbers stay numbers.
"""

from __future__ import annotations

import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value):
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


class SafeWriter:
    """csv.writer with every text cell neutralised; the one way this site writes CSV."""

    def __init__(self, out, **kwargs):
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row) -> None:
        self._writer.writerow([cell(v) for v in row])

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


def writer(out, **kwargs) -> SafeWriter:
    return SafeWriter(out, **kwargs)


def write_codes(out, codes: list[str], url_of) -> None:
    """The voter codes a campaign's organizer prints or mails: code and its redeem URL."""
    w = writer(out, lineterminator="\r\n")
    w.writerow(["code", "url"])
    w.writerows([code, url_of(code)] for code in codes)
