"""How far a review's scoring has come: sheets per case and per juror, never a mark.

For the organizer's console while jurors score. It reads which (case, juror) pairs have a
sheet and nothing of what the sheet says, so no total or order can be derived from it; the
results themselves wait for deciding (review_results.organizer_results).
"""

from __future__ import annotations

from sqlite_utils import Database

from .review_scores import conflicted
from .reviews import cases_of, jurors_of


def progress(db: Database, review: dict) -> dict:
    """`cases`: each accepted case with its sheets and the jurors who may score it (not
    conflicted); `jurors`: each juror with the sheets given and the cases they may score."""
    done = {(r["case_id"], r["user_id"]) for r in db.query(
        "select case_id, user_id from scores where review_id = ?", [review["id"]])}
    jurors = jurors_of(db, review["id"])
    cases = cases_of(db, review["id"], "accepted")
    per_juror = {j["id"]: {"username": j["username"], "name": j["name"], "unit": j["unit"],
                           "no_password": bool(j["no_password"]), "sheets": 0, "cases": 0} for j in jurors}
    rows = []
    for case in cases:
        eligible = [j for j in jurors if not conflicted(db, case, j)]
        for j in eligible:
            per_juror[j["id"]]["cases"] += 1
            per_juror[j["id"]]["sheets"] += (case["id"], j["id"]) in done
        rows.append({"slug": case["slug"], "title": case["title"], "unit": case["unit"],
                     "sheets": sum((case["id"], j["id"]) in done for j in eligible), "jurors": len(eligible)})
    return {"cases": rows, "jurors": list(per_juror.values()),
            "sheets": sum(r["sheets"] for r in rows), "expected": sum(r["jurors"] for r in rows)}
