"""The `brandvote review …` commands: flags in, one rule call, its outcome printed.

Kept apart from cli.py so that module stays one screen of campaign and catalog commands; the
rules are in reviews, nominations, review_scores and review_results.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

from sqlite_utils import Database

from . import nominations, review_results, review_scores, reviews, scoring
from .errors import BadSheet

NONE_TIER = "none"


def _load(db: Database, args, now: datetime) -> int:
    report = reviews.load_review(db, reviews.read_review_file(args.file), now, actor="cli")
    print(f"已载入 {args.file}：")
    print("\n".join("  " + line for line in report.lines()))
    return 0


def _stage(db: Database, args, now: datetime) -> int:
    if args.publish_at:
        from . import clock

        try:
            when = clock.parse_input(args.publish_at)
        except ValueError:
            print("--publish-at 时间格式有误，请按“年-月-日 时:分”填写（北京时间）。", file=sys.stderr)
            return 1
        reviews.set_publish_at(db, args.slug, when, now)
    if args.stage:
        review = review_results.set_stage(db, args.slug, args.stage, now)
    else:
        review = reviews.review_by_slug(db, args.slug)
    print(f"{review['title']}：{reviews.STAGE_LABELS[reviews.review_stage(review, now)]}"
          + (f"（定于 {review['publish_at']} UTC 公布）" if review["publish_at"] and review["stage"] != "published" else ""))
    return 0


def _screen(db: Database, args, now: datetime) -> int:
    case = nominations.screen(db, args.slug, args.case, args.command_name == "accept", args.reason or "", now)
    print(f"{case['slug']}（{case['title']}）：{'通过初审' if case['state'] == 'accepted' else '未通过初审'}")
    return 0


def _sheets(db: Database, args, now: datetime) -> int:
    try:
        text = Path(args.file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadSheet({"文件": f"无法读取：{exc}"})
    counts = review_scores.load_sheets(db, args.slug, text, now)
    print(f"已录入评分表 {args.file}：新增 {counts['added']}，修改 {counts['changed']}，未变 {counts['unchanged']}")
    return 0


def _print_results(res: review_results.Results) -> None:
    doc = review_results.results_json(res)
    print(f"{doc['title']}（仅供组织方，公布前不得外传）")
    for c in doc["cases"]:
        rank = "未排名" if c["rank"] is None else f"{c['rank']:>3}{'=' if c['tied'] else ' '}"
        public = "" if c["public"] is None else f" 网络 {c['public']:5.1f}"
        expert = "  —  " if c["expert"] is None else f"{c['expert']:5.1f}"
        score = "  —  " if c["score"] is None else f"{c['score']:5.1f}"
        print(f"  {rank} {score}（专家 {expert}{public}，{c['jurors']} 位评委）{c['title']}  {c['tier_name'] or ''}")
    for d in doc["departures"]:
        print(f"  决定：{d['case']} → {d['tier'] or '不列入等次'}（{d['reason']}）")
    if doc["undecided"]:
        print("  等次边界并列待决定：" + "、".join(doc["undecided"]))
    print("评委打分偏差（正数偏高，负数偏低；仅供参考，不做自动调整）：")
    for s in res.spread:
        offset = "—" if s.mean_offset is None else f"{scoring.display(s.mean_offset):+}"
        print(f"  {s.juror}：{s.cases} 个案例，平均 {offset}")
    print("规则：" + doc["rule"])


def _scores(db: Database, args, now: datetime) -> int:
    res = review_results.organizer_results(db, args.slug, now)
    if args.json:
        print(json.dumps(review_results.results_json(res), ensure_ascii=False, indent=2))
    else:
        _print_results(res)
    return 0


def _decide(db: Database, args, now: datetime) -> int:
    tier = None if args.tier == NONE_TIER else args.tier
    res = review_results.decide(db, args.slug, args.case, tier, args.reason, now)
    placed = {p.slug: p for p in res.outcome.placements}[args.case]
    print(f"已记录：{args.case} → {placed.tier or '不列入等次'}")
    if res.outcome.undecided:
        print("等次边界仍有并列待决定：" + "、".join(res.outcome.undecided))
    return 0


def _publish(db: Database, args, now: datetime) -> int:
    review = review_results.set_stage(db, args.slug, "published", now)
    print(f"{review['title']}：已公布；等次列表 " + "、".join(f"{review['slug']}-{t['key']}" for t in review["tiers"]))
    return 0


COMMANDS = {"load": _load, "stage": _stage, "accept": _screen, "reject": _screen, "sheets": _sheets,
            "scores": _scores, "decide": _decide, "publish": _publish}


def run(db: Database, args, now: datetime) -> int:
    return COMMANDS[args.command_name](db, args, now)


def add_parser(sub, common, func) -> None:
    p = sub.add_parser("review", help="评审：载入、推进阶段、初审、评分表、结果、决定、公布")
    rsub = p.add_subparsers(dest="command_name", required=True)

    def command(name: str, help_text: str, *positionals: str):
        q = rsub.add_parser(name, parents=[common], help=help_text)
        for positional in positionals:
            q.add_argument(positional)
        q.set_defaults(func=func)
        return q

    command("load", "载入评审文件（JSON，按 slug 更新；有误则不做任何修改）", "file")
    q = command("stage", f"推进阶段（只能向后：{' → '.join(reviews.STAGES)}）", "slug")
    q.add_argument("stage", nargs="?", choices=reviews.STAGES)
    q.add_argument("--publish-at", help="决定完成后自动公布的时间（北京时间，如 2026-12-20 10:00）")
    command("accept", "初审通过", "slug", "case").add_argument("--reason", default="")
    command("reject", "初审不通过（须写明理由）", "slug", "case").add_argument("--reason", default="")
    command("sheets", "录入纸质评分表（CSV：juror,case,各评分项,comment；有误则整份不录入）", "slug", "file")
    command("scores", "评审结果（组织方，待决定阶段起）", "slug").add_argument("--json", action="store_true")
    q = command("decide", f"决定案例的等次（等次标识，或 {NONE_TIER} 表示不列入），须写明理由", "slug", "case", "tier")
    q.add_argument("--reason", required=True)
    command("publish", "公布结果（等次成为目录列表）", "slug")
