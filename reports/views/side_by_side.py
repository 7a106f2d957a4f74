"""Side by side: each prompt with both answers (word diff), their checks and the judge.

Answers and judge reasons are untrusted text: they reach the page only through
escape_markdown / diff_markdown (every markdown character escaped; raw HTML is
never enabled) or st.code. Filters live in the URL, so a link names a view.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import pandas as pd
import report_ui
import streamlit as st

from harness.report import item_data
from harness.report.run_data import RunInfo
from harness.report.worddiff import diff_markdown, word_diff

md = report_ui.md
VERDICT_BADGE = {"win": ":green[candidate wins]", "loss": ":red[base wins]", "tie": ":gray[tie]",
                 "inconsistent": ":orange[inconsistent (orders disagree)]", "unparsed": ":orange[unparsed]",
                 "failed": ":red[judge call failed]"}
# Which answer the judge saw as A and as B in each order. (No bare strings at the top level of a
# page: Streamlit's magic would print them.)
PASS_MARK, FAIL_MARK = ":green[:material/check:]", ":red[:material/close:]"
ORDER_ROLES = {"ab": {"A": "base", "B": "candidate"}, "ba": {"A": "candidate", "B": "base"}}


def _set_item(key: str) -> None:
    st.session_state["item"] = key


def filters(items: pd.DataFrame) -> item_data.ItemFilter:
    tags = sorted({t for ts in items["tags"] for t in ts})
    c1, c2, c3 = st.columns(3)
    suites = c1.multiselect("Suite", sorted(items["suite"].unique()), key="suite", bind="query-params")
    verdicts = c2.multiselect("Judge verdict", list(item_data.VERDICTS), key="verdict", bind="query-params",
                              disabled=items["verdict"].isna().all(), help="From the candidate's side.")
    tag = c3.multiselect("Tag", tags, key="tag", bind="query-params", disabled=not tags)
    c4, c5, c6 = st.columns(3)
    checks = c4.multiselect("Failed check", item_data.failed_check_options(items), key="check",
                            bind="query-params")
    text = c5.text_input("Search prompts, answers and reasons", key="q", bind="query-params")
    c6.text_input("Item (suite/id/sample)", key="item", bind="query-params",
                  help="Set by an item's 'Only this item' button or a link; clear it to see all items.")
    return item_data.ItemFilter(tuple(suites), tuple(tag), tuple(verdicts), tuple(checks), text)


def check_lines(checks: list[tuple[str, bool, str]]) -> str:
    # Material icons ship with Streamlit; emoji need a font a headless machine may lack.
    lines = [f"{PASS_MARK if passed else FAIL_MARK} {md(name)}" + (f" — {md(detail)}" if detail else "")
             for name, passed, detail in checks]
    return "  \n".join(lines) or "*(no checks)*"


def answer_column(column: Any, role: str, name: str, row: pd.Series, segments: list[Any]) -> None:
    passed = row[f"{role}_passed"]
    state = "" if passed is None or pd.isna(passed) else (" · :green[pass]" if passed else " · :red[fail]")
    column.markdown(f"**{role}** · {md(name)}{state}")
    if pd.isna(row[f"{role}_text"]):
        column.caption("No answer recorded yet.")
        return
    column.markdown(diff_markdown(segments, role))  # type: ignore[arg-type]
    column.caption(f"{md(row[f'{role}_finish_reason'])} · {int(row[f'{role}_completion_tokens'])} tokens")
    column.markdown(check_lines(row[f"{role}_checks"]))


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def judge_block(row: pd.Series) -> None:
    if row["verdict"] is None or pd.isna(row["verdict"]):
        return
    lines = [f"**Judge:** {VERDICT_BADGE.get(row['verdict'], md(row['verdict']))}"]
    if _text(row.get("error")):
        lines.append(f"- error: {md(row['error'])}")
    if pd.notna(row.get("score_base")) and pd.notna(row.get("score_candidate")):  # a single-answer grader
        lines += [f"- base graded {int(row['score_base'])}/10: {md(row['reason_ab'])}",
                  f"- candidate graded {int(row['score_candidate'])}/10: {md(row['reason_ba'])}"]
        st.markdown("\n".join(lines))
        return
    for order in ("ab", "ba"):
        roles = ORDER_ROLES[order]
        said = row[f"verdict_{order}"]
        picked = roles.get(said, said if said == "tie" else "unparsed") if isinstance(said, str) else "unparsed"
        lines.append(f"- A = {roles['A']}, B = {roles['B']}: **{md(said)}** ({md(picked)}) — "
                     f"{md(row[f'reason_{order}']) if _text(row[f'reason_{order}']) else '*(no reason)*'}")
    st.markdown("\n".join(lines))


def show_item(run: RunInfo, row: pd.Series) -> None:
    with st.container(border=True):
        head, button = st.columns([5, 1])
        sample = f" · sample {row['sample_index']}" if row["sample_index"] else ""
        tags = " ".join(f":gray-badge[{md(t)}]" for t in row["tags"])
        link = "?" + urlencode({"run": run.name, "item": row["key"]})
        head.markdown(f"**{md(row['suite'])} / {md(row['item_id'])}**{sample} {tags} · [link]({link})")
        button.button("Only this item", key=f"focus-{row['key']}", on_click=_set_item, args=(row["key"],))
        if row["prompt"] is None:
            st.caption("Prompt not available: the run has no readable copy of this suite, or it does not hold "
                       "this item.")
        else:
            st.markdown("  \n".join(f"**{md(role)}:** {md(content)}" for role, content in row["prompt"]))
        if isinstance(row["reference"], str):
            st.caption(f"reference: {md(row['reference'])}")
        base_text = row["base_text"] if isinstance(row["base_text"], str) else ""
        cand_text = row["candidate_text"] if isinstance(row["candidate_text"], str) else ""
        segments = word_diff(base_text, cand_text)
        left, right = st.columns(2)
        answer_column(left, "base", run.checkpoint_name("base"), row, segments)
        answer_column(right, "candidate", run.checkpoint_name("candidate"), row, segments)
        judge_block(row)
        with st.expander("Exact text"):
            st.code(base_text, language=None, wrap_lines=True)
            st.code(cand_text, language=None, wrap_lines=True)


st.title("Side by side")
run = report_ui.require_run()
if report_ui.stage_note(run, "generations"):
    st.stop()
judges = item_data.judge_names(report_ui.records(run, "judge"))
judge = st.selectbox("Judge", judges, key="judge") if len(judges) > 1 else (judges[0] if judges else None)
if run.stage_state("judge") == "missing":
    st.caption("This run has no judge stage: answers and checks only.")
for stage in ("checks", "judge"):  # still writing, or stopped: say so above what has landed
    if run.stage_state(stage) in ("running", "failed"):
        report_ui.stage_note(run, stage)
items = report_ui.items(run, judge)
assert items is not None
for note in report_ui.prompts(run).notes:
    st.warning(md(note))
how = filters(items)
item = str(st.session_state.get("item") or "").strip()
shown = items[items["key"] == item] if item else item_data.filter_items(items, how)
if item:
    st.button("Show all items", on_click=_set_item, args=("",))
if shown.empty:
    st.info("No item matches these filters." if not item else f"No item {md(item)} in this run.")
    st.stop()
for _, row in report_ui.paginate(shown, "items").iterrows():
    show_item(run, row)
