"""Measure the project's speed and memory figures and print one table.

    python -m experiments.benchmark [only=featurize,train,...] [quick=true] [repeats=5] [jsonl=PATH]

Each section lives in ``experiments/bench/<section>.py`` and exposes ``run(quick, repeats)``, which
returns rows ``{"benchmark": str, "value": float, "unit": str, "notes": str}``. Values are medians
over ``repeats`` runs. The table is printed as Markdown, and every row also as a JSON line (to
``jsonl`` when given) so machines can read it.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import sys

from bindvae.io import write_text_atomic
from experiments._cli import help_requested

SECTIONS = ("featurize", "train", "infer", "motifs", "scaling")


def _parse_args(argv: list[str]) -> dict[str, str]:
    args = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in {"only", "quick", "repeats", "jsonl"}:
            raise SystemExit(f"benchmark: unknown argument {item!r} (use only=, quick=, repeats=, jsonl=)")
        args[key] = value
    return args


def machine_description() -> str:
    """One line naming the machine: CPU count, platform and the JAX backend."""
    import jax

    devices = jax.devices()
    kind = devices[0].device_kind if devices else "none"
    return (
        f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()}, "
        f"JAX {jax.__version__} on {jax.default_backend()} ({len(devices)} x {kind})"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if help_requested(argv, __doc__):
        return 0
    args = _parse_args(argv)
    only = [s for s in args.get("only", ",".join(SECTIONS)).split(",") if s]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"benchmark: unknown section(s) {unknown}; known: {list(SECTIONS)}")
    quick = args.get("quick", "false").lower() in {"1", "true", "yes"}
    repeats = int(args.get("repeats", "5"))
    rows = []
    for section in only:
        module = importlib.import_module(f"benchmarks.speed.{section}")
        for row in module.run(quick=quick, repeats=repeats):
            rows.append({"section": section, **row})
    stamp = _dt.date.today().isoformat()
    header = f"Machine: {machine_description()}. Date: {stamp}. Medians of {repeats} runs."
    lines = [header, "", "| section | benchmark | median | unit | notes |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(
            f"| {row['section']} | {row['benchmark']} | {row['value']:.4g} | {row['unit']} | {row.get('notes', '')} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")
    json_lines = "".join(json.dumps({**row, "date": stamp}) + "\n" for row in rows)
    if "jsonl" in args:
        write_text_atomic(args["jsonl"], json_lines)
    else:
        sys.stdout.write(json_lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
