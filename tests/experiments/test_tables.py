"""`tables`, `predict` and `demo`: table declarations, checkpoint selection, evaluate-then-reuse,
the synthetic label, not-trained and error rows, wandb tables, overlay PNGs and validation images.

The trained fixture is pare_tiny after 2 steps on the tiny world, logged to an offline wandb run
with one validation (so its image grid is logged too)."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from experiments import tables
from experiments.cli import main
from experiments.config import ConfigError, find_experiment

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


# ----------------------------------------------------------------------------- declarations


@pytest.mark.parametrize("name", tables.table_names())
def test_every_declared_table_loads_and_names_real_experiments(name: str) -> None:
    spec = tables.load_table(tables.table_path(name))
    assert spec.columns and spec.rows
    for row in spec.rows:
        assert len(row.paper) == len(spec.columns)
        if row.experiment is not None:
            assert find_experiment(row.experiment).is_file()
            assert row.checkpoint in tables.CHECKPOINT_CHOICES
    if any(row.checkpoint == "best" and row.experiment for row in spec.rows):
        assert spec.monitor and spec.monitor.startswith("val/")


def test_the_pare_tables_are_declared() -> None:
    names = set(tables.table_names())
    assert {f"pare_table{i}" for i in range(1, 6)} | {"pare_demo"} <= names
    table1 = tables.load_table(tables.table_path("pare_table1"))
    pare = next(row for row in table1.rows if row.experiment == "pare_hrnet32")
    assert pare.paper == (82.0, 50.9, 97.9)  # the paper's 3DPW MPJPE, PA-MPJPE, PVE


def test_the_bodynet_tables_are_declared_on_registered_benchmarks() -> None:
    from experiments.benchmarks import BENCHMARKS
    from metrics import results_of

    names = {f"bodynet_table{i}" for i in ("1", "2", "3", "4", "A1", "A3")} | {"bodynet_demo"}
    assert names <= set(tables.table_names())
    for name in names:
        spec = tables.load_table(tables.table_path(name))
        for column in spec.columns:
            if column.unavailable is None:  # a registered benchmark that reports the metric
                fresh = BENCHMARKS[column.benchmark].metrics()
                assert column.metric in results_of(fresh), (name, column)
    table2 = tables.load_table(tables.table_path("bodynet_table2"))
    bodynet = next(row for row in table2.rows if row.experiment == "bodynet_stage5_end2end")
    assert bodynet.paper == (65.8, 72.2, 76.6)  # full, s20, s10 surface error (mm)
    a3 = tables.load_table(tables.table_path("bodynet_tableA3"))
    assert a3.columns[1].unavailable == "needs a raw or 3DMPPE-format Human3.6M reader"
    smplifypp = next(row for row in table2.rows if row.label.startswith("2. SMPLify++"))
    assert [smplifypp.benchmark(c) for c in table2.columns] == [
        "surreal_smplifypp", "surreal_smplifypp_s20", "surreal_smplifypp_s10",
    ]  # fmt: skip
    assert [bodynet.benchmark(c) for c in table2.columns] == [c.benchmark for c in table2.columns]


GOOD = {
    "title": "t",
    "select": {"monitor": "val/pw3d_test/pa_mpjpe_mm"},
    "columns": [{"benchmark": "pw3d_test", "metric": "mpjpe_mm", "label": "MPJPE"}],
    "rows": [{"label": "r", "experiment": "pare_tiny", "checkpoint": "best", "paper": [1.0]}],
}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda t: t.update(colour="red"), "colour"),
        (lambda t: t.pop("rows"), "rows"),
        (lambda t: t["rows"][0].update(chekpoint="last"), "chekpoint"),
        (lambda t: t["rows"][0].update(paper=[1.0, 2.0]), "rows[0].paper"),
        (lambda t: t["rows"][0].update(paper=["x"]), "rows[0].paper"),
        (lambda t: t["columns"][0].update(benchmark="pw3d_tset"), "pw3d_tset"),
        (lambda t: t["columns"][0].update(metric="mpjpe_cm"), "mpjpe_cm"),
        (lambda t: t.pop("select"), "select.monitor"),
        (lambda t: t["select"].update(mode="lowest"), "select.mode"),
        (lambda t: t.update(columns=[]), "columns"),
        (lambda t: t["rows"][0].update(benchmarks={"pw3d_occ": "pw3d_test"}), "pw3d_occ"),
        (lambda t: t["rows"][0].update(benchmarks={"pw3d_test": "pw3d_tset"}), "pw3d_tset"),
        (
            lambda t: t["rows"][0].update(benchmarks={"pw3d_test": "surreal_bodynet_parts"}),
            "rows[0].benchmarks",
        ),
    ],
)
def test_a_mistake_in_a_table_names_the_file_and_the_key(tmp_path: Path, change, named) -> None:
    raw = json.loads(json.dumps(GOOD))
    change(raw)
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as error:
        tables.load_table(path)
    assert str(path) in str(error.value) and named in str(error.value)


def test_an_unavailable_column_needs_no_registered_benchmark(tmp_path: Path) -> None:
    raw = json.loads(json.dumps(GOOD))
    raw["columns"].append(
        {"benchmark": "3doh_test", "metric": "mpjpe_mm", "label": "3DOH", "unavailable": "why"}
    )
    raw["rows"][0]["paper"] = [1.0, None]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert tables.load_table(path).columns[1].unavailable == "why"


def test_an_unknown_table_lists_the_tables() -> None:
    with pytest.raises(ConfigError, match="pare_table1"):
        tables.table_path("pare_table9")


# ----------------------------------------------------------------------------- checkpoints


def _fake_run(root: Path, name: str, monitor: str | None, best: str | None) -> Path:
    folder = root / "pare_tiny" / name / "checkpoints"
    folder.mkdir(parents=True)
    callbacks = {}
    if monitor is not None:
        elsewhere = f"/cluster/scratch/pare_tiny/{name}/checkpoints/{best}"  # moved since
        callbacks[f"ModelCheckpoint{{'monitor': '{monitor}'}}"] = {
            "monitor": monitor,
            "best_model_path": elsewhere,
        }
        torch.save({"state_dict": {"w": torch.zeros(1)}}, folder / str(best))
    torch.save({"state_dict": {}, "callbacks": callbacks}, folder / "last.ckpt")
    return folder.parent


def test_find_checkpoint_best_last_path_and_missing(tmp_path: Path) -> None:
    monitor = "val/pw3d_test/pa_mpjpe_mm"
    old = _fake_run(tmp_path, "20260101-000000", monitor, "best-step=1.ckpt")
    new = _fake_run(tmp_path, "20260102-000000", monitor, "best-step=7.ckpt")
    assert tables.latest_run(tmp_path / "pare_tiny") == new != old

    best = tables.Row("r", "pare_tiny", "best")
    assert tables.find_checkpoint(best, tmp_path, monitor) == (
        new / "checkpoints" / "best-step=7.ckpt",
        "",
    )
    last = tables.Row("r", "pare_tiny", "last")
    assert tables.find_checkpoint(last, tmp_path, monitor) == (new / "checkpoints/last.ckpt", "")

    path, why = tables.find_checkpoint(best, tmp_path, "val/other_metric")
    assert path is None and "val/other_metric" in why
    path, why = tables.find_checkpoint(tables.Row("r", "pare_r50", "best"), tmp_path, monitor)
    assert path is None and "pare_r50" in why
    explicit = tables.Row("r", "pare_tiny", str(old / "checkpoints" / "best-step=1.ckpt"))
    assert tables.find_checkpoint(explicit, tmp_path, monitor)[0] == Path(explicit.checkpoint)
    gone = tables.Row("r", "pare_tiny", str(tmp_path / "gone.ckpt"))
    assert tables.find_checkpoint(gone, tmp_path, monitor) == (
        None,
        f"checkpoint {tmp_path / 'gone.ckpt'} does not exist",
    )


def test_a_best_checkpoint_that_was_deleted_is_reported(tmp_path: Path) -> None:
    monitor = "val/pw3d_test/pa_mpjpe_mm"
    run = _fake_run(tmp_path, "r1", monitor, "best-step=3.ckpt")
    (run / "checkpoints" / "best-step=3.ckpt").unlink()
    path, why = tables.find_checkpoint(tables.Row("r", "pare_tiny", "best"), tmp_path, monitor)
    assert path is None and "best-step=3.ckpt" in why


# ----------------------------------------------------------------------------- rendering


def _built(synthetic: bool) -> tables.BuiltTable:
    spec = tables.load_table(tables.table_path("pare_table1"))
    rows = [tables.RowResult(row.label, row.paper, [12.5] * len(spec.columns)) for row in spec.rows]
    rows[0].status = tables.NOT_TRAINED
    tag = "synthetic-0123456789ab" if synthetic else "real-0123456789ab"
    rows[1].data_tags.add(tag)
    code = {"revision": "a" * 40, "dirty": True, "changes_sha256": "b" * 64}
    return tables.BuiltTable(spec, rows, {tag: synthetic}, code, "2026-12-04")


def test_renderings_carry_the_data_the_code_and_the_date() -> None:
    table = _built(synthetic=True)
    markdown = tables.render_markdown(table)
    assert markdown.splitlines()[0].startswith("# [Synthetic world, not a real benchmark] PARE")
    assert "SYNTHETIC WORLD (synthetic-0123456789ab)" in markdown
    assert "2026-12-04" in markdown and "aaaaaaaaaaaa" in markdown
    assert tables.NOT_TRAINED in markdown and "12.5" in markdown

    parsed = list(csv.DictReader(io.StringIO(tables.render_csv(table))))
    assert len(parsed) == len(table.rows)
    first = parsed[0]
    assert (first["method"], first["status"]) == (table.rows[0].label, tables.NOT_TRAINED)
    assert first["pw3d_test/mpjpe_mm/ours"] == "12.5"
    assert (first["pw3d_test/mpjpe_mm/paper"], first["pw3d_test/pve_mm/paper"]) == ("96.9", "")
    assert parsed[2]["pw3d_test/pa_mpjpe_mm/paper"] == "52.3"  # PARE (R50)'s paper number
    assert {row["date"] for row in parsed} == {"2026-12-04"}
    assert parsed[1]["data"] == "synthetic-0123456789ab"

    latex = tables.render_latex(table)
    assert "\\begin{tabular}" in latex and "Synthetic world" in latex
    assert "_" not in latex.replace("\\_", "")  # every underscore escaped

    real = tables.render_markdown(_built(synthetic=False))
    assert "Synthetic" not in real.splitlines()[0] and "real data" in real


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory, body_models_root, tiny_world):
    """pare_tiny trained 2 steps on the tiny world with one validation, logged to wandb offline."""
    wandb = pytest.importorskip("wandb")
    from experiments.config import load_experiment
    from experiments.train import train

    root = tmp_path_factory.mktemp("tables")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(root / "wandb_dir"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    paths = _paths(root, body_models_root)
    cfg = load_experiment("pare_tiny", [*paths, *TRAIN_OVERRIDES], data_root=tiny_world)
    try:
        run_dir = train(cfg)
    finally:
        wandb.finish()
        wandb.teardown()  # the service has written every record before we read them
        monkeypatch.undo()
    return {"root": root, "world": tiny_world, "run": run_dir, "paths": paths}


TRAIN_OVERRIDES = [
    "data.train=[{dataset: pw3d, split: train}]", "data.batch_size=4", "data.num_workers=0",
    "trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
    "trainer.log_every_n_steps=1",
    "trainer.num_sanity_val_steps=0", "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false", "+model.baseline_samples=50", "logger=wandb",
]  # fmt: skip


def _paths(root: Path, body_models_root: Path) -> list[str]:
    return [f"body_model.root={body_models_root}", f"cache_root={root / 'cache'}",
            f"output_root={root / 'checkpoints'}"]  # fmt: skip


def _context(trained, **kwargs) -> tables.Context:
    overrides = [*trained["paths"], "data.num_workers=0"]
    return tables.build_context(
        overrides, trained["world"], trained["root"] / "results", device="cpu", **kwargs
    )


class CountingEvaluator:
    def __init__(self) -> None:
        from experiments.evaluate import evaluate

        self.evaluate, self.calls = evaluate, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        return self.evaluate(*args, **kwargs)


@pytest.mark.slow
def test_validation_logs_an_image_grid_to_the_run_folder_and_wandb(trained) -> None:
    from PIL import Image

    (png,) = (trained["run"] / "images").glob("val_step*.png")
    width, height = Image.open(png).size
    assert (width, height) == (4 * 128, 4 * 128)  # crop | overlay | side | attention, 4 crops
    (offline,) = (trained["run"] / "wandb").glob("offline-run-*")
    assert list(offline.glob("files/media/images/val/images_*.png"))
    (records,) = offline.glob("run-*.wandb")
    content = records.read_bytes()
    for key in (b"val/images", b"val/pw3d_test/pa_mpjpe_mm", b"train/loss"):
        assert key in content, key


@pytest.mark.slow
def test_tables_evaluate_once_then_reuse(trained, caplog) -> None:
    counting = CountingEvaluator()
    ctx = _context(trained, evaluate=counting)
    with caplog.at_level(logging.INFO, logger="experiments.tables"):
        built, written = tables.regenerate(["pare_demo"], ctx, stderr=io.StringIO())
    assert (ctx.counts.evaluated, ctx.counts.reused, counting.calls) == (1, 0, 1)
    assert "tables: reused 0 results, evaluated 1" in caplog.text
    out = trained["root"] / "results" / "tables"
    assert sorted(written) == [out / "pare_demo.csv", out / "pare_demo.md", out / "pare_demo.tex"]
    markdown = (out / "pare_demo.md").read_text()
    assert markdown.startswith("# [Synthetic world, not a real benchmark] pare_tiny")
    (model_row, baseline_row) = built[0].rows
    assert model_row.checkpoint == trained["run"] / "checkpoints" / "last.ckpt"
    assert all(value is not None and value > 0 for value in model_row.values)
    assert baseline_row.label == "pare_tiny: training_mean_body (baseline)"
    assert f"{model_row.values[0]:.1f}" in markdown

    again = CountingEvaluator()
    ctx2 = _context(trained, evaluate=again)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="experiments.tables"):
        rebuilt, _ = tables.regenerate(["pare_demo"], ctx2, stderr=io.StringIO())
    assert (ctx2.counts.evaluated, ctx2.counts.reused, again.calls) == (0, 1, 0)
    assert "tables: reused 1 results, evaluated 0" in caplog.text
    assert rebuilt[0].rows[0].values == model_row.values


@pytest.mark.slow
@pytest.mark.parametrize("change", ["code", "limit", "body_model"])
def test_results_of_other_code_or_a_limit_are_not_reused(trained, change) -> None:
    ckpt = trained["run"] / "checkpoints" / "last.ckpt"
    ctx = _context(trained)
    first = tables.results_for(ctx, ckpt, "pw3d_test")  # evaluated or reused: on disk now
    stored_path = next((trained["root"] / "results" / "pare_tiny").glob("*/*/pw3d_test.json"))
    stored = json.loads(stored_path.read_text())
    assert stored["metrics"] == first["metrics"]

    calls: list[tuple] = []

    def evaluate(*args, **kwargs):
        calls.append(args)
        return stored_path, stored

    probe = _context(trained, evaluate=evaluate)
    if change == "code":
        probe.code = {**probe.code, "revision": "0" * 40}
    edited = dict(stored)
    if change == "limit":
        edited["limit"] = 3
    if change == "body_model":
        edited["body_model"] = {**stored["body_model"], "sha256": "f" * 64}
    stored_path.write_text(json.dumps(edited))
    try:
        tables.results_for(probe, ckpt, "pw3d_test")
    finally:
        stored_path.write_text(json.dumps(stored))
    assert len(calls) == 1 and probe.counts.evaluated == 1 and probe.counts.reused == 0


@pytest.mark.slow
def test_cli_not_trained_rows_go_to_stderr_and_errors_set_the_status(
    trained, tmp_path: Path, capsys
) -> None:
    out_root = tmp_path / "results"
    nothing = [f"output_root={tmp_path / 'no_runs'}", *trained["paths"][:2]]
    assert main(["tables", "--out-root", str(out_root), *nothing]) == 0
    err = capsys.readouterr().err
    assert "not trained: pare_table1: PARE (HRNet-W32) (pare_hrnet32): no run of" in err
    for name in tables.table_names():
        for suffix in ("md", "tex", "csv"):
            assert (out_root / "tables" / f"{name}.{suffix}").is_file()
    table1 = (out_root / "tables" / "pare_table1.md").read_text()
    assert "not trained" in table1 and "82.0" in table1  # the paper's numbers beside

    # A checkpoint scored on a data root without its dataset: an error row, exit status 1.
    spec = {
        "title": "error row",
        "columns": [{"benchmark": "pw3d_test", "metric": "mpjpe_mm", "label": "MPJPE"}],
        "rows": [
            {"label": "tiny", "experiment": "pare_tiny",
             "checkpoint": str(trained["run"] / "checkpoints" / "last.ckpt")},
        ],
    }  # fmt: skip
    path = tmp_path / "error_row.yaml"
    path.write_text(yaml.safe_dump(spec))
    empty = tmp_path / "empty_root"
    empty.mkdir()
    command = ["tables", str(path), "--out-root", str(out_root), "--data-root", str(empty)]
    assert main([*command, *trained["paths"], "data.num_workers=0", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "error: error_row: tiny on pw3d_test:" in err
    assert "| error |" in (out_root / "tables" / "error_row.md").read_text()


@pytest.mark.slow
def test_tables_refuse_overrides_that_change_the_numbers(trained, capsys) -> None:
    assert main(["tables", "pare_demo", "data.crop_size=32"]) == 2
    assert "data.crop_size=32" in capsys.readouterr().err


@pytest.mark.slow
def test_tables_log_wandb_tables_offline(trained, tmp_path: Path, monkeypatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    built, _ = tables.regenerate(["pare_demo"], _context(trained), stderr=io.StringIO())
    tables.log_to_wandb(built, tmp_path)
    (offline,) = (tmp_path / "wandb").glob("offline-run-*")
    (table_file,) = offline.glob("files/media/table/tables/pare_demo_*.table.json")
    logged = json.loads(table_file.read_text())
    assert logged["columns"] == tables.header(built[0])
    assert len(logged["data"]) == len(built[0].rows)


# ----------------------------------------------------------------------------- predict, demo


@pytest.mark.slow
def test_predict_writes_one_overlay_row_per_crop(trained, body_models_root, capsys) -> None:
    ckpt = trained["run"] / "checkpoints" / "last.ckpt"
    out_root = trained["root"] / "results"
    command = ["predict", "--ckpt", str(ckpt), "--benchmark", "pw3d_test", "--limit", "3",
               "--data-root", str(trained["world"]), "--out-root", str(out_root),
               "--device", "cpu", *trained["paths"][:2], "data.num_workers=0"]  # fmt: skip
    assert main(command) == 0
    folder = Path(capsys.readouterr().out.split()[-1])
    assert folder.name == "predict_pw3d_test" and folder.parent.parent.parent.name == "pare_tiny"
    from PIL import Image

    rows = sorted(folder.glob("prediction_*.png"))
    assert [path.name for path in rows] == [f"prediction_{i:03d}.png" for i in range(3)]
    pictures = [np.asarray(Image.open(path)) for path in rows]
    assert all(picture.shape == (128, 4 * 128, 3) for picture in pictures)
    overlay, crop = pictures[0][:, 128:256], pictures[0][:, :128]
    assert np.abs(overlay.astype(int) - crop.astype(int)).max() > 50  # a mesh was drawn
    assert np.asarray(Image.open(folder / "grid.png")).shape == (3 * 128, 4 * 128, 3)


def test_prediction_row_cells(neutral_model) -> None:
    from experiments.panels import prediction_row

    faces = neutral_model.faces.to(torch.int64)
    output = neutral_model(torch.zeros(1, 72))
    vertices = output.vertices[0] + torch.tensor([0.0, 0.3, 3.0])
    K = torch.tensor([[80.0, 0.0, 31.5], [0.0, 80.0, 31.5], [0.0, 0.0, 1.0]])
    image = torch.zeros(3, 64, 64)
    assert prediction_row(image, None, faces, K).shape == (128, 128, 3)
    assert prediction_row(image, vertices, faces, K, size=96).shape == (96, 3 * 96, 3)
    attention = torch.rand(24, 16, 16)
    row = prediction_row(image, vertices, faces, K, attention)
    assert row.shape == (128, 4 * 128, 3)
    crop, overlay = row[:, :128].astype(int), row[:, 128:256].astype(int)
    centre = (slice(40, 88), slice(54, 74))
    assert np.abs(overlay[centre] - crop[centre]).mean() > 20  # the body covers the centre


@pytest.mark.slow
def test_demo_runs_every_step_and_reuses_the_world(
    trained, body_models_root, tmp_path: Path
) -> None:
    from experiments.demo import run_demo

    paths = [f"body_model.root={body_models_root}", f"cache_root={tmp_path / 'cache'}",
             f"output_root={tmp_path / 'checkpoints'}"]  # fmt: skip
    overrides = [*paths, *(o for o in TRAIN_OVERRIDES if o != "logger=wandb"), "logger=none"]
    before = (trained["world"] / "SYNTHETIC.json").read_bytes()
    out = io.StringIO()
    outputs = run_demo(overrides, trained["world"], tmp_path / "results", size="tiny", stdout=out)
    text = out.getvalue()
    assert (trained["world"] / "SYNTHETIC.json").read_bytes() == before  # reused, not rewritten
    for step in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert f"== demo {step}" in text
    assert "reusing" in text
    assert outputs.run_dir.parent == tmp_path / "checkpoints" / "pare_tiny"
    assert (
        (tmp_path / "results" / "tables" / "pare_demo.md")
        .read_text()
        .startswith("# [Synthetic world")
    )
    assert outputs.predictions is not None and len(list(outputs.predictions.glob("*.png"))) == 9
    assert "demo finished (synthetic world: not a real benchmark)" in text
    assert set(outputs.seconds) == {
        "body model", "synthetic world", "training pare_tiny", "table pare_demo",
        "predictions on pw3d_test",
    }  # fmt: skip


def test_the_demo_writes_only_the_missing_datasets(tmp_path: Path) -> None:
    from experiments.demo import missing_datasets

    wanted = ["surreal", "pw3d", "h36m"]
    assert missing_datasets(tmp_path, wanted, "a" * 64) == wanted
    info = {"datasets": {"pw3d": "small", "coco": "tiny"}, "body_model": {"sha256": "a" * 64}}
    (tmp_path / "SYNTHETIC.json").write_text(json.dumps(info))
    assert missing_datasets(tmp_path, wanted, "a" * 64) == ["surreal", "h36m"]
    assert missing_datasets(tmp_path, wanted, "b" * 64) == wanted  # another body model
    (tmp_path / "SYNTHETIC.json").write_text("{")
    with pytest.raises(ValueError, match=r"SYNTHETIC\.json"):
        missing_datasets(tmp_path, wanted, "a" * 64)


def test_a_truncated_checkpoint_is_an_error_row_naming_it(tmp_path: Path) -> None:
    broken = tmp_path / "broken.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, broken)
    broken.write_bytes(broken.read_bytes()[:200])
    raw = json.loads(json.dumps(GOOD))
    raw["rows"] = [{"label": "r", "experiment": "pare_tiny", "checkpoint": str(broken)}]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(raw))

    def never(*args, **kwargs):
        raise AssertionError("a checkpoint that does not load is never evaluated")

    ctx = tables.build_context([f"output_root={tmp_path}"], tmp_path, tmp_path, evaluate=never)
    built = tables.build_table(tables.load_table(path), ctx)
    assert built.rows[0].status == tables.ERROR
    (line,) = ctx.counts.errors
    assert str(broken) in line
