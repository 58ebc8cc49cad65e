"""`brandvote review …` run as an organizer runs it: a subprocess on a temporary database."""

import json

from brandvote import db as dbmod, seed

from test_cli import run
from test_reviews import CASES, R, review_doc


def setup_db(tmp_path):
    db = tmp_path / "r.db"
    assert run("load", str(seed.bundled_catalog_path()), "--db", str(db)).returncode == 0
    path = tmp_path / "review.json"
    path.write_text(json.dumps(review_doc(), ensure_ascii=False), encoding="utf-8")
    r = run("review", "load", str(path), "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "新建账号 3" in r.stdout and "user passwd" in r.stdout
    return db


def ok(*args):
    r = run("review", *args)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_the_whole_flow_from_file_to_published_tiers(tmp_path):
    db = setup_db(tmp_path)
    ok("stage", R, "screening", "--db", str(db))
    for case in CASES[:4]:
        ok("accept", R, case, "--db", str(db))
    assert "未通过初审" in ok("reject", R, CASES[4], "--reason", "材料不全", "--db", str(db))
    ok("stage", R, "scoring", "--db", str(db))
    early = run("review", "scores", R, "--db", str(db))
    assert early.returncode == 1 and "待决定" in early.stderr
    sheet = tmp_path / "sheet.csv"
    lines = ["juror,case,innovation,effect,comment"]
    lines += [f"j{j},{case},{10 - 2 * i},{10 - 2 * i}," for j in (1, 2, 3) for i, case in enumerate(CASES[:4])]
    sheet.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert "新增 12" in ok("sheets", R, str(sheet), "--db", str(db))
    ok("stage", R, "deciding", "--db", str(db))
    doc = json.loads(ok("scores", R, "--json", "--db", str(db)))
    assert [c["tier"] for c in doc["cases"]] == ["excellent", "excellent", "shortlisted", None]
    ok("decide", R, CASES[2], "none", "--reason", "主席会议决定", "--db", str(db))
    ok("decide", R, CASES[3], "shortlisted", "--reason", "主席会议决定", "--db", str(db))
    assert "已公布" in ok("publish", R, "--db", str(db))
    conn = dbmod.connect(db)
    assert conn.execute("select count(*) from lists where slug like ?", [f"{R}-%"]).fetchone()[0] == 2
    back = run("review", "stage", R, "scoring", "--db", str(db))
    assert back.returncode == 1 and "只能向后推进" in back.stderr


def test_a_bad_sheet_and_a_bad_file_are_refused_whole_with_every_problem(tmp_path):
    db = setup_db(tmp_path)
    ok("stage", R, "screening", "--db", str(db))
    for case in CASES:
        ok("accept", R, case, "--db", str(db))
    ok("stage", R, "scoring", "--db", str(db))
    sheet = tmp_path / "sheet.csv"
    sheet.write_text(f"juror,case,innovation,effect\nj1,{CASES[0]},11,1\nj1,nope,1,1\nj1,{CASES[1]},1,1\n",
                     encoding="utf-8")
    r = run("review", "sheets", R, str(sheet), "--db", str(db))
    assert r.returncode == 1 and "第 2 行" in r.stderr and "第 3 行" in r.stderr and "未做任何修改" in r.stderr
    assert dbmod.connect(db).execute("select count(*) from scores").fetchone()[0] == 0
    broken = review_doc()
    broken["criteria"][0]["weight"] = 0
    broken["tiers"][0]["seats"] = 99
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    r = run("review", "load", str(path), "--db", str(db))
    assert r.returncode == 1 and "criteria[0].weight" in r.stderr and "tiers[0].seats" in r.stderr


def test_user_add_takes_a_unit_and_a_nominator_needs_one(tmp_path):
    db = tmp_path / "u.db"
    r = run("user", "add", "unit-a", "--role", "nominator", "--db", str(db), stdin="correct horse battery\n")
    assert r.returncode == 1 and "单位" in r.stderr
    r = run("user", "add", "unit-a", "--role", "nominator", "--unit", "海淀区政协", "--db", str(db),
            stdin="correct horse battery\n")
    assert r.returncode == 0, r.stderr
    assert dbmod.connect(db).execute("select unit from users where username = 'unit-a'").fetchone()[0] == "海淀区政协"


def test_first_start_leaves_the_demo_review_in_scoring_with_no_score(tmp_path, capsys):
    from brandvote.cli import first_start
    from brandvote.settings import Settings

    settings = Settings(db_path=tmp_path / "s.db", secret="x" * 32)
    first_start(settings)
    out = capsys.readouterr().out
    assert "管理员账号" in out and "演示评审" in out
    conn = dbmod.connect(settings.db_path)
    stage, = conn.execute("select stage from reviews").fetchone()
    states = conn.execute("select state, count(*) from cases group by state").fetchall()
    assert stage == "scoring" and states == [("accepted", 17)]
    assert conn.execute("select count(*) from scores").fetchone()[0] == 0
    assert conn.execute("select count(*) from users where role = 'juror' and password_hash = ''").fetchone()[0] == 5
