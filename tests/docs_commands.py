"""The shell commands documented in README.md and docs/*.md, and how the tests run each one.

Every line of a ```bash or ```sh block in those files is a documented command; blocks run as
shell scripts (later lines may use variables set by earlier ones), in a scratch directory with
``launch/`` and the venv reachable as in the repository. ``RUNS`` says how a
test runs it: the documented command itself, with cheap overrides *appended* (a smaller budget,
fewer tasks) so the documented syntax and code path run as written. ``tests/test_docs_commands``
fails when a documented command has no entry here, or an entry no longer appears in the docs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
SHELL_FENCE = re.compile(r"^```(?:bash|sh)\n(.*?)^```", re.S | re.M)
PYTHON_FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)

# A tiny MAML budget for any documented training command.
TINY_TRAIN = (
    " --set budget.iterations=1 --set sampler.tasks_per_iter=2 --set sampler.episodes_per_task=2"
    " --set eval.tasks=1 --set eval.episodes_per_task=1 --set warm_start.tasks=2"
    " --set warm_start.epochs=1"
)


@dataclass(frozen=True)
class Run:
    """How a test runs one documented command."""

    extra: str = ""
    """Appended to the documented command (smaller budgets); never changes what is written."""
    slow: bool = False
    """Run only in the slow set (``make test-slow``)."""
    skip: str = ""
    """Why no test runs it (it is the test command itself, or needs a real robot)."""


def shell_blocks() -> list[tuple[Path, list[str]]]:
    """Every ```bash/```sh block: (file, its command lines without comments)."""
    out: list[tuple[Path, list[str]]] = []
    for path in DOC_FILES:
        for block in SHELL_FENCE.findall(path.read_text()):
            lines = [raw.split("  #", 1)[0].strip() for raw in block.splitlines()]
            out.append((path, [ln for ln in lines if ln and not ln.startswith("#")]))
    return out


def python_blocks() -> list[tuple[Path, str]]:
    """Every ```python block: (file, source)."""
    return [(p, b) for p in DOC_FILES for b in PYTHON_FENCE.findall(p.read_text())]


TINY_SCOREBOARD = " --set tasks=2 --set 'engines=[mujoco]' --set episodes.post_episodes=1"
TINY_EVAL = " --tasks 2 --episodes 1 --post-episodes 1 --steps 1"

METAWORLD = Run(
    skip="needs the Meta-World venv (make metaworld: Meta-World pins MuJoCo 3.3.0); "
    "tests/meta/test_metaworld_example.py runs the same chain there"
)

RUNS: dict[str, Run] = {
    ".venv/bin/adapt-robot experts launch/experts.yaml": Run(
        " --set families=[point,grasp] --set engines=[pybullet] --set tasks_per_split=2"
        " --set gif=false"
    ),
    ".venv/bin/adapt-robot train launch/point_maml.yaml": Run(" --set budget.iterations=2"),
    ".venv/bin/adapt-robot train launch/grasp_maml.yaml": Run(TINY_TRAIN),
    ".venv/bin/adapt-robot train launch/grasp_ppo_dr.yaml --set budget.env_steps=5530273 "
    "--set budget.minutes=60": Run(TINY_TRAIN),
    ".venv/bin/adapt-robot eval runs/grasp_maml runs/grasp_ppo_dr": Run(TINY_EVAL),
    ".venv/bin/adapt-robot eval runs/grasp_maml --backend pybullet": Run(TINY_EVAL),
    ".venv/bin/adapt-robot deploy runs/demo/bundle --robot sim:pybullet --task-split test "
    "--rate 100 --objects 4 --episodes 2 --sequential --keep-on-success "
    "--gif runs/demo/deploy4/before_after.gif "
    "--out runs/demo/deploy4": Run(" --objects 1 --episodes 1 --post-episodes 1"),
    ".venv/bin/adapt-robot train launch/grasp_law.yaml": Run(
        " --set budget.iterations=1 --set sampler.tasks_per_iter=2 --set algo.grad_steps=1"
        " --set eval.tasks=1"
    ),
    ".venv/bin/adapt-robot export runs/grasp_law -o runs/grasp_law_bundle": Run(),
    ".venv/bin/adapt-robot scoreboard launch/scoreboard_grasp.yaml": Run(TINY_SCOREBOARD),
    ".venv/bin/adapt-robot scoreboard launch/scoreboard_grasp.yaml --set split=train --set seed=7"
    " --out runs/scoreboard_grasp_val": Run(TINY_SCOREBOARD),
    "SRC=\"$(.venv/bin/python -c 'from adapt_robot.runtime.bridge import c_sources; "
    "print(c_sources())')\"": Run(),
    "SRC=\"$(python -c 'from adapt_robot.runtime.bridge import c_sources; "
    "print(c_sources())')\"": Run(),
    'cc -std=c99 -O2 -Wall -Wextra -Werror -I"$SRC" -o adapt_bridge_example '
    '"$SRC/adapt_bridge.c" "$SRC/example_main.c"': Run(),
    "make metaworld": METAWORLD,
    "PYTHONPATH=examples .venv-metaworld/bin/adapt-robot check-family "
    "metaworld_ml1:mw_pick_place_150": METAWORLD,
    ".venv-metaworld/bin/adapt-robot experts examples/metaworld_experts.yaml": METAWORLD,
    ".venv-metaworld/bin/adapt-robot train examples/metaworld_door_open.yaml": METAWORLD,
    ".venv-metaworld/bin/adapt-robot export runs/metaworld_door_open "
    "-o runs/metaworld_door_open_bundle": METAWORLD,
    ".venv-metaworld/bin/adapt-robot train examples/metaworld_pick_place.yaml": METAWORLD,
    ".venv-metaworld/bin/adapt-robot eval runs/metaworld_pick_place --tasks 50 --episodes 4 "
    "--steps 1 --post-episodes 4": METAWORLD,
    ".venv-metaworld/bin/adapt-robot eval runs/metaworld_door_open --tasks 50 --episodes 4 "
    "--steps 1 --post-episodes 4": METAWORLD,
}
