"""The ``bitnet`` command line.

::

    bitnet infer [--model M] [--top-k K] [--json [--logits]] [--window S] [--hop S] [--threads N] [--debug] PATHS...
    bitnet summary [--json] [MODEL]
    bitnet bench [--seconds S] [--json] [MODEL]
    bitnet batch INPUT... -o OUT [--ray [ADDRESS]] ...   (bitnet/_batch_cli.py)
    bitnet --version

``infer`` takes files and directories (searched recursively for audio files) and prints
one line per file (``--json``: one JSON object per line) on stdout. A file that cannot be
classified prints one line on stderr naming it and the problem; the other files still
run and the exit status is 1 at the end. Usage errors exit with status 2. Tracebacks
appear only with ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from . import __version__
from .errors import BitnetError

#: Extensions ``infer`` picks up when it walks a directory (explicit files are always tried).
AUDIO_EXTENSIONS = frozenset(
    ".wav .wave .flac .ogg .oga .opus .mp3 .aif .aiff .aifc .au .snd .caf .w64 .rf64".split()
)

PROG = "bitnet"


def _err(msg: str) -> None:
    print(f"{PROG}: {msg}", file=sys.stderr, flush=True)


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (v > 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Classify audio with bit-packed binarized neural networks on the CPU.",
    )
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    inf = sub.add_parser("infer", help="classify audio files", description="Classify audio files and directories.")
    inf.add_argument("paths", nargs="+", metavar="PATH", help="audio files or directories (searched recursively)")
    inf.add_argument("--model", "-m", metavar="M", action="append",
                     help="model file or bundled name (digits, keywords, esc10); repeat it for an "
                          "ensemble (probabilities averaged). Default: the bundled spoken-digit model")
    inf.add_argument("--top-k", "-k", type=_positive_int, default=3, metavar="K", help="classes to show (default 3)")
    inf.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    inf.add_argument("--logits", action="store_true",
                     help="with --json: add each window's logits (float32 values, exact), to compare runs")
    inf.add_argument("--window", type=_positive_float, metavar="S", help="timeline mode: label segments of S seconds")
    inf.add_argument("--hop", type=_positive_float, metavar="S", help="hop between windows/segments, seconds (default half a window)")
    inf.add_argument("--threads", type=_positive_int, metavar="N", help="threads per run (default 1)")
    inf.add_argument("--no-gate", dest="gate", action="store_false",
                     help="classify every clip, even silence (default: clips without speech say 'no speech')")
    inf.add_argument("--debug", action="store_true", help="show tracebacks")
    inf.set_defaults(func=cmd_infer)

    summ = sub.add_parser("summary", help="show a model's layers, sizes and provenance")
    summ.add_argument("model", nargs="*", metavar="MODEL",
                      help="model files or bundled names (default: the bundled model; several = an ensemble)")
    summ.add_argument("--compare", action="store_true",
                      help="one row per model and precision (float32 / INT8 / binary): parameters, MACs, "
                           "binary MACs, bytes, latency measured now, accuracy (default: every bundled model)")
    summ.add_argument("--markdown", action="store_true", help="with --compare: a Markdown table")
    summ.add_argument("--json", action="store_true", help="print JSON")
    summ.add_argument("--debug", action="store_true", help="show tracebacks")
    summ.set_defaults(func=cmd_summary)

    ens = sub.add_parser("ensemble", help="write several models as one ensemble file",
                         description="Write MODELS as one .bnn file whose probabilities are the mean of "
                                     "theirs (they must share frontend settings and labels).")
    ens.add_argument("models", nargs="+", metavar="MODEL", help="model files or bundled names")
    ens.add_argument("-o", "--out", required=True, metavar="OUT", help="the ensemble file to write")
    ens.add_argument("--debug", action="store_true", help="show tracebacks")
    ens.set_defaults(func=cmd_ensemble)

    bench = sub.add_parser("bench", help="measure latency, throughput and memory on this machine")
    bench.add_argument("model", nargs="?", metavar="MODEL", help="model file (default: the bundled model)")
    bench.add_argument("--seconds", type=_positive_float, default=1.0, metavar="S", help="time per configuration (default 1)")
    bench.add_argument("--json", action="store_true", help="print JSON")
    bench.add_argument("--debug", action="store_true", help="show tracebacks")
    bench.set_defaults(func=cmd_bench)

    comp = sub.add_parser("compile", help="compile the kernels for this machine ahead of time",
                          description="Compile the kernels for this CPU into the per-user cache (what the first "
                                      "run does otherwise), e.g. in a Dockerfile. BITNET_CACHE_DIR sets the cache "
                                      "directory; BITNET_AOT=0 makes bitnet ignore the result.")
    comp.add_argument("--force", action="store_true", help="rebuild even if a module is there")
    comp.add_argument("--json", action="store_true", help="print JSON")
    comp.add_argument("--debug", action="store_true", help="show tracebacks")
    comp.set_defaults(func=cmd_compile)

    from .listen import add_parsers  # listen, record, show (bitnet/listen.py, bitnet/plot.py)

    add_parsers(sub)

    from ._batch_cli import add_parser as add_batch_parser  # bitnet batch (bitnet/_batch_cli.py)

    add_batch_parser(sub, _positive_int, _err)
    return p


def cmd_compile(args) -> int:
    import time

    from .compile import aot as _aot

    t0 = time.perf_counter()
    try:
        _aot.build(force=args.force)
    except Exception as e:
        if args.debug:
            raise
        _err(f"error: could not compile the kernels: {type(e).__name__}: {' '.join(str(e).split())[:500]}")
        return 1
    from .kernels import isa

    st = _aot.status()
    st["seconds"] = round(time.perf_counter() - t0, 1)
    st["kernels"] = isa.describe()          # what the kernels in use were compiled for
    if args.json:
        print(json.dumps(st))
    else:
        print(f"{st['path']}  ({st['size_bytes'] / 1e6:.1f} MB, {st['cpu_name']}, {st['isa_path']} kernels, "
              f"{st['seconds']} s)")
        if not st["enabled"]:
            _err("note: BITNET_AOT=0 is set: bitnet will not use this module")
    return 0


# --------------------------------------------------------------------------- infer


def _expand(paths):
    """Yield (path, error) in order: files as given, directories walked (sorted, audio only)."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = False
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                for fn in sorted(filenames):
                    if Path(fn).suffix.lower() in AUDIO_EXTENSIONS and not fn.startswith("."):
                        found = True
                        yield Path(dirpath) / fn, None
            if not found:
                yield p, "no audio files in this directory"
        elif p.exists():
            yield p, None
        else:
            yield p, "no such file or directory"


def _load_model(path, debug: bool):
    from .model import load

    if isinstance(path, (list, tuple)):  # --model repeated / several MODELs: an ensemble
        path = path[0] if len(path) == 1 else list(path)
        if path == []:
            path = None
    model = load(path)
    if model.untrained:
        _err(
            f"warning: {model.path.name} is an untrained placeholder (random weights); "
            "its labels are meaningless until a trained model is installed"
        )
    return model


def _format_row(path: str, pred, k: int, width: int) -> str:
    if not pred.speech:
        return f"{path:<{width}}  {'-':>6}  {'-':>6}   no speech ({pred.gate.reason})"
    alts = ", ".join(f"{lab} {p:.3f}" for lab, p in pred.top_k(k)[1:])
    extra = f"   ({alts})" if alts else ""
    win = f"   [{pred.window_probabilities.shape[0]} windows]" if pred.window_probabilities.shape[0] > 1 else ""
    return f"{path:<{width}}  {pred.label:>6}  {pred.probability:6.3f}{extra}{win}"


def cmd_infer(args) -> int:
    if args.logits and (not args.json or args.window is not None):
        _err("error: --logits needs --json (and no --window)")
        return 2
    if args.threads:
        from .parallel import set_num_threads

        set_num_threads(args.threads)
    model = _load_model(args.model, args.debug)
    items = list(_expand(args.paths))
    failures = 0
    width = min(max((len(str(p)) for p, _ in items), default=4), 100)

    show_bar = len(items) >= 8
    bar = None
    if show_bar:
        from tqdm import tqdm

        bar = tqdm(total=len(items), unit="file", file=sys.stderr, disable=None, leave=False, dynamic_ncols=True)

    # the table header goes out with the first row, so a run where every input fails
    # prints errors only
    header = [f"{'file':<{width}}  {'label':>6}  {'prob':>6}   (next)"] if not args.json and args.window is None else []

    def out(line: str) -> None:
        lines = header + [line]
        header.clear()
        for ln in lines:
            if bar is not None and not bar.disable:
                bar.write(ln, file=sys.stdout)
            else:
                print(ln, flush=False)

    for path, problem in items:
        name = str(path)
        try:
            if problem is not None:
                raise FileNotFoundError(problem)
            if args.window is not None:
                segs = model.timeline(path, window=args.window, hop=args.hop)
                if args.json:
                    out(json.dumps({"source": name, "segments": [[round(s.start, 4), round(s.end, 4), s.label, round(s.probability, 6)] for s in segs]}))
                else:
                    for s in segs:
                        out(f"{name}  {s.start:8.3f}  {s.end:8.3f}  {s.label:>6}  {s.probability:6.3f}")
            else:
                pred = model.predict(path, hop=args.hop, gate=args.gate)
                if args.json:
                    d = pred.to_dict(args.top_k)
                    if args.logits:  # the same windows again: predict keeps no logits
                        d["logits"] = model.logits(model.windows(model.read_audio(path), args.hop)[0]).tolist()
                    out(json.dumps(d))
                else:
                    out(_format_row(name, pred, args.top_k, width))
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one bad file must not stop the others
            failures += 1
            if args.debug:
                import traceback

                traceback.print_exc()
            _err(f"error: {_describe(name, e)}")
        finally:
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    sys.stdout.flush()
    if failures:
        _err(f"{failures} of {len(items)} input{'s' if len(items) != 1 else ''} failed")
    return 1 if failures else 0


def _describe(name: str, e: BaseException) -> str:
    msg = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, BitnetError):
        return msg if name in msg else f"{name}: {msg}"
    if isinstance(e, FileNotFoundError):
        return f"{name}: {msg}"
    return f"{name}: unexpected {type(e).__name__}: {msg} (run with --debug for a traceback)"


# --------------------------------------------------------------------------- summary


def cmd_summary(args) -> int:
    if args.compare:
        return _summary_compare(args)
    model = _load_model(args.model, args.debug)
    if args.json:
        print(json.dumps(model.summary(as_dict=True), default=str))
    else:
        print(model.summary())
    return 0


def _summary_compare(args) -> int:
    from .compare import compare, format_compare
    from .model import bundled_models, load

    names = args.model or list(bundled_models())
    rows = compare([load(n) for n in names], names=names)
    if args.json:
        print(json.dumps(rows))
    else:
        print(format_compare(rows, markdown=args.markdown))
        if not args.markdown:
            print("latency: batch 1, one thread, median, measured now (the engine runs the binary model; "
                  "float32/INT8 latency: python -m evaluation.zoo_table)")
    return 0


def cmd_ensemble(args) -> int:
    from .ensemble import save_ensemble
    from .model import load

    path = save_ensemble(args.models, args.out)
    print(load(path).summary().splitlines()[1] + f"; wrote {path}")
    return 0


# --------------------------------------------------------------------------- bench


def _median_time(fn, seconds: float, min_reps: int = 5) -> float:
    import statistics

    times = []
    t_end = time.perf_counter() + seconds
    while len(times) < min_reps or time.perf_counter() < t_end:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10000:
            break
    return statistics.median(times)


def cmd_bench(args) -> int:
    import platform
    import resource

    import numpy as np

    from .parallel import get_num_threads, set_num_threads

    model = _load_model(args.model, args.debug)
    fe = model.frontend
    rng = np.random.default_rng(0)
    y = (0.1 * rng.standard_normal(model.window_samples)).astype(np.float32)
    one = model.windows(y)[0]
    results = []
    t0 = time.perf_counter()
    model.logits(one)  # warm up (compiles on a cold cache)
    warm = time.perf_counter() - t0
    import numba

    max_threads = numba.config.NUMBA_NUM_THREADS
    before = get_num_threads()
    for threads in (1, 2):
        if threads > max_threads:
            continue
        set_num_threads(threads)
        for batch in (1, 64):
            x = np.repeat(one, batch, axis=0)
            model.logits(x)
            med = _median_time(lambda: model.logits(x), args.seconds)
            results.append({"threads": threads, "batch": batch, "median_ms": med * 1e3, "clips_per_s": batch / med})
    set_num_threads(before)
    e2e = _median_time(lambda: model.predict(y, sample_rate=model.sample_rate), args.seconds)
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if sys.platform == "darwin":
        rss_kb //= 1024
    info = {
        "model": str(model.path),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
        "first_run_s": warm,
        "runs": results,
        "end_to_end_ms": e2e * 1e3,
        "peak_rss_mb": rss_kb / 1024,
        "window": f"{fe.n_mels}x{fe.frames} at {fe.sample_rate} Hz",
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"model     {info['model']}  ({info['window']})")
    print(f"machine   {info['machine']}, {info['cpus']} CPUs, numba {numba.__version__}")
    print(f"first run {warm * 1e3:.1f} ms (includes loading or compiling kernels)")
    print(f"{'threads':>7}  {'batch':>5}  {'median ms':>10}  {'clips/s':>10}")
    for r in results:
        print(f"{r['threads']:>7}  {r['batch']:>5}  {r['median_ms']:>10.3f}  {r['clips_per_s']:>10.0f}")
    print(f"end to end (1 s clip, frontend + graph, 1 thread): {e2e * 1e3:.3f} ms")
    print(f"peak RSS  {info['peak_rss_mb']:.1f} MB")
    return 0


# --------------------------------------------------------------------------- entry point


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except BitnetError as e:
        if getattr(args, "debug", False):
            raise
        _err(f"error: {' '.join(str(e).split())}")
        return 1
    except Exception as e:
        if getattr(args, "debug", False):
            raise
        _err(f"error: unexpected {type(e).__name__}: {' '.join(str(e).split())} (run with --debug for a traceback)")
        return 1
