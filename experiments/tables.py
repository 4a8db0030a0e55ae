"""`python -m experiments tables`: regenerate the papers' tables from checkpoints.

    python -m experiments tables [NAME ...] [--out-root results] [--device cpu|cuda]
        [--wandb] [--data-root DIR] [KEY=VALUE ...]

A table is declared in `experiments/tables/<paper>_<table>.yaml`:

    title: "PARE (Kocabas et al., ICCV 2021), Table 1: 3DPW test"
    select: {monitor: val/pw3d_test/pa_mpjpe_mm, mode: min}   # what `best` means
    columns:                                # one benchmark of experiments/benchmarks.py and
      - {benchmark: pw3d_test, metric: mpjpe_mm, label: MPJPE}      # one of its metrics
      - {benchmark: h36m_x, metric: mpjpe_mm, label: MPJPE, unavailable: "needs a reader"}
    rows:
      - {label: SPIN, paper: [96.9, 59.2, null]}                  # a method not in the suite
      - {label: PARE R50, experiment: pare_r50, checkpoint: best, paper: [82.9, 52.3, 99.7]}

A row's `checkpoint` is `best` (the checkpoint the experiment's latest run selected on the
table's `select.monitor`: the `best_model_path` its ModelCheckpoint recorded), `last` (that
run's `last.ckpt`) or a file path. The latest run is the run folder under
`<output_root>/<exp>/` whose newest checkpoint is newest. `baseline: true` adds a row with the
baseline that `eval` scores beside the model (the training-mean body for regressors). A column
with `unavailable` is a benchmark the suite cannot score yet: its cells say why. A row's
`benchmarks` maps a column's benchmark to another one that this row is scored on instead (the
same metric under another protocol: BodyNet's Table 2 scores SMPLify++ on
`surreal_smplifypp` in the `surreal_bodynet_fit` column).

What is missing is evaluated through `experiments.evaluate.evaluate` (the `eval` command);
results already on disk are reused when they were computed for the same checkpoint (sha256),
benchmark, data tag, body model (sha256) and code (revision and the hash of any uncommitted
changes, `experiments.run_info.git_state`) on every sample. A row without a checkpoint renders
as "not trained" and is listed on stderr; the command does not fail for it. An evaluation that
fails (a dataset missing from the data root) renders as "error", is reported on stderr, and
the command exits 1 after writing every table.

Each table is written to `<out-root>/tables/<name>.md`, `.tex` and `.csv`: our numbers beside
the paper's, the data used (taken from the results files: a table built from synthetic-world
results says so in its title), the code revision and the date. With `--wandb` the tables are
also logged as wandb tables to one run (offline unless `WANDB_MODE=online`).

Written here rather than with a table library: the three formats are a few lines each, and
the reuse rules are the suite's own.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from datamodules.base import body_model_sha256
from experiments.benchmarks import BENCHMARKS, get_benchmark
from experiments.checkpointing import check_loadable, run_checkpoint
from experiments.config import ConfigError, load_base, resolve
from experiments.run_info import CHECKPOINT_KEY, git_state

log = logging.getLogger(__name__)

TABLES_DIR = Path(__file__).resolve().parent / "tables"
CHECKPOINT_CHOICES = ("best", "last")
NOT_TRAINED = "not trained"
NOT_IN_SUITE = "not in the suite"
ERROR = "error"
DASH = "–"
ROW_KEYS = {"label", "experiment", "checkpoint", "paper", "baseline", "note", "benchmarks"}
COLUMN_KEYS = {"benchmark", "metric", "label", "unavailable"}
TABLE_KEYS = {"title", "source", "select", "columns", "rows"}

Evaluator = Callable[..., tuple[Path, dict[str, Any]]]


# ----------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class Column:
    benchmark: str
    metric: str
    label: str
    unavailable: str | None = None


@dataclass(frozen=True)
class Row:
    label: str
    experiment: str | None = None
    checkpoint: str = "best"
    paper: tuple[float | None, ...] = ()
    baseline: bool = False
    note: str | None = None
    benchmarks: tuple[tuple[str, str], ...] = ()  # (column benchmark, this row's benchmark)

    def benchmark(self, column: Column) -> str:
        """The benchmark this row is scored on in `column`."""
        return dict(self.benchmarks).get(column.benchmark, column.benchmark)


@dataclass(frozen=True)
class TableSpec:
    name: str
    path: Path
    title: str
    source: str | None
    monitor: str | None
    mode: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]


def table_names() -> list[str]:
    """The tables declared in `experiments/tables/`, sorted."""
    return sorted(path.stem for path in TABLES_DIR.glob("*.yaml"))


def table_path(name: str) -> Path:
    """`experiments/tables/<name>.yaml`, or `name` itself when it is a YAML file's path."""
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    path = TABLES_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"Unknown table '{name}'. Tables: {', '.join(table_names())}.")
    return path


def load_table(path: Path) -> TableSpec:
    """The table declared in `path`; ConfigError naming the file and the key on a mistake."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a table is a mapping with {sorted(TABLE_KEYS)}")
    _check_keys(raw, TABLE_KEYS, {"title", "columns", "rows"}, path, "the table")
    columns = tuple(_column(entry, path, i) for i, entry in enumerate(_list(raw, "columns", path)))
    rows = tuple(_row(entry, path, i, columns) for i, entry in enumerate(_list(raw, "rows", path)))
    select = raw.get("select") or {}
    if not isinstance(select, dict) or set(select) - {"monitor", "mode"}:
        raise ConfigError(f"{path}: 'select' is {{monitor: METRIC, mode: min|max}}")
    mode = select.get("mode", "min")
    if mode not in ("min", "max"):
        raise ConfigError(f"{path}: select.mode must be min or max, not {mode!r}")
    if any(r.experiment and r.checkpoint == "best" for r in rows) and not select.get("monitor"):
        raise ConfigError(f"{path}: rows use checkpoint 'best' but select.monitor is not set")
    return TableSpec(
        name=path.stem, path=path, title=str(raw["title"]), source=raw.get("source"),
        monitor=select.get("monitor"), mode=mode, columns=columns, rows=rows,
    )  # fmt: skip


def _check_keys(entry: dict, allowed: set, required: set, path: Path, where: str) -> None:
    unknown, missing = set(entry) - allowed, required - set(entry)
    if unknown:
        raise ConfigError(f"{path}: {where} has unknown keys {sorted(unknown)} ({sorted(allowed)})")
    if missing:
        raise ConfigError(f"{path}: {where} lacks {sorted(missing)}")


def _list(raw: dict, key: str, path: Path) -> list:
    value = raw[key]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{path}: '{key}' must be a non-empty list")
    return value


def _column(entry: Any, path: Path, index: int) -> Column:
    where = f"columns[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: {where} must be a mapping with benchmark, metric, label")
    _check_keys(entry, COLUMN_KEYS, {"benchmark", "metric", "label"}, path, where)
    column = Column(**{key: entry[key] for key in entry})
    if column.unavailable is None:
        _check_metric(column.benchmark, column.metric, path, where)
    return column


def _check_metric(benchmark: str, metric: str, path: Path, where: str) -> None:
    """ConfigError unless `benchmark` is registered and reports `metric`."""
    if benchmark not in BENCHMARKS:
        raise ConfigError(
            f"{path}: {where}: unknown benchmark '{benchmark}' (registered: "
            f"{', '.join(sorted(BENCHMARKS))}; mark a benchmark the suite cannot score "
            "with `unavailable: WHY`)"
        )
    names = [m.name for m in get_benchmark(benchmark).metrics()]
    if not any(metric == n or metric.startswith(f"{n}/") for n in names):
        raise ConfigError(
            f"{path}: {where}: benchmark {benchmark} has no metric '{metric}' (its metrics: "
            f"{', '.join(names)})"
        )


def _row_benchmarks(
    entry: dict, columns: Sequence[Column], path: Path, where: str
) -> tuple[tuple[str, str], ...]:
    """A row's `benchmarks` substitutions, checked against the columns they replace."""
    raw = entry.get("benchmarks") or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: {where}.benchmarks maps a column's benchmark to another")
    by_benchmark = {c.benchmark: c for c in columns if c.unavailable is None}
    for source, target in raw.items():
        if source not in by_benchmark:
            raise ConfigError(
                f"{path}: {where}.benchmarks: no column scores '{source}' (columns: "
                f"{', '.join(sorted(by_benchmark))})"
            )
        for column in columns:
            if column.benchmark == source:
                _check_metric(str(target), column.metric, path, f"{where}.benchmarks")
    return tuple((str(k), str(v)) for k, v in raw.items())


def _row(entry: Any, path: Path, index: int, columns: Sequence[Column]) -> Row:
    where = f"rows[{index}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{path}: {where} must be a mapping with at least a label")
    _check_keys(entry, ROW_KEYS, {"label"}, path, where)
    num_columns = len(columns)
    paper = entry.get("paper") or [None] * num_columns
    if not isinstance(paper, list) or len(paper) != num_columns:
        raise ConfigError(f"{path}: {where}.paper must list {num_columns} numbers (null: none)")
    if any(value is not None and not isinstance(value, int | float) for value in paper):
        raise ConfigError(f"{path}: {where}.paper holds a value that is not a number: {paper}")
    values = {key: entry[key] for key in entry if key not in ("paper", "benchmarks")}
    return Row(
        paper=tuple(None if v is None else float(v) for v in paper),
        benchmarks=_row_benchmarks(entry, columns, path, where),
        **values,
    )


# ----------------------------------------------------------------------------- checkpoints


def latest_run(experiment_dir: Path) -> Path | None:
    """The run folder of `experiment_dir` whose newest checkpoint is the newest, or None."""
    newest: tuple[int, Path] | None = None
    for run in (path for path in experiment_dir.glob("*") if path.is_dir()):
        stamps = [c.stat().st_mtime_ns for c in (run / "checkpoints").glob("*.ckpt")]
        if stamps and (newest is None or max(stamps) > newest[0]):
            newest = (max(stamps), run)
    return None if newest is None else newest[1]


def find_checkpoint(row: Row, output_root: Path, monitor: str | None) -> tuple[Path | None, str]:
    """(the checkpoint of `row`, '') or (None, why there is none): module docstring."""
    assert row.experiment is not None
    if row.checkpoint not in CHECKPOINT_CHOICES:
        path = Path(row.checkpoint)
        return (path, "") if path.is_file() else (None, f"checkpoint {path} does not exist")
    experiment_dir = output_root / row.experiment
    run = latest_run(experiment_dir)
    if run is None:
        return None, f"no run of {row.experiment} under {experiment_dir} has a checkpoint"
    if row.checkpoint == "last":
        found = run_checkpoint(run)
        return (found, "") if found else (None, f"run {run} has no last.ckpt")
    return best_checkpoint(run, str(monitor))


def best_checkpoint(run: Path, monitor: str) -> tuple[Path | None, str]:
    """The checkpoint that run `run`'s ModelCheckpoint on `monitor` recorded as its best, as
    stored in the run's newest checkpoint (the path re-rooted in the run's own folder)."""
    folder = run / "checkpoints"
    for path in sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime_ns, reverse=True):
        state = _model_checkpoint_state(path, monitor)
        if state is not None and state.get("best_model_path"):
            best = folder / Path(str(state["best_model_path"])).name
            if best.is_file():
                return best, ""
            return None, f"{path} names the best checkpoint {best.name}, which is not in {folder}"
    return None, f"no checkpoint of run {run} was selected on {monitor}"


def _model_checkpoint_state(path: Path, monitor: str) -> dict[str, Any] | None:
    """The state of the ModelCheckpoint on `monitor` kept in checkpoint `path`, or None."""
    try:
        checkpoint = check_loadable(path, mmap=True)
    except ValueError as error:  # a truncated or foreign file: skipped, said so
        log.warning("skipping %s: %s", path, error)
        return None
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if str(key).startswith("ModelCheckpoint") and state.get("monitor") == monitor:
            return state
    return None


# ----------------------------------------------------------------------------- results


@dataclass
class RowResult:
    """One rendered row: `values` holds our numbers, `status` '' when they were measured."""

    label: str
    paper: tuple[float | None, ...]
    values: list[float | None]
    status: str = ""
    checkpoint: Path | None = None
    note: str | None = None
    data_tags: set[str] = field(default_factory=set)


@dataclass
class BuiltTable:
    spec: TableSpec
    rows: list[RowResult]
    data: dict[str, bool]  # data tag -> synthetic, over the results used
    code: dict[str, Any]
    date: str


@dataclass
class Counts:
    """How many results were reused from disk and how many evaluated (the log line)."""

    reused: int = 0
    evaluated: int = 0
    errors: list[str] = field(default_factory=list)
    not_trained: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What every table of one invocation shares."""

    output_root: Path
    results_root: Path
    data_root: Path
    body_model_root: Path
    overrides: Sequence[str]
    device: str | None
    code: dict[str, Any]
    evaluate: Evaluator
    counts: Counts = field(default_factory=Counts)
    cache: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def build_context(
    overrides: Sequence[str] = (),
    data_root: str | Path | None = None,
    results_root: str | Path = "results",
    device: str | None = None,
    evaluate: Evaluator | None = None,
) -> Context:
    """The shared context from the suite's base config (paths, `output_root`) and `overrides`."""
    from experiments.evaluate import evaluate as evaluate_checkpoint

    keys = [override.split("=", 1)[0] for override in overrides]
    refused = [o for o, key in zip(overrides, keys, strict=True) if key not in ALLOWED_OVERRIDES]
    if refused:
        raise ConfigError(
            f"tables takes overrides of {', '.join(ALLOWED_OVERRIDES)} only (values that do not "
            f"change the numbers, so reused results stay valid), not {' '.join(refused)}"
        )
    path_overrides = [o for o in overrides if o.split("=", 1)[0] in _BASE_KEYS]
    base = resolve(load_base(path_overrides, data_root), allow_missing=True)
    return Context(
        output_root=Path(base.output_root), results_root=Path(results_root),
        data_root=Path(base.data_root), body_model_root=Path(base.body_model.root),
        overrides=[o for o in overrides if o.split("=", 1)[0] != "output_root"],
        device=device, code=git_state(), evaluate=evaluate or evaluate_checkpoint,
    )  # fmt: skip


_BASE_KEYS = ("data_root", "cache_root", "body_model.root", "output_root")
ALLOWED_OVERRIDES = (*_BASE_KEYS, "allow_mannequin_on_real_data", "data.num_workers",
                     "+data.eval_batch_size")  # fmt: skip


def same_code(stored: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    """Whether results computed by code `stored` count as computed by `current`
    (`git_state` records; unknown revisions never match)."""
    if not stored or current.get("revision") is None:
        return False
    keys = ("revision", "dirty", "changes_sha256")
    return all(stored.get(key) == current.get(key) for key in keys)


def results_for(ctx: Context, checkpoint: Path, benchmark: str) -> dict[str, Any]:
    """The results of `checkpoint` on `benchmark`: reused from disk when valid, else evaluated."""
    from experiments.evaluate import data_tag, file_sha256, load_checkpoint, results_dir

    key = (str(checkpoint.resolve()), benchmark)
    if key in ctx.cache:
        return ctx.cache[key]
    sha = file_sha256(checkpoint)
    config = load_checkpoint(checkpoint, mmap=True)[CHECKPOINT_KEY]["config"]
    tag = data_tag(ctx.data_root)
    path = results_dir(ctx.results_root, config["exp_name"], sha, tag) / f"{benchmark}.json"
    stored = _reusable(path, ctx, config["body_model"]["name"])
    if stored is not None:
        ctx.counts.reused += 1
        ctx.cache[key] = stored
        return stored
    _, results = ctx.evaluate(
        checkpoint, benchmark, ctx.overrides, ctx.data_root, out_root=ctx.results_root,
        device=ctx.device,
    )  # fmt: skip
    ctx.counts.evaluated += 1
    ctx.cache[key] = results
    return results


def _reusable(path: Path, ctx: Context, body_model_name: str) -> dict[str, Any] | None:
    """The results file `path` when it may be reused (module docstring), else None."""
    if not path.is_file():
        return None
    try:
        stored = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        log.warning("re-evaluating: cannot read %s: %s", path, error)
        return None
    model_dir = ctx.body_model_root / body_model_name
    if not (model_dir / "smpl").is_dir():
        return None
    try:
        body_sha = body_model_sha256(model_dir)
    except OSError:
        return None
    valid = (
        stored.get("limit") is None
        and (stored.get("body_model") or {}).get("sha256") == body_sha
        and same_code(stored.get("code_revision"), ctx.code)
    )
    return stored if valid else None


def build_table(spec: TableSpec, ctx: Context) -> BuiltTable:
    """Our numbers for every row of `spec` (evaluating what is missing), beside the paper's."""
    rows: list[RowResult] = []
    data: dict[str, bool] = {}
    for row in spec.rows:
        result = RowResult(row.label, row.paper, [None] * len(spec.columns), note=row.note)
        rows.append(result)
        if row.experiment is None:
            result.status = NOT_IN_SUITE
            continue
        checkpoint, why = find_checkpoint(row, ctx.output_root, spec.monitor)
        if checkpoint is None:
            result.status = NOT_TRAINED
            ctx.counts.not_trained.append(f"{spec.name}: {row.label} ({row.experiment}): {why}")
            continue
        result.checkpoint = checkpoint
        baseline = RowResult(f"{row.label}: baseline", (None,) * len(spec.columns),
                             [None] * len(spec.columns))  # fmt: skip
        for index, column in enumerate(spec.columns):
            if column.unavailable is not None:
                continue
            benchmark = row.benchmark(column)
            try:
                results = results_for(ctx, checkpoint, benchmark)
            except (FileNotFoundError, ValueError, KeyError, ConfigError) as error:
                result.status = ERROR
                ctx.counts.errors.append(f"{spec.name}: {row.label} on {benchmark}: {error}")
                continue
            data[results["data_tag"]] = bool(results["synthetic"])
            result.data_tags.add(results["data_tag"])
            result.values[index] = results["metrics"].get(column.metric)
            baseline.label = f"{row.label}: {results['baseline']['name']} (baseline)"
            baseline.values[index] = results["baseline"]["metrics"].get(column.metric)
        if row.baseline:
            rows.append(baseline)
    date = datetime.date.today().isoformat()
    return BuiltTable(spec, rows, data, ctx.code, date)


# ----------------------------------------------------------------------------- rendering


def data_label(table: BuiltTable) -> str:
    """What the numbers were measured on, from the results files."""
    if not table.data:
        return "no results yet"
    tags = ", ".join(sorted(table.data))
    if any(table.data.values()):
        return f"SYNTHETIC WORLD ({tags}): not a real benchmark result"
    return f"real data ({tags})"


def full_title(table: BuiltTable) -> str:
    synthetic = any(table.data.values())
    return (
        f"[Synthetic world, not a real benchmark] {table.spec.title}"
        if synthetic
        else (table.spec.title)
    )


def code_label(code: Mapping[str, Any]) -> str:
    revision = code.get("revision")
    if revision is None:
        return "unknown code revision"
    changes = code.get("changes_sha256")
    return f"{revision[:12]}" + (f" + uncommitted changes {changes[:12]}" if changes else "")


def has_paper(table: BuiltTable) -> bool:
    """Whether the table declares paper numbers (a table without any has no paper columns)."""
    return any(value is not None for row in table.spec.rows for value in row.paper)


def header(table: BuiltTable) -> list[str]:
    """Column names: the method, then 'ours' (and 'paper') per metric column."""
    names = ["Method"]
    for column in table.spec.columns:
        names.append(f"{column.label} ({column.benchmark}) ours")
        names += [f"{column.label} paper"] if has_paper(table) else []
    return [*names, "Checkpoint"]


def cells(table: BuiltTable, row: RowResult) -> list[str]:
    """One row's cells as text: numbers to one decimal, statuses in words."""
    out = [row.label]
    for index, column in enumerate(table.spec.columns):
        out.append(_ours(row, column, row.values[index]))
        out += [_format(row.paper[index])] if has_paper(table) else []
    out.append(str(row.checkpoint) if row.checkpoint else (row.note or ""))
    return out


def _ours(row: RowResult, column: Column, value: float | None) -> str:
    if row.status == NOT_IN_SUITE:
        return row.status
    if column.unavailable is not None:
        return column.unavailable
    if row.status == NOT_TRAINED:
        return row.status
    if value is None and row.status == ERROR:
        return ERROR
    return _format(value)


def _format(value: float | None) -> str:
    return DASH if value is None else f"{value:.1f}"


def render_markdown(table: BuiltTable) -> str:
    names = header(table)
    lines = [
        f"# {full_title(table)}",
        "",
        f"Data: {data_label(table)}. Generated {table.date} by `python -m experiments tables "
        f"{table.spec.name}` at code {code_label(table.code)}."
        + (f" Paper numbers: {table.spec.source}." if table.spec.source else ""),
        "",
        "| " + " | ".join(names) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(names) - 2) + ["---"]) + "|",
    ]
    lines += ["| " + " | ".join(cells(table, row)) + " |" for row in table.rows]
    return "\n".join(lines) + "\n"


def render_csv(table: BuiltTable) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    names = ["method", "status"]
    for column in table.spec.columns:
        names += [
            f"{column.benchmark}/{column.metric}/ours",
            f"{column.benchmark}/{column.metric}/paper",
        ]
    writer.writerow([*names, "checkpoint", "data", "code", "date"])
    for row in table.rows:
        numbers: list[str] = []
        for index in range(len(table.spec.columns)):
            numbers += [_plain(row.values[index]), _plain(row.paper[index])]
        writer.writerow([
            row.label, row.status, *numbers, row.checkpoint or "", ";".join(sorted(row.data_tags)),
            code_label(table.code), table.date,
        ])  # fmt: skip
    return buffer.getvalue()


def _plain(value: float | None) -> str:
    return "" if value is None else repr(float(value))


def render_latex(table: BuiltTable) -> str:
    columns = table.spec.columns
    per = ["ours", "paper"] if has_paper(table) else ["ours"]
    spec = "l" + "r" * len(per) * len(columns)
    top = " & ".join(
        ["Method"]
        + [
            rf"\multicolumn{{{len(per)}}}{{c}}{{{_tex(c.label)} ({_tex(c.benchmark)})}}"
            for c in columns
        ]
    )
    sub = " & ".join(["", *(per * len(columns))])
    body = []
    for row in table.rows:
        text = cells(table, row)[:-1]
        body.append(" & ".join(_tex(cell) for cell in text) + r" \\")
    caption = (
        f"{full_title(table)}. Data: {data_label(table)}. Generated {table.date} at code "
        f"{code_label(table.code)}."
    )
    return "\n".join([
        r"\begin{table}[t]", r"\centering", rf"\caption{{{_tex(caption)}}}",
        rf"\label{{tab:{_tex(table.spec.name)}}}", rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
        top + r" \\", sub + r" \\", r"\midrule", *body, r"\bottomrule", r"\end{tabular}",
        r"\end{table}",
    ]) + "\n"  # fmt: skip


_TEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
                "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "\\": r"\textbackslash{}", "–": "--"}  # fmt: skip


def _tex(text: str) -> str:
    return "".join(_TEX_ESCAPES.get(char, char) for char in str(text))


def write_table(table: BuiltTable, out_dir: Path) -> list[Path]:
    """`<out_dir>/<name>.md`, `.tex` and `.csv`, written atomically."""
    from experiments.checkpointing import atomic_write

    paths = []
    renders = {"md": render_markdown, "tex": render_latex, "csv": render_csv}
    for suffix, render in renders.items():
        path = out_dir / f"{table.spec.name}.{suffix}"
        data = render(table).encode()

        def write(file: IO[bytes], data: bytes = data) -> None:
            file.write(data)

        atomic_write(path, write)
        paths.append(path)
    return paths


def log_to_wandb(tables: Sequence[BuiltTable], out_dir: Path) -> None:
    """Log every table as a wandb Table to one run (offline unless WANDB_MODE=online)."""
    import os

    import wandb

    run = wandb.init(
        project="humanpose-suite", job_type="tables", dir=str(out_dir),
        mode=os.environ.get("WANDB_MODE", "offline"),  # type: ignore[arg-type]
        config={"code": code_label(tables[0].code) if tables else None},
    )  # fmt: skip
    for table in tables:
        rows = [cells(table, row) for row in table.rows]
        columns: list[str | int] = list(header(table))
        run.log({f"tables/{table.spec.name}": wandb.Table(columns=columns, data=rows)})
    run.finish()


# ----------------------------------------------------------------------------- command


def regenerate(
    names: Sequence[str],
    ctx: Context,
    wandb: bool = False,
    stderr: Any = None,
) -> tuple[list[BuiltTable], list[Path]]:
    """Build and write the tables `names` (all when empty); returns them and the files."""
    stderr = stderr or sys.stderr
    specs = [load_table(table_path(name)) for name in (names or table_names())]
    out_dir = ctx.results_root / "tables"
    built, written = [], []
    for spec in specs:
        table = build_table(spec, ctx)
        built.append(table)
        written += write_table(table, out_dir)
    counts = ctx.counts
    for line in counts.not_trained:
        print(f"{NOT_TRAINED}: {line}", file=stderr)
    for line in counts.errors:
        print(f"error: {line}", file=stderr)
    log.info("tables: reused %d results, evaluated %d", counts.reused, counts.evaluated)
    if wandb:
        log_to_wandb(built, out_dir)
    return built, written
