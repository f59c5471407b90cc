"""The report as Markdown tables."""

from __future__ import annotations


def markdown(report: dict) -> str:
    """The report as tables, for docs/reliability.md and the console."""
    lines = [
        "| backend | scenario | requests | answers | ids 200 / found | "
        "stored w/o answer | half batches | fault held s | recovery s (first 200 / "
        "readyz 200 / workers) | readyz during fault |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for entry in report["runs"]:
        if "skipped" in entry:
            lines.append(f"| - | - | skipped: {entry['skipped']} |||||||")
            continue
        for s in entry["scenarios"]:
            if "skipped" in s:
                lines.append(f"| {entry['backend']} | {s['scenario']} | skipped: "
                             f"{s['skipped']} |||||||")  # fmt: skip
                continue
            answers = ", ".join(
                f"{k}: {v}" for k, v in s["answers"].items() if k != "failed"
            )
            times = " / ".join(
                str(s["recovery_s"].get(key, "-"))
                for key in ("first_200", "readyz_200", "workers_ready")
            )
            lines.append(
                f"| {entry['backend']} | {s['scenario']} | {s['requests']} | {answers} "
                f"| {s['ids_answered_200']} / {s['ids_found_with_thumbnail']} "
                f"| {s['requests_stored_without_answer']} | {s['half_stored_batches']} "
                f"| {s['fault_held_s']} | {times} | {s['readyz_during_fault']} |"
            )
    for entry in report["runs"]:
        if "fork_check" in entry:
            lines += ["", f"Fork check ({entry['backend']}): {entry['fork_check']}"]
            lines.append(f"After the restart: {entry['fork_check_after_restart']}")
    lines += ["", "Problems: " + ("; ".join(report["problems"]) or "none")]
    return "\n".join(lines) + "\n"
