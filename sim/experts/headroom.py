"""Headroom of a task family: how much better the expert does when it knows the hidden parameters.

Two experts run on the same tasks, seeds and initial conditions:

- the **oracle** is told the true task (:func:`adapt_robot.sim.experts.evaluate.run_experts`);
- the **best fixed-hidden expert** is told the true *visible* parameters of each task (shape,
  size, handle position: what a camera gives a robot) but one fixed setting of the *hidden*
  ones (the ``TaskParams`` fields declared ``hidden=True``), the same for every task. It is the
  best a controller can do that does not adapt to what it cannot see.

Candidate settings are the hidden values of ``n`` tasks drawn from the **train** split (plus
their average, :func:`fixed_hidden_candidates`); the best one is chosen on validation tasks also
drawn from the train split, never from the split it is then scored on. Headroom is
``oracle - best fixed`` in points: a family whose train headroom is small cannot teach
adaptation, whatever the test headroom.

Run ``python -m adapt_robot.sim.experts.headroom grasp --engine mujoco --tasks 48`` for a table.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapt_robot.sim.core.family import SPLITS, Split, TaskFamily
from adapt_robot.sim.core.params import CHOICES, RANGE, TaskParams
from adapt_robot.sim.experts.evaluate import run_experts

CANDIDATE_STREAM = 1
"""Seed stream (``default_rng([seed, CANDIDATE_STREAM])``) of the candidate-source tasks."""
VALIDATION_STREAM = 2
"""Seed stream (``default_rng([seed, VALIDATION_STREAM])``) of the validation tasks."""


def _family(family: TaskFamily[Any] | str) -> TaskFamily[Any]:
    if isinstance(family, str):
        from adapt_robot.sim.registry import get_family

        return get_family(family)
    return family


def hidden_fields(family: TaskFamily[Any] | str) -> tuple[str, ...]:
    """Names of the family's ``TaskParams`` fields declared ``hidden=True``, in field order."""
    return _family(family).params_type.hidden_names()


def with_hidden(task: TaskParams, hidden: Mapping[str, object]) -> TaskParams | None:
    """``task`` with its hidden fields replaced by ``hidden``; ``None`` when that is invalid.

    Invalid means the dataclass rejects the combination (a value outside a declared range or
    choice, or a cross-field rule such as a latch on a knob door). A key that is not a hidden
    field of ``task`` is a caller error and raises ``KeyError`` naming it.
    """
    allowed = type(task).hidden_names()
    unknown = [k for k in hidden if k not in allowed]
    if unknown:
        raise KeyError(
            f"hidden: {unknown} are not hidden fields of {type(task).__name__} "
            f"(hidden fields: {list(allowed)})"
        )
    try:
        return dataclasses.replace(task, **hidden)
    except (ValueError, TypeError):
        return None


def hidden_setting(task: TaskParams) -> dict[str, object]:
    """The hidden values of ``task`` (field name -> value)."""
    return {name: getattr(task, name) for name in type(task).hidden_names()}


def average_setting(tasks: Sequence[TaskParams]) -> dict[str, object]:
    """Train-average hidden setting: the mean of ranged fields, the most common choice otherwise.

    Ties between choices go to the value met first.
    """
    if not tasks:
        raise ValueError("tasks: expected at least one task to average, got none")
    fields = {f.name: f for f in dataclasses.fields(tasks[0])}
    out: dict[str, object] = {}
    for name in type(tasks[0]).hidden_names():
        values = [getattr(t, name) for t in tasks]
        meta = fields[name].metadata
        if RANGE in meta and CHOICES not in meta:
            out[name] = float(np.mean(values))
        else:
            out[name] = statistics.mode(values)
    return out


def fixed_hidden_candidates(
    family: TaskFamily[Any] | str, n: int, seed: int
) -> list[dict[str, object]]:
    """Hidden settings of ``n`` train tasks drawn with ``seed``, then their average.

    The average (:func:`average_setting`) is appended when it is valid for at least one of the
    ``n`` source tasks; so the list holds ``n`` or ``n + 1`` settings.
    """
    if n < 1:
        raise ValueError(f"n: expected an integer >= 1 candidates, got {n}")
    fam = _family(family)
    tasks = fam.sample_tasks(np.random.default_rng(seed), n, "train")
    out = [hidden_setting(t) for t in tasks]
    mean = average_setting(tasks)
    if any(with_hidden(t, mean) is not None for t in tasks):
        out.append(mean)
    return out


def fixed_hidden_success(
    family: TaskFamily[Any] | str,
    engine: str,
    tasks: Sequence[TaskParams],
    hidden: Mapping[str, object],
    seed: int = 0,
    batch: int = 16,
) -> np.ndarray:
    """Per-task success (bool ``[N]``) of the expert told ``tasks`` with ``hidden`` substituted.

    A task for which the substitution is invalid (:func:`with_hidden` gives ``None``) counts as
    a failure; its env still runs (with the true-task expert, result discarded) so every task
    keeps the chunking, and so the initial conditions, of :func:`run_experts` with ``seed``.
    """
    fam = _family(family)
    told = [with_hidden(t, hidden) for t in tasks]
    valid = np.array([t is not None for t in told], dtype=bool)
    if not valid.any():
        return np.zeros(len(tasks), dtype=bool)
    experts = [t if t is not None else true for t, true in zip(told, tasks, strict=True)]
    result = run_experts(fam, engine, tasks, expert_tasks=experts, seed=seed, batch=batch)
    return result.success & valid


def best_fixed_hidden(
    family: TaskFamily[Any] | str,
    engine: str,
    *,
    candidates: Sequence[Mapping[str, object]],
    val_tasks: Sequence[TaskParams],
    seed: int,
    batch: int = 16,
) -> tuple[dict[str, object], float]:
    """The candidate with the highest success on ``val_tasks`` (ties: the first) and that rate."""
    rates = candidate_rates(
        family, engine, candidates=candidates, tasks=val_tasks, seed=seed, batch=batch
    )
    best = int(np.argmax(rates))
    return dict(candidates[best]), rates[best]


def candidate_rates(
    family: TaskFamily[Any] | str,
    engine: str,
    *,
    candidates: Sequence[Mapping[str, object]],
    tasks: Sequence[TaskParams],
    seed: int,
    batch: int = 16,
) -> list[float]:
    """Success rate of each fixed hidden setting on ``tasks`` (same seed for all)."""
    if not candidates:
        raise ValueError("candidates: expected at least one hidden setting, got none")
    if not tasks:
        raise ValueError("tasks: expected at least one task to score candidates on, got none")
    fam = _family(family)
    return [
        float(np.mean(fixed_hidden_success(fam, engine, tasks, c, seed=seed, batch=batch)))
        for c in candidates
    ]


@dataclass(frozen=True, kw_only=True)
class HeadroomReport:
    """Oracle vs best fixed-hidden expert on ``n_tasks`` tasks of one family, engine and split."""

    family: str
    """Task family name."""
    engine: str
    """Physics engine."""
    split: Split
    """Split the two experts are scored on."""
    n_tasks: int
    """Number of scored tasks (drawn with ``default_rng(seed)``, as :func:`solvability`)."""
    seed: int
    """Seed of the scored tasks and rollouts; candidates and validation use streams of it."""
    oracle: float
    """Success rate of the expert told the true task."""
    best_fixed: float
    """Success rate of the expert told the chosen fixed hidden setting."""
    chosen: dict[str, object]
    """The hidden setting chosen on the validation tasks."""
    chosen_val: float
    """Success rate of ``chosen`` on the validation tasks."""
    candidate_val: tuple[float, ...]
    """Validation success of every candidate, in candidate order."""
    n_val: int
    """Number of validation tasks (train split)."""
    invalid: int
    """Scored tasks for which ``chosen`` made invalid parameters (counted as failures)."""

    @property
    def headroom(self) -> float:
        """``oracle - best_fixed`` in points (0-100)."""
        return 100.0 * (self.oracle - self.best_fixed)


def headroom(
    family: TaskFamily[Any] | str,
    engine: str,
    split: Split,
    tasks: int,
    seed: int = 0,
    *,
    n_candidates: int = 16,
    n_val: int | None = None,
    batch: int = 16,
) -> HeadroomReport:
    """Oracle and best fixed-hidden success on ``tasks`` tasks of ``split``.

    Candidates: :func:`fixed_hidden_candidates` with ``n_candidates`` train tasks of seed stream
    ``[seed, CANDIDATE_STREAM]``; validation: ``n_val`` (default ``tasks``) train tasks of
    stream ``[seed, VALIDATION_STREAM]``. Costs ``2 * tasks + n_val * (n_candidates + 1)``
    episodes.
    """
    (report,) = headroom_splits(
        family,
        engine,
        (split,),
        tasks,
        seed,
        n_candidates=n_candidates,
        n_val=n_val,
        batch=batch,
    )
    return report


def headroom_splits(
    family: TaskFamily[Any] | str,
    engine: str,
    splits: Sequence[Split],
    tasks: int,
    seed: int = 0,
    *,
    n_candidates: int = 16,
    n_val: int | None = None,
    batch: int = 16,
) -> list[HeadroomReport]:
    """:func:`headroom` for several splits, choosing the fixed setting once (on train tasks)."""
    bad = [s for s in splits if s not in SPLITS]
    if bad or not splits:
        raise ValueError(f"splits: expected a non-empty list from {list(SPLITS)}, got {splits!r}")
    if tasks < 1:
        raise ValueError(f"tasks: expected an integer >= 1, got {tasks}")
    fam = _family(family)
    n_val = tasks if n_val is None else n_val
    cand_seed = int(np.random.default_rng([seed, CANDIDATE_STREAM]).integers(2**31))
    candidates = fixed_hidden_candidates(fam, n_candidates, cand_seed)
    val = fam.sample_tasks(np.random.default_rng([seed, VALIDATION_STREAM]), n_val, "train")
    rates = candidate_rates(fam, engine, candidates=candidates, tasks=val, seed=seed, batch=batch)
    best = int(np.argmax(rates))
    chosen = dict(candidates[best])
    reports = []
    for split in splits:
        scored = fam.sample_tasks(np.random.default_rng(seed), tasks, split)
        oracle = run_experts(fam, engine, scored, seed=seed, batch=batch).rate
        fixed = fixed_hidden_success(fam, engine, scored, chosen, seed=seed, batch=batch)
        reports.append(
            HeadroomReport(
                family=fam.name,
                engine=engine,
                split=split,
                n_tasks=tasks,
                seed=seed,
                oracle=oracle,
                best_fixed=float(np.mean(fixed)),
                chosen=chosen,
                chosen_val=rates[best],
                candidate_val=tuple(rates),
                n_val=n_val,
                invalid=sum(with_hidden(t, chosen) is None for t in scored),
            )
        )
    return reports


def format_table(reports: Sequence[HeadroomReport]) -> str:
    """Markdown table of reports, then the chosen setting of each."""
    lines = [
        "| family | engine | split | tasks | oracle | best fixed | headroom (pts) | chosen val |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in reports:
        lines.append(
            f"| {r.family} | {r.engine} | {r.split} | {r.n_tasks} | {100 * r.oracle:.1f}% | "
            f"{100 * r.best_fixed:.1f}% | {r.headroom:.1f} | {100 * r.chosen_val:.1f}% |"
        )
    lines.append("")
    for r in reports:
        shown = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.chosen.items()
        )
        lines.append(f"{r.split}: chosen hidden setting {shown} (invalid on {r.invalid} tasks)")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m adapt_robot.sim.experts.headroom FAMILY [--engine E] ...``: print the table."""
    parser = argparse.ArgumentParser(
        prog="python -m adapt_robot.sim.experts.headroom", description=__doc__
    )
    parser.add_argument("family", help="task family name (see adapt_robot.sim.registry)")
    parser.add_argument("--engine", default="mujoco", help="physics engine (default mujoco)")
    parser.add_argument("--tasks", type=int, default=48, help="scored tasks per split")
    parser.add_argument("--split", choices=SPLITS, nargs="+", default=list(SPLITS))
    parser.add_argument("--candidates", type=int, default=16, help="train tasks giving settings")
    parser.add_argument("--val", type=int, default=None, help="validation tasks (default --tasks)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=16, help="envs stepped together")
    args = parser.parse_args(argv)
    reports = headroom_splits(
        args.family,
        args.engine,
        args.split,
        args.tasks,
        args.seed,
        n_candidates=args.candidates,
        n_val=args.val,
        batch=args.batch,
    )
    print(format_table(reports))


if __name__ == "__main__":
    main()
