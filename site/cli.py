"""The `brandvote` command. It turns flags into Settings and calls the rules modules."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import accounts, ballots, campaigns, catalog, clock, db as dbmod, seed, tally, voter_codes
from .errors import BrandvoteError, InvalidCatalog
from .settings import Settings


def _settings(args) -> Settings:
    return Settings.from_env(db_path=args.db)


def _open(args):
    settings = _settings(args)
    dbmod.migrate(settings.db_path)
    return settings, dbmod.connect(settings.db_path)


def cmd_migrate(args) -> int:
    settings = _settings(args)
    applied = dbmod.migrate(settings.db_path)
    print(f"已应用迁移：{', '.join(applied) if applied else '无（已是最新）'}")
    return 0


def first_start(settings: Settings, out=None) -> None:
    """Migrate; on an empty database load the bundled catalog, open the demo, create the admin."""
    out = out or sys.stdout
    dbmod.migrate(settings.db_path)
    db = dbmod.connect(settings.db_path)
    try:
        now = clock.utcnow()
        catalog_loaded = catalog.is_empty(db)
        if catalog_loaded:
            doc = seed.read_document(seed.bundled_catalog_path())
            report = seed.load_document(db, doc, now)
            print("已载入内置目录：", *report.lines(), sep="\n  ", file=out)
            if doc.get("campaigns"):
                demo = doc["campaigns"][0]["slug"]
                campaigns.schedule_demo(db, demo, now)
                print(f"演示评选已开启：{_links(settings).url('vote:ballot', slug=demo)}", file=out)
        # before the demo review, whose jurors are accounts too
        admin = accounts.create_first_admin(db, now)
        if catalog_loaded:
            _demo_review(db, now, out)
        if admin:
            print(f"管理员账号（仅显示这一次，请妥善保存）：用户名 {admin[0]}  密码 {admin[1]}", file=out)
    finally:
        db.close()


def _demo_review(db, now, out) -> None:
    """The bundled review (modelled on Beijing's district innovation cases), its cases accepted
    and left in scoring with no score at all: figures nobody gave must not look like results."""
    from . import nominations, review_results, reviews

    path = reviews.DEMO_REVIEW
    if not path.exists():
        return
    report = reviews.load_review(db, reviews.read_review_file(path), now, actor="setup")
    slug = report.slug
    review_results.set_stage(db, slug, "screening", now, actor="setup")
    nominations.accept_all(db, slug, "演示：全部通过初审", now, actor="setup")
    review_results.set_stage(db, slug, "scoring", now, actor="setup")
    print(f"演示评审“{slug}”在评分阶段，还没有任何评分。试用：brandvote user passwd demo-juror-1 设密码后以评委登录，"
          f"或 brandvote review sheets {slug} 评分表.csv 录入纸质评分表", file=out)


def cmd_serve(args) -> int:
    """uvicorn with the limits of serving.py (idle and slow clients, connections, open files)."""
    import uvicorn

    from . import serving

    settings = _settings(args)
    first_start(settings)
    # Workers rebuild Settings from the environment: hand them the same database path.
    os.environ["BRANDVOTE_DB"] = str(settings.db_path)
    options = serving.uvicorn_options(args.host, args.port, args.workers,
                                      args.limit_concurrency or serving.LIMIT_CONCURRENCY,
                                      serving.raise_open_files_limit())
    print(f"服务地址：http://{args.host}:{args.port}  （对外地址 {settings.base_url}）", flush=True)
    uvicorn.run("brandvote.app:app_from_env", factory=True, **options)
    return 0


def cmd_load(args) -> int:
    settings, db = _open(args)
    try:
        report = seed.load_file(db, Path(args.file), clock.utcnow())
    except InvalidCatalog as exc:
        print("载入失败，数据库未做任何修改：", file=sys.stderr)
        for problem in exc.problems:
            print("  " + problem, file=sys.stderr)
        return 1
    print(f"已载入 {args.file}：")
    print("\n".join("  " + line for line in report.lines()))
    return 0


def cmd_export(args) -> int:
    _, db = _open(args)
    text = seed.dump(seed.export_document(db))
    if args.file == "-":
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8")
        print(f"已导出到 {args.file}")
    return 0


def cmd_backup(args) -> int:
    """SQLite's online backup API: consistent even while the server is writing."""
    _, db = _open(args)
    target = Path(args.path)
    if target.exists():
        print(f"{target} 已存在，不覆盖。", file=sys.stderr)
        return 1
    import sqlite3

    dest = sqlite3.connect(str(target))
    with dest:
        db.conn.backup(dest)
    dest.close()
    print(f"已备份到 {target}")
    return 0


def _read_password() -> str:
    """One line from stdin; on a terminal, asked without echo, with the rule said first."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass(f"{accounts.PASSWORD_RULE}\n密码：")
    return sys.stdin.readline().rstrip("\n")


def cmd_user_add(args) -> int:
    _, db = _open(args)
    password = _read_password()
    accounts.create_user(db, args.name, password, args.role, clock.utcnow(), unit=args.unit, actor="cli")
    print(f"已创建用户 {args.name}（{args.role}）")
    return 0


def cmd_user_passwd(args) -> int:
    _, db = _open(args)
    accounts.set_password(db, args.name, _read_password(), clock.utcnow(), actor="cli")
    print(f"已修改 {args.name} 的密码，其所有登录会话已结束。")
    return 0


def cmd_user_disable(args) -> int:
    _, db = _open(args)
    accounts.set_disabled(db, args.name, not args.enable, clock.utcnow(), actor="cli")
    print(f"已{'启用' if args.enable else '停用'}用户 {args.name}。")
    return 0


def cmd_review(args) -> int:
    """Every `review` subcommand: the rules live in reviews, nominations, review_scores and
    review_results; this turns flags into one call and prints its outcome."""
    from . import review_cli

    _, db = _open(args)
    return review_cli.run(db, args, clock.utcnow())


def cmd_campaign(args) -> int:
    _, db = _open(args)
    if args.action == "announce":
        camp = tally.announce(db, args.slug, clock.utcnow())
    else:
        state = {"open": "open", "close": "closed"}[args.action]
        camp = campaigns.set_manual_state(db, args.slug, state, clock.utcnow())
    print(f"{camp['title']}：{campaigns.STATUS_LABELS[campaigns.status(camp, clock.utcnow())]}")
    return 0


def cmd_codes(args) -> int:
    """One-time voter codes to a CSV (code, URL), and with --slips a printable HTML file of
    QR slips; only the codes' hashes stay in the database."""
    import time

    from . import spreadsheet

    if not 1 <= args.count <= 1_000_000:
        print("--count 必须在 1 到 1000000 之间。", file=sys.stderr)
        return 1
    settings, db = _open(args)
    camp = campaigns.campaign_by_slug(db, args.slug)
    out = Path(args.out)
    slips = Path(args.slips) if args.slips else None
    for path in (out, slips):
        if path is not None and path.exists():
            print(f"{path} 已存在，不覆盖。", file=sys.stderr)
            return 1
    if slips is not None and slips.resolve() == out.resolve():
        print("--slips 与 --out 不能是同一个文件。", file=sys.stderr)
        return 1

    tty = sys.stderr.isatty()

    def progress_for(label):
        last = [0]

        def progress(done, total):
            if tty:  # one line, rewritten in place
                print(f"\r{label} {done}/{total}", end="" if done < total else "\n", file=sys.stderr, flush=True)
            elif done == total or done - last[0] >= 2000:
                print(f"{label} {done}/{total}", file=sys.stderr, flush=True)
                last[0] = done
        return progress

    codes = voter_codes.create_codes(db, camp["id"], args.count, clock.utcnow(), progress=progress_for("已生成"))
    with open(out, "w", newline="", encoding="utf-8") as fh:
        spreadsheet.write_codes(fh, codes, _redeem_url(settings))
    print(f"已为“{camp['title']}”生成 {len(codes)} 个投票码：{out}")
    if slips is not None:
        from . import qr
        from .web.templating import make_templates

        started = time.perf_counter()
        with open(slips, "w", encoding="utf-8") as fh:
            sheets = qr.write_slips(make_templates(settings).env, camp, codes, _redeem_url(settings), fh,
                                    progress=progress_for("已排版纸条"))
        print(f"投票码纸条：{slips}（{len(codes)} 张，{sheets} 页 A4，用时 {time.perf_counter() - started:.1f} 秒）")
    return 0


def _links(settings: Settings):
    """The route table without an app, for the links the command prints or writes."""
    from starlette.routing import Router

    from .routes import build_routes
    from .web.links import Links

    return Links(settings.base_url, Router(routes=build_routes()))


def _redeem_url(settings: Settings):
    links = _links(settings)
    return lambda code: links.url("vote:redeem", code=code)


def cmd_turnout(args) -> int:
    _, db = _open(args)
    camp = campaigns.campaign_by_slug(db, args.slug)
    t = ballots.turnout(db, camp["id"])
    print(f"{camp['title']}（{campaigns.STATUS_LABELS[campaigns.status(camp, clock.utcnow())]}）：共 {t['ballots']} 张选票")
    for row in t["per_channel"]:
        print(f"  渠道 {row['channel'] or '（直接访问）'}: {row['n']}")
    for row in t["per_hour"]:
        print(f"  {row['hour']}时 (UTC): {row['n']}")
    return 0


def cmd_tally(args) -> int:
    """For organizers: the tally once voting is over (refused while it runs)."""
    import json

    _, db = _open(args)
    now = clock.utcnow()
    camp = tally.settle(db, campaigns.campaign_by_slug(db, args.slug), now)
    if args.decide_tie:
        res = tally.decide_tie(db, camp, [s.strip() for s in args.decide_tie.split(",") if s.strip()], now, "cli")
    else:
        res = tally.results(db, camp, now)
    if args.json:
        print(json.dumps(tally.results_json(res), ensure_ascii=False, indent=2))
        return 0
    state = "已揭晓" if tally.is_announced(camp, now) else "未揭晓（仅供组织方核对）"
    print(f"{camp['title']}：{res['ballots']} 张有效选票，{state}")
    for r in res["rows"]:
        mark = {True: "入选", False: "", None: "并列待定"}[r.winner]
        print(f"  {r.rank:>3}{'=' if r.tie else ' '} {r.votes:>8} 票 {r.share * 100:5.1f}%  {r.name} {mark}")
    print(f"账本 SHA-256：{res['ledger_sha256']}")
    if res["undecided_tie"]:
        print("入选名额边界有并列，揭晓前请决定：brandvote tally SLUG --decide-tie slug1,slug2")
    return 0


def cmd_recount(args) -> int:
    import json

    text = Path(args.ledger).read_text(encoding="utf-8")
    published = None
    if args.results:
        published = json.loads(Path(args.results).read_text(encoding="utf-8"))
    report = tally.recount(text, published)
    print(f"账本：{report['ballots']} 张选票，SHA-256 {report['ledger_sha256']}")
    for slug, n in sorted(report["counts"].items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {n:>8}  {slug}")
    if report["matches"] is None:
        return 0
    if report["matches"]:
        print("重算结果与公布结果一致。")
        return 0
    print("重算结果与公布结果不一致：", *report["differences"], sep="\n  ")
    return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="brandvote", description="工作品牌目录与评选")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="SQLite 文件（默认 $BRANDVOTE_DB 或 ./brandvote.db）")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", parents=[common], help="迁移、首次载入内置目录并启动服务")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--limit-concurrency", type=int,
                   help="每个进程最多同时保持的连接数（含空闲连接），超出时新请求立即得到 503（默认 4096）")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("migrate", parents=[common], help="应用数据库迁移")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("load", parents=[common], help="载入 brands.json（按 slug 更新）")
    p.add_argument("file")
    p.set_defaults(func=cmd_load)

    p = sub.add_parser("export", parents=[common], help="导出为 brands.json 格式（- 表示标准输出）")
    p.add_argument("file")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("backup", parents=[common], help="在线备份数据库")
    p.add_argument("path")
    p.set_defaults(func=cmd_backup)

    p = sub.add_parser("user", help="员工账号")
    user_sub = p.add_subparsers(dest="user_command", required=True)
    p = user_sub.add_parser("add", parents=[common], help="新建账号（密码从标准输入读取）",
                            description=f"新建账号，密码从标准输入读取。{accounts.PASSWORD_RULE}")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=accounts.ROLES)
    p.add_argument("--unit", default="", help="所在单位（评委按单位回避；推荐单位账号必填）")
    p.set_defaults(func=cmd_user_add)
    p = user_sub.add_parser("passwd", parents=[common], help="修改密码（从标准输入读取）",
                            description=f"修改密码，新密码从标准输入读取。{accounts.PASSWORD_RULE}")
    p.add_argument("name")
    p.set_defaults(func=cmd_user_passwd)
    p = user_sub.add_parser("disable", parents=[common], help="停用账号（--enable 重新启用）")
    p.add_argument("name")
    p.add_argument("--enable", action="store_true")
    p.set_defaults(func=cmd_user_disable)

    p = sub.add_parser("codes", parents=[common], help="生成一次性投票码（CSV，可选打印用二维码纸条）")
    p.add_argument("slug")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--slips", help="同时生成可打印的投票码纸条（HTML，A4 每页 12 张）")
    p.set_defaults(func=cmd_codes)

    p = sub.add_parser("turnout", parents=[common], help="投票人数（按小时、按渠道；不含各项票数）")
    p.add_argument("slug")
    p.set_defaults(func=cmd_turnout)

    p = sub.add_parser("tally", parents=[common], help="计票（投票进行中拒绝）")
    p.add_argument("slug")
    p.add_argument("--json", action="store_true")
    p.add_argument("--decide-tie", help="入选边界并列时，决定入选的项目（逗号分隔的 slug）")
    p.set_defaults(func=cmd_tally)

    p = sub.add_parser("recount", help="从公布的选票账本重新计票")
    p.add_argument("ledger")
    p.add_argument("--results", help="公布的 results.json，用于比对")
    p.set_defaults(func=cmd_recount)

    from .review_cli import add_parser as add_review_parser

    add_review_parser(sub, common, cmd_review)

    p = sub.add_parser("campaign", parents=[common], help="开启、结束或揭晓评选")
    p.add_argument("action", choices=["open", "close", "announce"])
    p.add_argument("slug")
    p.set_defaults(func=cmd_campaign)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrandvoteError as exc:
        print(exc.message, file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
