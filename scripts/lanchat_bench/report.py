"""The report: rounds summed up, lanchat / other ratios, and the text tables.

Owns: `summarize` (per scenario, transport, server and size the round with
the median key metric, plus every round's key metric), `ratios` and
`round_ratios` (lanchat / other), and `report` (the tables). It works on the
JSON rows (plain dicts), so what it prints is what --json prints.
Must not import: the runner, the launchers, the loop or the CLI.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .procstat import rnd
from .scenarios import REGISTRY


def key_metric(scenario: str) -> str:
    """The metric whose median round is reported when a scenario runs several rounds."""
    return REGISTRY[scenario].key_metric


def _group_key(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["scenario"], row["transport"], row["server"], row.get("conns"))


def _ratio(a: Any, b: Any) -> float | None:
    return rnd(a / b, 3) if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else None


def summarize(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per scenario, transport, server and size: the round with the median key metric.

    The chosen row keeps its own figures (they belong together), plus `runs`
    and the key metric of every round in order (`rounds`). An error in any
    round is reported on the summary row, so it cannot hide behind a median.
    """
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(_group_key(row), []).append(row)
    summary: list[dict[str, Any]] = []
    for group in groups.values():
        metric = key_metric(group[0]["scenario"])
        measured = sorted((r for r in group if isinstance(r.get(metric), (int, float))), key=lambda r: r[metric])
        chosen = dict(measured[(len(measured) - 1) // 2] if measured else group[-1])
        chosen["runs"] = len(group)
        chosen["rounds"] = {metric: [r.get(metric) for r in group]}
        failed = [(number, r["error"]) for number, r in enumerate(group, 1) if r.get("error")]
        if failed and len(group) > 1:
            number, error = failed[0]
            chosen["error"] = f"round {number} of {len(group)}: {error}"
        summary.append(chosen)
    return summary


def round_ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """lanchat / other for the key metric, round by round (rounds run back to back)."""
    mine = {(r["scenario"], r["transport"], r.get("conns"), r.get("round")): r
            for r in rows if r["server"] == "lanchat"}
    found: dict[tuple[Any, ...], list[float | None]] = {}
    for row in rows:
        if row["server"] == "lanchat":
            continue
        ours = mine.get((row["scenario"], row["transport"], row.get("conns"), row.get("round")))
        if ours is None:
            continue
        metric = key_metric(row["scenario"])
        ratio = _ratio(ours.get(metric), row.get(metric))
        found.setdefault((row["scenario"], row["transport"], row.get("conns"), row["server"], metric), []).append(ratio)
    return [{"scenario": s, "transport": t, "conns": c, "other": o, "metric": m, "by_round": v}
            for (s, t, c, o, m), v in found.items()]


def ratios(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """lanchat / other for each headline metric of each comparable pair."""
    out: list[dict[str, Any]] = []
    lanchat = {(r["scenario"], r["transport"], r.get("conns")): r
               for r in rows if r["server"] == "lanchat"}
    for row in rows:
        if row["server"] == "lanchat":
            continue
        mine = lanchat.get((row["scenario"], row["transport"], row.get("conns")))
        if mine is None:
            continue
        scenario = REGISTRY.get(row["scenario"])
        values = {metric: _ratio(mine.get(metric), row.get(metric))
                  for metric in (scenario.headline if scenario else ())}
        out.append({"scenario": row["scenario"], "transport": row["transport"],
                    "conns": row.get("conns"), "other": row["server"], "ratios": values})
    return out


def render_table(headers: Sequence[str], body: Sequence[Sequence[Any]]) -> str:
    cells = [[str(h) for h in headers]] + [["-" if v is None else str(v) for v in row] for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def figures(values: Sequence[float | None]) -> str:
    """Numbers for one line of text: thousands grouped, small ones as they are."""
    return " ".join("-" if v is None else f"{v:,.0f}" if abs(v) >= 1000 else f"{v:g}" for v in values)


def report(rows: Sequence[dict[str, Any]], compared: Sequence[dict[str, Any]],
           by_round: Sequence[dict[str, Any]] = ()) -> str:
    """The text tables: per scenario its table, errors, ratios and every round's key metric."""
    parts: list[str] = []
    for scenario in REGISTRY.values():
        mine = [r for r in rows if r["scenario"] == scenario.name]
        if not mine:
            continue
        columns = scenario.columns
        parts.append(f"== {scenario.name} ==")
        parts.append(render_table([h for h, _ in columns], [[r.get(k) for _, k in columns] for r in mine]))
        for r in mine:
            if r.get("error"):
                parts.append(f"  ! {r['server']} {r['transport']}: {r['error']}")
        mine_ratios = [c for c in compared if c["scenario"] == scenario.name]
        if mine_ratios:
            metrics = scenario.headline
            parts.append(render_table(
                ["lanchat / other", *metrics],
                [[c["other"] + (f" C={c['conns']}" if c.get("conns") else ""),
                  *[c["ratios"].get(m) for m in metrics]] for c in mine_ratios]))
        for r in mine:
            values = r.get("rounds", {})
            for metric, numbers in values.items():
                if len(numbers) > 1:
                    parts.append(f"  {r['server']} {r['transport']} {metric} by round: {figures(numbers)}")
        for c in by_round:
            if c["scenario"] == scenario.name and len(c["by_round"]) > 1:
                parts.append(f"  lanchat/{c['other']} {c['metric']} by round: {figures(c['by_round'])}")
        parts.append("")
    return "\n".join(parts)
