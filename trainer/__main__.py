"""Command line: ``python -m trainer {train,export,models} ...``."""

from __future__ import annotations

import argparse
import json
import shlex
import sys


def _train(args) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(
        data=args.data, split=args.split, model=args.model,
        model_kwargs=json.loads(args.model_kwargs) if args.model_kwargs else {},
        float_twin=args.float_twin,
        frontend=json.loads(args.frontend) if args.frontend else {},
        out=args.out, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
        final_lr=args.final_lr, schedule=args.schedule, warmup_epochs=args.warmup,
        weight_decay=args.weight_decay, label_smoothing=args.label_smoothing,
        mixup=args.mixup, wave_aug=not args.no_wave_aug, noise_prob=args.noise_prob,
        speed=args.speed, pitch=args.pitch, tempo=args.tempo, vtlp=args.vtlp,
        reverb=args.reverb, dc=args.dc, noise=args.noise,
        snr=tuple(float(v) for v in args.snr.split(',')),
        gain=tuple(float(v) for v in args.gain.split(',')),
        spec_freq_masks=args.freq_masks, spec_time_masks=args.time_masks,
        teacher=args.teacher or "", distill_weight=args.distill_weight,
        distill_temp=args.distill_temp, seed=args.seed, threads=args.threads,
        eval_every=args.eval_every, progress=not args.no_progress, bn_recompute=args.bn,
        ddp=args.ddp, cache_dir=args.cache_dir,
        init=args.init,
        command="python -m trainer " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    if args.folds:
        from .folds import parse_folds, run_folds

        run_folds(cfg, parse_folds(args.folds), resume=not args.restart)
        return 0
    train(cfg, resume=not args.restart)
    if cfg.ddp:  # the group is gone and the run written: skip the process teardown
        from .distributed import leave

        leave(0)
    return 0


def _export(args) -> int:
    from .export import export_run

    evidence = {}
    for item in args.evidence:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--evidence expects NAME=FILE.json, got {item!r}")
        evidence[name] = path
    export_run(args.run, args.out, max_clips=args.max_clips, tol=args.tol,
               which=args.checkpoint, gate=not args.no_gate, float_twin=args.float_twin or None,
               evidence=evidence or None)
    return 0


def _prune(args) -> int:
    from . import prune as P

    amount = P.parse_amount(args.amount)
    if args.sensitivity:
        P.sensitivity(args.run)
        return 0
    if not args.out:
        raise SystemExit("trainer prune: --out is required (unless --sensitivity)")
    P.prune_run(args.run, args.out, amount, args.epochs, args.lr, args.seed, teacher=args.teacher)
    return 0


def _models(args) -> int:
    from . import models

    for name in models.names():
        s = models.SPECS[name]
        print(f"{name:12s} input {s.input_shape[0]}x{s.input_shape[1]}  {s.description}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train a model")
    t.add_argument("--data", default="fsdd",
                   help="'fsdd', a folder of class folders, or a CSV manifest path,label[,fold]")
    t.add_argument("--split", default="official",
                   help="fsdd: official | validation (takes 5-9 of the training takes) | speaker:NAME; "
                        "csv, esc10: fold:K | random:F; speech_commands: test | fold:K; folder: random:F")
    t.add_argument("--folds", default="",
                   help="train one run per fold (e.g. 1-5 or 1,2,3) into OUT/foldK and print "
                        "mean ± std (replaces --split); 'speakers' (FSDD): leave-one-speaker-out "
                        "for all six speakers into OUT/SPEAKER")
    t.add_argument("--init", default="", help="start from these weights (a .pt state dict or a run's "
                   "model.pt); a classifier of another size keeps its own initial weights (pretraining); "
                   "with --folds, {fold} is each fold's run name")
    t.add_argument("--model", default="digits")
    t.add_argument("--model-kwargs", default="", help='JSON, e.g. \'{"stages": [[64,1],[128,2]]}\'')
    t.add_argument("--float-twin", action="store_true", help="train the float twin instead")
    t.add_argument("--frontend", default="", help="JSON overrides of the frontend settings")
    t.add_argument("--out", required=True)
    t.add_argument("--epochs", type=int, default=60)
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--final-lr", type=float, default=0.0)
    t.add_argument("--schedule", default="cosine", choices=["cosine", "onecycle", "constant"])
    t.add_argument("--warmup", type=float, default=1.0, help="warm-up epochs")
    t.add_argument("--weight-decay", type=float, default=1e-4,
                   help="on real-valued parameters only; latent binary weights get none")
    t.add_argument("--label-smoothing", type=float, default=0.1)
    t.add_argument("--mixup", type=float, default=0.0)
    t.add_argument("--no-wave-aug", action="store_true")
    t.add_argument("--noise-prob", type=float, default=0.3)
    t.add_argument("--speed", type=float, default=0.0,
                   help="speed perturbation: resample by a factor in [1-x, 1+x] (tempo and pitch)")
    t.add_argument("--pitch", type=float, default=0.0,
                   help="pitch/formant shift by a factor in [1-x, 1+x], duration kept")
    t.add_argument("--tempo", type=float, default=0.0, help="tempo: stretch the frames by [1-x, 1+x]")
    t.add_argument("--vtlp", type=float, default=0.0,
                   help="vocal tract length perturbation: warp the mel axis by [1-x, 1+x]")
    t.add_argument("--reverb", type=float, default=0.0,
                   help="probability of convolving with a synthetic room response (RT60 0.15-0.7 s)")
    t.add_argument("--noise", default="white", choices=["white", "mixed"],
                   help="white: white noise in the window (the default); mixed: white, pink or babble "
                        "(other training clips) on the clip")
    t.add_argument("--snr", default="20,50", help="SNR range of the added noise, dB: LOW,HIGH")
    t.add_argument("--gain", default="-6,6",
                   help="gain range, dB: LOW,HIGH (e.g. -35,6 for quiet recordings: with ref=max "
                        "features only the level against the zero padding changes)")
    t.add_argument("--dc", type=float, default=0.0, help="DC offset, uniform in +-x times the peak")
    t.add_argument("--freq-masks", type=int, default=2)
    t.add_argument("--time-masks", type=int, default=2)
    t.add_argument("--teacher", default="", help="run dir of a trained float twin (distillation); with --folds, "
                   "{fold} is each fold's run name (e.g. runs/kw-float/{fold})")
    t.add_argument("--distill-weight", type=float, default=0.5)
    t.add_argument("--distill-temp", type=float, default=2.0)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--eval-every", type=int, default=1)
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--restart", action="store_true", help="ignore an existing checkpoint")
    t.add_argument("--bn", default="augmented", choices=["augmented", "clean", "none"],
                   help="final batch-norm statistics (see trainer.train.finalize_bn)")
    t.add_argument("--cache-dir", default="", help="feature cache (default runs/cache)")
    t.add_argument("--ddp", action="store_true",
                   help="data-parallel training under torchrun (gloo; --batch-size is per process)")
    t.set_defaults(func=_train)

    e = sub.add_parser("export", help="export a trained run to a .bnn model file")
    e.add_argument("run")
    e.add_argument("--out", required=True)
    e.add_argument("--checkpoint", default="model.pt")
    e.add_argument("--max-clips", type=int, default=0, help="0 = every test clip")
    e.add_argument("--tol", type=float, default=1e-4, help="max abs logit difference allowed")
    e.add_argument("--no-gate", action="store_true",
                   help="the model runs without the speech gate by default (sound-event models)")
    e.add_argument("--float-twin", default="", help="the float twin's run dir (default RUN-float)")
    e.add_argument("--evidence", action="append", default=[], metavar="NAME=FILE",
                   help="a JSON file of figures to record in the provenance under evidence.NAME (repeatable)")
    e.set_defaults(func=_export)

    f = sub.add_parser("finalize", help="redo a run's final batch-norm statistics")
    f.add_argument("run")
    f.add_argument("--bn", default="augmented", choices=["augmented", "clean", "none"])
    f.set_defaults(func=lambda a: (__import__("trainer.train", fromlist=["x"])
                                   .finalize_run(a.run, a.bn), 0)[1])

    pr = sub.add_parser("prune", help="prune filters by cosine similarity, fine-tune, write a new run")
    pr.add_argument("run")
    pr.add_argument("--out", help="the new run directory (required unless --sensitivity)")
    pr.add_argument("--amount", default="0.3",
                    help="fraction of each binary layer's filters, or one per binary layer: 0,0,0.25,0.6")
    pr.add_argument("--sensitivity", action="store_true",
                    help="only print the accuracy after pruning each binary layer alone (25/50/75 %%), "
                         "no fine-tuning, to choose per-layer amounts on a validation fold")
    pr.add_argument("--epochs", type=int, default=5, help="fine-tuning epochs")
    pr.add_argument("--lr", type=float, default=5e-4)
    pr.add_argument("--seed", type=int, default=None)
    pr.add_argument("--teacher", default=None,
                    help="distil the fine-tuning from this run (e.g. the unpruned RUN itself); "
                         "default: the base run's own teacher, if any")
    pr.set_defaults(func=_prune)

    m = sub.add_parser("models", help="list the model names")
    m.set_defaults(func=_models)

    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
