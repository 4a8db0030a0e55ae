"""`python -m experiments <command>`: the suite's command line.

    python -m experiments train EXP [KEY=VALUE ...]      train, print the run folder
    python -m experiments chain NAME [KEY=VALUE ...]     train experiments/chains/NAME.yaml in order
    python -m experiments config EXP [KEY=VALUE ...]     print the resolved config as YAML
    python -m experiments summary EXP [--json]           parameters and FLOPs of the model
    python -m experiments eval --ckpt PATH --benchmark ID [--limit N] [--out-root DIR]
        [--device cpu|cuda] [KEY=VALUE ...]              score a checkpoint, write results/
    python -m experiments fit --ckpt PATH --benchmark ID [--limit N] [--steps N]
                                                         SMPL fits of BodyNet (cached for eval)
    python -m experiments tables [NAME ...] [--out-root results] [--wandb]
                                                         regenerate the paper tables
    python -m experiments predict --ckpt PATH --benchmark ID [--limit 8] [--out-root DIR]
                                                         overlay PNGs of predictions
    python -m experiments demo [--size small] [--out-root DIR] [KEY=VALUE ...]
                                                         the main job on the synthetic world
    python -m experiments occlusion-analysis --ckpt PATH [--ckpt PATH ...] --benchmark ID
        [--patch 40 --stride 8 --limit N --max-batch M]  PARE's Figures 1-3, 5 and 6
    python -m experiments attention-maps --ckpt PATH --benchmark ID [--limit 8]   Figure 7
    python -m experiments make-mannequin [--out DIR]     generate the mannequin body model
    python -m experiments convert-smpl SRC_DIR [--name smpl]
    python -m experiments synth --out DIR --size tiny|ci|small|full [--datasets a,b] [--seed N]
    python -m experiments prepare DATASET [--targets NAME ...] [--voxel-resolution R]
        [--crop-size S]
    python -m experiments check-data DATASET --data-root DIR [--split S]
    python -m experiments inspect-data DATASET --data-root DIR --split S --index I
        [--json] [--png OUT]

EXP is the name of `experiments/<EXP>.yaml` or a path to a YAML file. Every command takes
`--data-root PATH` (the parent folder of the dataset folders; sets `data_root`) and trailing
overrides: `trainer.max_steps=10` changes a value, `trainer=cpu` selects a group option,
`+trainer.profiler=simple` sets a constructor argument the config does not list. A mistake in
a config or on the command line prints one message and exits with status 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from experiments.config import ConfigError, load_base, load_experiment, resolve, to_yaml

# Data problems the data commands report as one message (exit status 1) instead of a traceback.
DATA_ERRORS: tuple[type[Exception], ...] = (FileNotFoundError, ValueError, KeyError)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return the process exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # Overrides may come on either side of options; argparse leaves the later ones over.
    stray_options = [arg for arg in extra if arg.startswith("-")]
    if stray_options:
        parser.error(f"unrecognized arguments: {' '.join(stray_options)}")
    args.overrides = [*args.overrides, *extra]
    command: Callable[[argparse.Namespace], int | None] = args.command
    try:
        status = command(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except DATA_ERRORS as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return int(status or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m experiments",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(metavar="COMMAND", required=True)

    train = commands.add_parser("train", help="train an experiment; prints the run folder")
    train.add_argument("exp", metavar="EXP", help="experiment name or path to a YAML file")
    train.add_argument(
        "--resume",
        metavar="last|auto|PATH",
        help="continue a run: 'last' (the experiment's newest run with a checkpoint), 'auto' "
        "(this run_name's folder if it has one, else start it: for requeued jobs) or a "
        "checkpoint file",
    )
    _add_common(train)
    train.set_defaults(command=_train)

    sweep = commands.add_parser(
        "sweep", help="run a sweep of experiments/sweeps/NAME.yaml (wandb agent, or offline)"
    )
    sweep.add_argument("name", metavar="NAME", help="sweep name or path to a sweep YAML file")
    sweep.add_argument("--count", type=_positive_int, default=4, help="number of trials")
    sweep.add_argument("--seed", type=int, default=0, help="seed of the offline proposals")
    sweep.add_argument("--local", action="store_true", help="offline runner even when logged in")
    _add_common(sweep)
    sweep.set_defaults(command=_sweep)

    chain = commands.add_parser(
        "chain", help="train a chain of experiments/chains/NAME.yaml, each from the one before"
    )
    chain.add_argument("name", metavar="NAME", help="chain name (e.g. bodynet)")
    _add_common(chain)
    chain.set_defaults(command=_chain)

    config = commands.add_parser("config", help="print the resolved config of an experiment")
    config.add_argument("exp", metavar="EXP", help="experiment name or path to a YAML file")
    _add_common(config)
    config.set_defaults(command=_config)

    summary = commands.add_parser("summary", help="parameters and FLOPs of an experiment's model")
    summary.add_argument("exp", metavar="EXP", help="experiment name or path to a YAML file")
    summary.add_argument("--json", action="store_true", help="print the numbers as JSON")
    _add_common(summary)
    summary.set_defaults(command=_summary)

    evaluate = commands.add_parser(
        "eval", help="score a checkpoint on a benchmark; writes results/<exp>/.../<ID>.json"
    )
    evaluate.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file")
    evaluate.add_argument(
        "--benchmark", required=True, metavar="ID", help="benchmark id (experiments/benchmarks.py)"
    )
    evaluate.add_argument(
        "--limit", type=_positive_int, metavar="N", help="score the first N samples only"
    )
    evaluate.add_argument(
        "--out-root", default="results", metavar="DIR", help="results folder (default: %(default)s)"
    )
    evaluate.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    evaluate.add_argument(
        "--fit-steps", type=_positive_int, metavar="N",
        help="SMPL fitting iterations of fit benchmarks (default: experiments.fitting.FIT_STEPS)",
    )  # fmt: skip
    _add_common(evaluate)
    evaluate.set_defaults(command=_eval)

    fit = commands.add_parser(
        "fit", help="fit SMPL to a BodyNet checkpoint's predictions on a benchmark (cached)"
    )
    fit.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file")
    fit.add_argument("--benchmark", required=True, metavar="ID", help="a fit benchmark id")
    fit.add_argument("--limit", type=_positive_int, metavar="N", help="the first N samples only")
    fit.add_argument("--out-root", default="results", metavar="DIR", help="results folder")
    fit.add_argument("--steps", type=_positive_int, metavar="N", help="fitting iterations")
    fit.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    _add_common(fit)
    fit.set_defaults(command=_fit)

    tables = commands.add_parser(
        "tables", help="regenerate paper tables (experiments/tables/); writes results/tables/"
    )
    tables.add_argument("names", nargs="*", metavar="NAME", help="tables (default: all)")
    tables.add_argument("--out-root", default="results", metavar="DIR", help="results folder")
    tables.add_argument("--device", help="torch device (default: cuda when available, else cpu)")
    tables.add_argument("--wandb", action="store_true", help="also log them as wandb tables")
    _add_common(tables)
    tables.set_defaults(command=_tables)
    _add_figure_commands(commands)

    mannequin = commands.add_parser(
        "make-mannequin", help="generate the mannequin body model (SMPL file format)"
    )
    mannequin.add_argument(
        "--out", metavar="DIR", help="output folder (default: <body_model.root>/mannequin)"
    )
    mannequin.add_argument("--overwrite", action="store_true", help="replace existing files")
    _add_common(mannequin)
    mannequin.set_defaults(command=_make_mannequin)

    convert = commands.add_parser(
        "convert-smpl", help="convert the official SMPL .pkl files into <body_model.root>/NAME/"
    )
    convert.add_argument("src_dir", metavar="SRC_DIR", help="folder with the official SMPL files")
    convert.add_argument("--name", default="smpl", help="body model name (default: smpl)")
    _add_common(convert)
    convert.set_defaults(command=_convert_smpl)
    _add_data_commands(commands)
    return parser


def _add_figure_commands(commands: argparse._SubParsersAction) -> None:
    occlusion = commands.add_parser(
        "occlusion-analysis", help="PARE's occlusion sensitivity maps, meshes and bar chart"
    )
    occlusion.add_argument(
        "--ckpt", required=True, action="append", metavar="PATH", help="checkpoint (repeatable)"
    )
    occlusion.add_argument("--benchmark", required=True, metavar="ID", help="benchmark id")
    occlusion.add_argument("--patch", type=_positive_int, default=40, help="occluder side (px)")
    occlusion.add_argument("--stride", type=_positive_int, default=8, help="occluder step (px)")
    occlusion.add_argument("--limit", type=_positive_int, metavar="N", help="first N crops only")
    occlusion.add_argument(
        "--max-batch", type=_positive_int, metavar="M", help="forward passes per batch"
    )
    occlusion.add_argument("--bar-chart", metavar="PNG", help="where to write Figure 6")
    occlusion.add_argument("--out-root", default="results", metavar="DIR")
    occlusion.add_argument("--device", help="torch device (default: cuda when available)")
    _add_common(occlusion)
    occlusion.set_defaults(command=_occlusion_analysis)

    attention = commands.add_parser("attention-maps", help="PARE's attention per joint (Fig. 7)")
    attention.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file")
    attention.add_argument("--benchmark", required=True, metavar="ID", help="benchmark id")
    attention.add_argument("--limit", type=_positive_int, default=8, metavar="N")
    attention.add_argument("--out-root", default="results", metavar="DIR")
    attention.add_argument("--device", help="torch device (default: cuda when available)")
    _add_common(attention)
    attention.set_defaults(command=_attention_maps)

    predict = commands.add_parser(
        "predict", help="overlay PNGs of a checkpoint's predictions on a benchmark's crops"
    )
    predict.add_argument("--ckpt", required=True, metavar="PATH", help="checkpoint file")
    predict.add_argument("--benchmark", required=True, metavar="ID", help="benchmark id")
    predict.add_argument("--limit", type=_positive_int, default=8, metavar="N")
    predict.add_argument("--out-root", default="results", metavar="DIR")
    predict.add_argument("--device", help="torch device (default: cuda when available)")
    _add_common(predict)
    predict.set_defaults(command=_predict)

    demo = commands.add_parser(
        "demo", help="the main job: world, train pare_tiny, pare_demo table, overlay PNGs"
    )
    demo.add_argument(
        "--size",
        default="small",
        choices=("tiny", "ci", "small", "full"),
        help="synthetic world size when it must be written (default: %(default)s)",
    )
    demo.add_argument("--out-root", default="results", metavar="DIR", help="results folder")
    _add_common(demo)
    demo.set_defaults(command=_demo)


def _add_data_commands(commands: argparse._SubParsersAction) -> None:
    synth = commands.add_parser("synth", help="write the synthetic world in native layouts")
    synth.add_argument("--out", default="data/synthetic", help="world root (default: %(default)s)")
    synth.add_argument("--size", default="small", choices=("tiny", "ci", "small", "full"))
    synth.add_argument("--datasets", help="comma-separated dataset ids (default: all)")
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--count",
        action="append",
        default=[],
        metavar="ID.NAME=N",
        help="override one count of a size, e.g. surreal.train_clips=500",
    )
    _add_common(synth)
    synth.set_defaults(command=_synth)

    prepare = commands.add_parser("prepare", help="build a dataset's derived files in cache_root")
    prepare.add_argument("dataset", metavar="DATASET")
    prepare.add_argument(
        "--targets",
        nargs="+",
        default=[],
        metavar="NAME",
        help="method targets registered for the dataset (e.g. bodynet_voxels)",
    )
    prepare.add_argument("--voxel-resolution", type=int, help="option of voxel targets")
    prepare.add_argument(
        "--crop-size", type=int, help="crop side of voxel targets (default: 2 x the resolution)"
    )
    _add_common(prepare)
    prepare.set_defaults(command=_prepare)

    check = commands.add_parser("check-data", help="validate a dataset folder; exit 1 on problems")
    check.add_argument("dataset", metavar="DATASET")
    check.add_argument("--split", help="one split (default: every split present)")
    _add_common(check)
    check.set_defaults(command=_check_data)

    inspect = commands.add_parser("inspect-data", help="show one scene record of a split")
    inspect.add_argument("dataset", metavar="DATASET")
    inspect.add_argument("--split", required=True)
    inspect.add_argument("--index", type=int, default=0)
    inspect.add_argument("--json", action="store_true", help="print the record as JSON")
    inspect.add_argument("--png", metavar="OUT", help="draw the record into a PNG file")
    _add_common(inspect)
    inspect.set_defaults(command=_inspect_data)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-root",
        metavar="PATH",
        help="parent folder of the dataset folders (default: $DATA_ROOT or data/synthetic)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="KEY=VALUE",
        help="config overrides (trainer.max_steps=10) and, except for eval and the figure "
        "commands (which read the checkpoint's config), group choices (trainer=cpu)",
    )


def _train(args: argparse.Namespace) -> None:
    from experiments.train import train  # imports Lightning (seconds): keeps --help quick

    run_dir = train(load_experiment(args.exp, args.overrides, args.data_root), args.resume)
    print(run_dir)


def _chain(args: argparse.Namespace) -> None:
    from experiments.chains import run_chain

    run_chain(args.name, args.overrides, args.data_root)


def _sweep(args: argparse.Namespace) -> None:
    from experiments import sweeps

    path = sweeps.sweep_path(args.name)
    sweep = sweeps.load_sweep(path)
    if not args.local and sweeps.wandb_online():
        sweeps.check_keys(sweep, path, args.overrides)
        sweeps.run_wandb_agent(path, args.count)
        return
    trials = sweeps.run_local(args.name, args.count, args.overrides, args.seed, args.data_root)
    print(sweeps.trials_table(trials, sweep["metric"]["name"]))


def _config(args: argparse.Namespace) -> None:
    print(to_yaml(load_experiment(args.exp, args.overrides, args.data_root)), end="")


def _summary(args: argparse.Namespace) -> None:
    from experiments.summary import print_summary

    print_summary(resolve(load_experiment(args.exp, args.overrides, args.data_root)), args.json)


def _fit(args: argparse.Namespace) -> None:
    from experiments.fitting import FIT_STEPS, fit

    done = fit(args.ckpt, args.benchmark, args.overrides, args.data_root, args.limit,
               args.out_root, args.steps or FIT_STEPS, args.device)  # fmt: skip
    rate = done["seconds"] / max(done["fitted"], 1)
    print(f"{done['cache']}: fitted {done['fitted']} samples ({rate:.1f} s each), "
          f"reused {done['reused']}")  # fmt: skip


def _eval(args: argparse.Namespace) -> None:
    from experiments.evaluate import evaluate, metrics_table  # imports Lightning and torch

    path, results = evaluate(
        args.ckpt,
        args.benchmark,
        args.overrides,
        args.data_root,
        limit=args.limit,
        out_root=args.out_root,
        device=args.device,
        fit_steps=args.fit_steps,
    )
    if int(os.environ.get("RANK", "0")) == 0:  # one report from a torchrun launch
        print(path)
        print(
            f"{results['benchmark']} on {results['num_samples']} samples of {results['data_tag']}:",
            metrics_table(results),
            sep="\n",
        )


def _tables(args: argparse.Namespace) -> int:
    from experiments import tables

    # Names and overrides share the positional arguments: KEY=VALUE words are overrides.
    names = [name for name in args.names if "=" not in name]
    overrides = [*(name for name in args.names if "=" in name), *args.overrides]
    ctx = tables.build_context(overrides, args.data_root, args.out_root, args.device)
    _, written = tables.regenerate(names, ctx, wandb=args.wandb)
    print(*(path for path in written if path.suffix == ".md"), sep="\n")
    return 1 if ctx.counts.errors else 0


def _occlusion_analysis(args: argparse.Namespace) -> None:
    from experiments.figure_commands import occlusion_analysis

    outputs, chart = occlusion_analysis(
        args.ckpt,
        args.benchmark,
        args.overrides,
        args.data_root,
        out_root=args.out_root,
        patch=args.patch,
        stride=args.stride,
        limit=args.limit,
        max_batch=args.max_batch,
        device=args.device,
        bar_chart_path=args.bar_chart,
    )
    print(*(path.parent for path in outputs), chart, sep="\n")


def _attention_maps(args: argparse.Namespace) -> None:
    from experiments.figure_commands import attention_maps

    _per_crop_figures(attention_maps, args)


def _predict(args: argparse.Namespace) -> None:
    from experiments.figure_commands import predict

    _per_crop_figures(predict, args)


def _per_crop_figures(command: Callable[..., list[Path]], args: argparse.Namespace) -> None:
    """Run a one-PNG-per-crop figure command; print the folder of its files."""
    paths = command(
        args.ckpt, args.benchmark, args.overrides, args.data_root, args.out_root, args.limit,
        args.device,
    )  # fmt: skip
    print(paths[0].parent if paths else "no crops")


def _demo(args: argparse.Namespace) -> int:
    from experiments.demo import DemoError, run_demo

    try:
        run_demo(args.overrides, args.data_root, args.out_root, args.size)
    except DemoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _make_mannequin(args: argparse.Namespace) -> None:
    cfg = load_base(args.overrides, args.data_root)
    from body.mannequin import make_mannequin

    out_dir = Path(args.out) if args.out else Path(cfg.body_model.root) / "mannequin"
    print(make_mannequin(out_dir, overwrite=args.overwrite))


def _convert_smpl(args: argparse.Namespace) -> None:
    cfg = load_base(args.overrides, args.data_root)
    from body.convert import convert_smpl

    print(convert_smpl(Path(args.src_dir), Path(cfg.body_model.root), name=args.name))


def _synth(args: argparse.Namespace) -> None:
    from experiments import data_commands

    cfg = resolve(load_base(args.overrides, args.data_root), allow_missing=True)
    datasets = args.datasets.split(",") if args.datasets else None
    data_commands.synth(Path(args.out), args.size, datasets, args.seed, args.count, cfg)


def _prepare(args: argparse.Namespace) -> None:
    from experiments import data_commands

    cfg = resolve(load_base(args.overrides, args.data_root), allow_missing=True)
    options = {"voxel_resolution": args.voxel_resolution} if args.voxel_resolution else {}
    if args.crop_size:
        options["crop_size"] = args.crop_size
    data_commands.prepare(args.dataset, args.targets, options, cfg)


def _check_data(args: argparse.Namespace) -> int:
    from experiments import data_commands

    cfg = resolve(load_base(args.overrides, args.data_root), allow_missing=True)
    return data_commands.check_data(args.dataset, args.split, cfg)


def _inspect_data(args: argparse.Namespace) -> None:
    from experiments import data_commands

    cfg = resolve(load_base(args.overrides, args.data_root), allow_missing=True)
    data_commands.inspect_data(args.dataset, args.split, args.index, args.json, args.png, cfg)
