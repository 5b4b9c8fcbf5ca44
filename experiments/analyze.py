"""Analyse a trained run (or select models across a sweep) from its checkpoints.

    python -m experiments.analyze run_dir=DIR [peaks=FASTA|NPZ] [probes=TSV] [tf_per_block=A,B,...] [motif_ranking=encoder|decoder]
        [motif_db=jaspar|none|FILE.meme] [jaspar_release=JASPAR2024] [compare=OTHER_RUN_DIR]
        [kind=mean|concentration] [seed=0]
    python -m experiments.analyze sweep_dir=DIR [probes=TSV] [motif_db=...] [n_best=3]

Writes into ``DIR/analysis/`` (see ``bindvae.analysis.pipeline``). A user mistake prints one line,
``error: <message>``, and exits with status 2.
"""

from __future__ import annotations

import logging
import sys

from bindvae.errors import BindVAEError, ConfigError

_KEYS = {"run_dir", "sweep_dir", "peaks", "probes", "tf_per_block", "motif_db", "jaspar_release", "compare",
         "kind", "motif_ranking", "seed", "n_best", "n_probes_per_tf"}


def _parse(argv: list[str]) -> dict[str, str]:
    args = {}
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in _KEYS:
            raise ConfigError(key or item, f"unknown argument {item!r}; known: {', '.join(sorted(_KEYS))}")
        args[key] = value
    if ("run_dir" in args) == ("sweep_dir" in args):
        raise ConfigError("run_dir", "give exactly one of run_dir=DIR or sweep_dir=DIR")
    return args


def _int(args: dict, key: str, default: int) -> int:
    try:
        return int(args.get(key, default))
    except ValueError:
        raise ConfigError(key, f"must be an integer, got {args[key]!r}") from None


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        args = _parse(sys.argv[1:] if argv is None else argv)
        from bindvae.analysis.pipeline import AnalysisOptions, analyze_run, analyze_sweep

        options = AnalysisOptions(
            peaks=args.get("peaks") or None,
            probes=args.get("probes") or None,
            tf_per_block=tuple(t for t in args.get("tf_per_block", "").split(",") if t),
            motif_db=args.get("motif_db", "jaspar"),
            jaspar_release=args.get("jaspar_release", AnalysisOptions.jaspar_release),
            compare=args.get("compare") or None,
            kind=args.get("kind", "mean"),
            motif_ranking=args.get("motif_ranking", "encoder"),
            seed=_int(args, "seed", 0),
            n_probes_per_tf=_int(args, "n_probes_per_tf", 200),
        )
        if "sweep_dir" in args:
            out = analyze_sweep(args["sweep_dir"], options, n_best=_int(args, "n_best", 3))
        else:
            out = analyze_run(args["run_dir"], options)
    except BindVAEError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    logging.getLogger(__name__).info("wrote %s", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
