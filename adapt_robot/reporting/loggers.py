"""Where training metrics go: ``metrics.jsonl`` always, plus CSV, TensorBoard or W&B on request.

Every iteration's record (the one ``metrics.jsonl`` gets: iteration, env steps, returns and
success before and after adaptation, the periodic held-out ``eval``, the warm start as
iteration 0) goes to each sink of the launch file's ``loggers:``:

- ``csv``: ``metrics.csv`` in the run directory, one row per record, nested keys flattened
  (``eval/post_success``); rewritten from ``metrics.jsonl`` after each record, so a resumed run
  (whose later records were dropped) and a new key (the first ``eval``) keep it whole;
- ``tensorboard``: event files in ``RUN_DIR/tensorboard`` (``tensorboard --logdir RUN_DIR``),
  every numeric entry a scalar at its iteration; a resumed run purges the steps it redoes;
- ``wandb``: a Weights & Biases run in offline mode in ``RUN_DIR/wandb`` (``wandb sync`` uploads
  it later), with the training config; needs the ``wandb`` package.

``metrics.jsonl`` stays the record the trainer resumes from and the learning curve is drawn
from; the sinks are copies for the tools people already watch.

A scoreboard's ``loggers:`` send its figures the same way (:func:`log_scoreboard`): one row
per engine, arm and stage (success with its interval, mean return, steps to success, gap
closed) to ``scoreboard.csv``, and the same figures as TensorBoard scalars or a W&B run.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

Backend = Literal["csv", "tensorboard", "wandb"]
BACKENDS: tuple[str, ...] = ("csv", "tensorboard", "wandb")
PACKAGES: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "torch"),
    "wandb": ("wandb",),
}
"""Backend -> the packages it needs (csv needs none; TensorBoard files are written with torch's
``SummaryWriter``)."""
CSV_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"
WANDB_DIR = "wandb"


def missing_package(backend: str) -> str | None:
    """A package ``backend`` needs that is not installed, else None."""
    for package in PACKAGES.get(backend, ()):
        if importlib.util.find_spec(package) is None:
            return package
    return None


def loggers_problem(backends: Sequence[str]) -> str | None:
    """What is wrong with a launch file's ``loggers:`` (key path and fix), or None."""
    for i, backend in enumerate(backends):
        package = missing_package(backend)
        if package is not None:
            return (
                f"loggers[{i}]: {backend} needs the {package} package, which is not installed; "
                f"pip install {package}, or remove {backend!r} from loggers"
            )
        if backend in backends[:i]:
            return f"loggers[{i}]: {backend!r} is listed twice"
    return None


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Numeric entries of ``record`` (nested mappings joined with ``/``); booleans as 0/1."""
    out: dict[str, float] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}/"))
        elif isinstance(value, bool):
            out[name] = float(value)
        elif isinstance(value, int | float) and math.isfinite(float(value)):
            out[name] = float(value)
    return out


class MetricsLog:
    """``metrics.jsonl`` plus the requested sinks, for one training run."""

    def __init__(
        self,
        run_dir: str | Path,
        backends: Sequence[str] = (),
        config: Mapping[str, Any] | None = None,
        resumed_after: int | None = None,
    ) -> None:
        """Open the sinks of ``backends`` for the run in ``run_dir``.

        ``resumed_after``: the checkpoint's iteration a resumed run goes on from (None for a
        new run). TensorBoard drops its events past it (those iterations are redone); a new run
        drops every event an earlier run left in the folder.
        """
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / "metrics.jsonl"
        self.backends = tuple(backends)
        unknown = [b for b in self.backends if b not in BACKENDS]
        if unknown:
            raise ValueError(f"loggers: unknown {unknown}; expected some of {list(BACKENDS)}")
        self._tb: Any = None
        self._wandb: Any = None
        if "tensorboard" in self.backends:
            from torch.utils.tensorboard import SummaryWriter

            purge = 0 if resumed_after is None else resumed_after + 1
            self._tb = SummaryWriter(str(self.run_dir / TENSORBOARD_DIR), purge_step=purge)
        if "wandb" in self.backends:
            import wandb  # type: ignore[import-not-found, unused-ignore]

            (self.run_dir / WANDB_DIR).mkdir(parents=True, exist_ok=True)
            self._wandb = wandb.init(
                project="adapt-robot",
                name=self.run_dir.name,
                dir=str(self.run_dir),
                mode="offline",
                config=dict(config or {}),
            )
        if "csv" in self.backends:
            self._write_csv()

    def write(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` to ``metrics.jsonl`` and hand it to every sink."""
        with open(self.jsonl, "a") as fh:
            fh.write(json.dumps(record) + "\n")
        step = int(record.get("iteration", 0))
        flat = flatten(record)
        if self._tb is not None:
            for key, value in flat.items():
                if key != "iteration":
                    self._tb.add_scalar(key, value, global_step=step)
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.log(flat, step=step)
        if "csv" in self.backends:
            self._write_csv()

    def _write_csv(self) -> None:
        write_csv(self.run_dir / CSV_FILE, [flatten(json.loads(ln)) for ln in _lines(self.jsonl)])

    def close(self) -> None:
        """Flush and close the sinks."""
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def scoreboard_rows(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One flat row per engine, arm and stage of a scoreboard report (``scoreboard.json``)."""
    rows: list[dict[str, Any]] = []
    for engine in report["engines"]:
        gaps = {(g["arm"], g["stage"]): g for g in engine.get("gap_closed", [])}
        for r in engine["rows"]:
            gap = gaps.get((r["arm"], r["stage"]), {})
            tts = r.get("time_to_success") or {}
            rows.append(
                {
                    "engine": engine["engine"],
                    "arm": r["arm"],
                    "kind": r["kind"],
                    "stage": r["stage"],
                    "success": r["success"]["mean"],
                    "success_low": r["success"]["low"],
                    "success_high": r["success"]["high"],
                    "mean_return": r["mean_return"]["mean"],
                    "steps_to_success": tts.get("median_steps"),
                    "gap_closed": gap.get("value"),
                    "gap_closed_low": gap.get("low"),
                    "gap_closed_high": gap.get("high"),
                    "headroom_points": engine.get("headroom_points"),
                }
            )
    return rows


def log_scoreboard(
    report: Mapping[str, Any], out_dir: str | Path, backends: Sequence[str] = ()
) -> None:
    """Send a scoreboard's figures to ``backends`` (``csv``, ``tensorboard``, ``wandb``)."""
    out = Path(out_dir)
    rows = scoreboard_rows(report)
    if "csv" in backends:
        write_csv(out / "scoreboard.csv", rows)
    scalars = {
        f"{r['engine']}/{r['arm']}/{r['stage']}/{key}": float(r[key])
        for r in rows
        for key in ("success", "mean_return", "gap_closed")
        if r[key] is not None and math.isfinite(float(r[key]))
    }
    if "tensorboard" in backends:
        from torch.utils.tensorboard import SummaryWriter

        writer_tb = SummaryWriter(str(out / TENSORBOARD_DIR), purge_step=0)  # a rerun replaces
        for key, value in scalars.items():
            writer_tb.add_scalar(f"scoreboard/{key}", value, global_step=0)
        writer_tb.close()
    if "wandb" in backends:
        import wandb

        run = wandb.init(
            project="adapt-robot", name=f"scoreboard-{out.name}", dir=str(out), mode="offline"
        )
        run.log(scalars)
        run.finish()


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """``rows`` as CSV at ``path`` (atomically), columns the union of their keys in order."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    return [ln for ln in path.read_text().splitlines() if ln.strip()]
