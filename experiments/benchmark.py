"""Measure the project's speed and memory figures and print one table.

    python -m experiments.benchmark [only=featurize,train,...] [quick=true] [repeats=5] [jsonl=PATH]

Each section lives in ``experiments/bench/<section>.py`` and exposes ``run(quick, repeats)``, which
returns rows ``{"benchmark": str, "value": float, "unit": str, "notes": str}``. Values are medians
over ``repeats`` runs. The table is printed as Markdown, and every row also as a JSON line (to
``jsonl`` when given) so machines can read it. A Hydra application (every key and its default:
``conf/benchmark.yaml``; ``--cfg job`` prints it); a mistake prints one line, ``error: <message>``, and
exits with status 2.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import json
import os
import platform
import sys

from bindvae.errors import ConfigError
from bindvae.io import write_text_atomic
from experiments._cli import App, items, text

SECTIONS = ("featurize", "train", "infer", "motifs", "scaling")


def machine_description() -> str:
    """One line naming the machine: CPU count, platform and the JAX backend."""
    import jax

    devices = jax.devices()
    kind = devices[0].device_kind if devices else "none"
    return (
        f"{platform.machine()} {os.cpu_count()} CPU cores, {platform.system()}, "
        f"JAX {jax.__version__} on {jax.default_backend()} ({len(devices)} x {kind})"
    )


def run(args: dict) -> int:
    """Runs the sections; prints the table and the JSON lines."""
    only = items(args["only"])
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        raise ConfigError("only", f"unknown section(s) {unknown}; known: {list(SECTIONS)}")
    quick_text = str(args["quick"]).lower()
    if quick_text not in {"1", "0", "true", "false", "yes", "no"}:
        raise ConfigError("quick", f"must be true or false, got {args['quick']!r}")
    quick = quick_text in {"1", "true", "yes"}
    try:
        if isinstance(args["repeats"], bool) or int(args["repeats"]) < 1:
            raise ValueError
        repeats = int(args["repeats"])
    except (TypeError, ValueError):
        raise ConfigError("repeats", f"must be a positive integer, got {args['repeats']!r}") from None
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
    if text(args["jsonl"]):
        write_text_atomic(text(args["jsonl"]), json_lines)
    else:
        sys.stdout.write(json_lines)
    return 0


APP = App("benchmark", __doc__, run, list_keys=("only",))


def main(argv: list[str] | None = None) -> int:
    """``python -m experiments.benchmark`` (Hydra's command line) or ``main([...key=value])`` from a test."""
    return APP.main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
