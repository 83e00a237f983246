"""``bitnet batch``: the command-line face of :func:`bitnet.batch`.

::

    bitnet batch INPUT... -o OUT.parquet|OUT.jsonl [--model M] [--top-k K] [--hop S]
                 [--workers N] [--ray [ADDRESS]] [--cpus-per-worker C] [--chunk-size B]
                 [--restart] [--json] [--debug]

Prints a one-line summary (``--json``: a JSON object) on stdout when done; exit status 0
when every input was classified, 1 when some inputs are error rows (their count is
printed on stderr), 2 for usage errors.
"""

from __future__ import annotations

import json
import sys


def add_parser(sub, positive_int, err) -> None:
    """Register ``batch`` on the main parser's subparsers."""
    b = sub.add_parser(
        "batch", help="classify an archive of clips into a Parquet or JSON Lines file",
        description="Classify every clip of a directory tree, glob or CSV/Parquet manifest (local paths or "
                    "fsspec URLs) and write one row per clip. Resumable: a rerun with the same output skips "
                    "the clips already written. Runs on local processes, or on a Ray cluster with --ray.")
    b.add_argument("inputs", nargs="+", metavar="INPUT", help="directories, globs, .csv/.parquet manifests, files")
    b.add_argument("--output", "-o", required=True, metavar="OUT", help="result file: .parquet or .jsonl")
    b.add_argument("--model", "-m", metavar="M", help="model file (default: the bundled model)")
    b.add_argument("--top-k", "-k", type=positive_int, default=5, metavar="K", help="classes kept per row (default 5)")
    b.add_argument("--hop", type=float, metavar="S", help="hop between windows of long clips, seconds")
    b.add_argument("--workers", "-j", type=int, metavar="N",
                   help="local processes (0: a loop in this process; default: all CPUs), or Ray actors")
    b.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                   help="run on Ray: the cluster at ADDRESS (e.g. ray://head:10001), or without ADDRESS the one "
                        "in RAY_ADDRESS / started on this machine, else a new local one")
    b.add_argument("--cpus-per-worker", type=float, default=1, metavar="C", help="Ray: CPUs per actor (default 1)")
    b.add_argument("--chunk-size", type=positive_int, metavar="B", help="clips per task (default 32, Ray 64)")
    b.add_argument("--restart", action="store_true", help="start the output afresh instead of resuming")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    b.add_argument("--debug", action="store_true", help="show tracebacks")
    b.set_defaults(func=lambda args: cmd_batch(args, err))


def cmd_batch(args, err) -> int:
    from .batch import batch

    if args.workers is not None and args.workers < 0:
        err("error: --workers must be 0 or more")
        return 2
    s = batch(args.inputs, args.output, model=args.model, top_k=args.top_k, hop=args.hop, workers=args.workers,
              ray=args.ray, cpus_per_worker=args.cpus_per_worker, chunk_size=args.chunk_size,
              resume=not args.restart)
    if args.json:
        print(json.dumps(s.to_dict()))
    else:
        print(f"{s.output}: {s.written} clips classified in {s.seconds:.1f} s ({s.clips_per_s:.0f} clips/s, "
              f"{s.backend}, {s.workers} workers); {s.skipped} already done; {s.inputs} inputs")
    sys.stdout.flush()
    if s.errors:
        err(f"{s.errors} of {s.inputs} inputs failed (rows with an error in {s.output})")
        return 1
    return 0
