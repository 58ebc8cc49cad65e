"""The brandvote command, run as a user runs it (a subprocess), on temporary files."""

import json
import os
import stat
import subprocess
import sys

import pytest

from brandvote import db as dbmod, seed
from brandvote.cli import first_start
from brandvote.settings import Settings


def run(*args, stdin=None, env_extra=None, cwd=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRANDVOTE_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "brandvote", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=120)


def test_load_then_export_round_trips(tmp_path):
    db = tmp_path / "a.db"
    r = run("load", str(seed.bundled_catalog_path()), "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "新增" in r.stdout
    out = tmp_path / "export.json"
    assert run("export", str(out), "--db", str(db)).returncode == 0
    db2 = tmp_path / "b.db"
    assert run("load", str(out), "--db", str(db2)).returncode == 0
    out2 = tmp_path / "export2.json"
    assert run("export", str(out2), "--db", str(db2)).returncode == 0
    assert out.read_text(encoding="utf-8") == out2.read_text(encoding="utf-8")
    again = run("load", str(out), "--db", str(db))
    assert "新增 0，修改 0" in again.stdout


def test_load_of_a_broken_file_prints_paths_and_changes_nothing(tmp_path, bundled):
    db = tmp_path / "a.db"
    assert run("load", str(seed.bundled_catalog_path()), "--db", str(db)).returncode == 0
    broken = json.loads(json.dumps(bundled))
    broken["brands"][4]["kind"] = "poster"
    broken["brands"][0]["name"] = "改过的名字"
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(broken, ensure_ascii=False), encoding="utf-8")
    r = run("load", str(path), "--db", str(db))
    assert r.returncode == 1
    assert "$.brands[4].kind" in r.stderr and "未做任何修改" in r.stderr
    conn = dbmod.connect(db)
    assert conn.execute("select name from brands where slug = ?", [bundled["brands"][0]["slug"]]).fetchone()[0] \
        == bundled["brands"][0]["name"]


def test_first_start_loads_opens_the_demo_and_prints_the_admin_once(tmp_path, capsys):
    settings = Settings(db_path=tmp_path / "s.db", secret="x" * 32)
    first_start(settings)
    out = capsys.readouterr().out
    assert "已载入内置目录" in out and "演示评选已开启" in out
    assert "管理员账号" in out
    password = out.split("密码 ")[1].split()[0]
    assert len(password) >= 16
    conn = dbmod.connect(settings.db_path)
    from brandvote import campaigns, clock

    demo = campaigns.list_campaigns(conn, clock.utcnow())[0]
    assert demo["status"] == "open"
    stored = conn.execute("select password_hash from users where username = 'admin'").fetchone()[0]
    assert stored.startswith("$argon2id$") and password not in stored
    first_start(settings)
    again = capsys.readouterr().out
    assert "管理员账号" not in again and "已载入" not in again


def test_secret_file_is_created_once_with_mode_0600(tmp_path):
    s1 = Settings.from_env({}, db_path=str(tmp_path / "x.db"))
    s2 = Settings.from_env({}, db_path=str(tmp_path / "x.db"))
    assert s1.secret == s2.secret and len(s1.secret) >= 40
    secret_file = tmp_path / "x.db.secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert Settings.from_env({"BRANDVOTE_SECRET": "given"}, db_path=str(tmp_path / "x.db")).secret == "given"


def test_environment_settings_are_checked(tmp_path):
    with pytest.raises(ValueError):
        Settings.from_env({"BRANDVOTE_IP_LIMIT": "lots"}, db_path=str(tmp_path / "x.db"))
    with pytest.raises(ValueError):
        Settings.from_env({"BRANDVOTE_BASE_URL": "vote.example.org"}, db_path=str(tmp_path / "x.db"))
    s = Settings.from_env({"BRANDVOTE_TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/24", "BRANDVOTE_IP_LIMIT": "0"},
                          db_path=str(tmp_path / "x.db"))
    assert s.trusted_proxies == ("10.0.0.1/32", "192.168.0.0/24") and s.ip_limit == 0


def test_bundled_catalog_is_found_from_any_directory(tmp_path):
    r = run("load", str(seed.bundled_catalog_path()), "--db", "x.db", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "x.db").exists()


def test_user_add_reads_the_password_from_stdin(tmp_path):
    db = tmp_path / "u.db"
    r = run("user", "add", "editor1", "--role", "editor", "--db", str(db), stdin="a-long-password-1\n")
    assert r.returncode == 0, r.stderr
    short = run("user", "add", "editor2", "--role", "editor", "--db", str(db), stdin="short\n")
    assert short.returncode == 1 and "至少" in short.stderr
    dup = run("user", "add", "editor1", "--role", "editor", "--db", str(db), stdin="a-long-password-1\n")
    assert dup.returncode == 1 and "已存在" in dup.stderr
    off = run("user", "disable", "editor1", "--db", str(db))
    assert off.returncode == 0, off.stderr
    conn = dbmod.connect(db)
    logged = [tuple(r) for r in conn.execute("select actor, action, target from audit_log order by id")]
    assert logged == [("cli", "user.add", "editor1"), ("cli", "user.disable", "editor1")]  # refusals leave none


def test_first_start_audits_the_admin_it_creates(tmp_path, capsys):
    settings = Settings(db_path=tmp_path / "s.db", secret="x" * 32)
    first_start(settings)
    conn = dbmod.connect(settings.db_path)
    assert conn.execute("select actor, target from audit_log where action = 'user.add'"
                        " and target = 'admin'").fetchall() == [("setup", "admin")]


def test_backup_is_a_consistent_copy(tmp_path):
    db = tmp_path / "a.db"
    run("load", str(seed.bundled_catalog_path()), "--db", str(db))
    target = tmp_path / "backup.db"
    r = run("backup", str(target), "--db", str(db))
    assert r.returncode == 0, r.stderr
    conn = dbmod.connect(target)
    assert conn.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert conn.execute("select count(*) from brands").fetchone()[0] > 0
    assert run("backup", str(target), "--db", str(db)).returncode == 1, "never overwrites"


def test_help_lists_the_commands():
    r = run("--help")
    for command in ("serve", "load", "export", "user", "campaign", "backup"):
        assert command in r.stdout


def _codes_campaign(tmp_path):
    db = tmp_path / "c.db"
    run("load", str(seed.bundled_catalog_path()), "--db", str(db))
    conn = dbmod.connect(db)
    conn.execute("update campaigns set electorate = 'codes'")
    conn.conn.commit()
    return db, conn


def test_codes_writes_a_csv_of_one_time_codes_and_stores_only_hashes(tmp_path):
    db, conn = _codes_campaign(tmp_path)
    out = tmp_path / "codes.csv"
    r = run("codes", "shanghai-2022-highlights", "--count", "10000", "--out", str(out), "--db", str(db),
            env_extra={"BRANDVOTE_BASE_URL": "https://vote.example.org"})
    assert r.returncode == 0, r.stderr
    assert "10000/10000" in r.stderr
    rows = out.read_text().splitlines()
    assert rows[0] == "code,url" and len(rows) == 10001
    code, url = rows[1].split(",")
    assert url == f"https://vote.example.org/v/{code}"
    assert conn.execute("select count(*) from voter_codes").fetchone()[0] == 10000
    assert conn.execute("select count(*) from voter_codes where code_hash like ?", [f"%{code}%"]).fetchone()[0] == 0
    assert run("codes", "shanghai-2022-highlights", "--count", "1", "--out", str(out), "--db", str(db)).returncode == 1


def test_codes_are_refused_for_an_open_electorate(tmp_path):
    db = tmp_path / "o.db"
    run("load", str(seed.bundled_catalog_path()), "--db", str(db))
    r = run("codes", "shanghai-2022-highlights", "--count", "5", "--out", str(tmp_path / "x.csv"), "--db", str(db))
    assert r.returncode == 1 and "公开投票" in r.stderr
    assert not (tmp_path / "x.csv").exists()


def test_turnout_prints_totals_by_channel_without_candidate_counts(tmp_path, bundled):
    from brandvote import ballots, campaigns, clock

    db = tmp_path / "t.db"
    run("load", str(seed.bundled_catalog_path()), "--db", str(db))
    conn = dbmod.connect(db)
    slug = bundled["campaigns"][0]["slug"]
    campaigns.schedule_demo(conn, slug, clock.utcnow())
    camp = campaigns.campaign_by_slug(conn, slug)
    cands = bundled["campaigns"][0]["candidates"]
    for i in range(3):
        with dbmod.immediate(conn):
            ballots.cast_ballot(conn, camp["id"], f"device:{i}", cands[:2], clock.utcnow(),
                               channel="poster" if i else None)
    r = run("turnout", slug, "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "共 3 张选票" in r.stdout and "渠道 poster: 2" in r.stdout
    names = {b["name"] for b in bundled["brands"] if b["slug"] in cands}
    assert not any(name in r.stdout for name in names)


def _voted_and_closed(tmp_path, bundled, closed_minutes_ago=20):
    """A loaded database whose demo campaign got a few ballots and closed `closed_minutes_ago`."""
    from datetime import timedelta

    from brandvote import ballots, campaigns, clock

    db = tmp_path / "v.db"
    run("load", str(seed.bundled_catalog_path()), "--db", str(db))
    conn = dbmod.connect(db)
    slug = bundled["campaigns"][0]["slug"]
    now = clock.utcnow()
    conn.execute("update campaigns set opens_at = ?, closes_at = ?, announce_at = ? where slug = ?",
                 [clock.to_db(now - timedelta(days=1)), clock.to_db(now - timedelta(minutes=closed_minutes_ago)),
                  clock.to_db(now + timedelta(days=1)), slug])
    conn.conn.commit()
    cands = bundled["campaigns"][0]["candidates"]
    camp = campaigns.campaign_by_slug(conn, slug)
    for i, picks in enumerate([cands[:10], cands[:5], cands[2:4], cands[10:11]]):
        with dbmod.immediate(conn):
            ballots.cast_ballot(conn, camp["id"], f"device:{i}", picks, now - timedelta(hours=2),
                               page_loaded_at=now - timedelta(hours=2))
    return db, slug, cands


def test_tally_is_refused_during_the_grace_period(tmp_path, bundled):
    db, slug, _ = _voted_and_closed(tmp_path, bundled, closed_minutes_ago=1)
    r = run("tally", slug, "--db", str(db))
    assert r.returncode == 1 and "投票仍在进行" in r.stderr


def test_tally_json_then_announce_then_recount_of_the_published_ledger(tmp_path, bundled):
    db, slug, cands = _voted_and_closed(tmp_path, bundled)
    r = run("tally", slug, "--json", "--db", str(db))
    assert r.returncode == 0, r.stderr
    published = json.loads(r.stdout)
    votes = {c["slug"]: c["votes"] for c in published["candidates"]}
    assert published["ballots"] == 4 and votes[cands[2]] == 3 and votes[cands[4]] == 2 and votes[cands[14]] == 0
    # six candidates with one vote each share ranks 6-11: a tie across the 10th seat
    assert sum(1 for c in published["candidates"] if c["winner"] is None) == 6
    refused = run("campaign", "announce", slug, "--db", str(db))
    assert refused.returncode == 1 and "并列未决定" in refused.stderr
    tied = [c["slug"] for c in published["candidates"] if c["winner"] is None]
    seats = 10 - sum(1 for c in published["candidates"] if c["winner"] is True)
    decided = run("tally", slug, "--decide-tie", ",".join(tied[:seats]), "--db", str(db))
    assert decided.returncode == 0, decided.stderr
    assert run("campaign", "announce", slug, "--db", str(db)).returncode == 0
    from brandvote import campaigns, clock, tally

    conn = dbmod.connect(db)
    ledger = tmp_path / "ledger.csv"
    ledger.write_text(tally.ledger_csv(tally.ledger_rows(conn, 1)), encoding="utf-8")
    results = tmp_path / "results.json"
    results.write_text(json.dumps(tally.results_json(tally.results(conn, campaigns.campaign_by_slug(conn, slug),
                                                                    clock.utcnow())), ensure_ascii=False))
    ok = run("recount", str(ledger), "--results", str(results))
    assert ok.returncode == 0 and "一致" in ok.stdout
    tampered = json.loads(results.read_text())
    tampered["candidates"][0]["votes"] += 1
    results.write_text(json.dumps(tampered, ensure_ascii=False))
    bad = run("recount", str(ledger), "--results", str(results))
    assert bad.returncode == 1 and "不一致" in bad.stdout
