"""``adapt-robot render`` and ``adapt-robot spec``: look at a family."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from adapt_robot.reporting.tables import markdown_table


def render_gif(
    family_name: str,
    engine: str | None,
    split: str,
    seed: int,
    width: int,
    height: int,
    out: str | None,
    strip: str | None = None,
) -> Path:
    """Record one expert episode on a task of ``split`` and write it as a GIF.

    With ``strip``, also write four frames (first, 1/3, 2/3, last) side by side as a PNG.
    """
    from adapt_robot.reporting.gif import write_gif
    from adapt_robot.sim.experts.record import record_expert
    from adapt_robot.sim.registry import get_family

    family = get_family(family_name)
    engine = engine or family.engines[0]
    family.check_engine(engine)
    if split not in ("train", "test"):
        raise ValueError(f"split: expected 'train' or 'test', got {split!r}")
    task = family.sample_tasks(np.random.default_rng(seed), 1, split)[0]  # type: ignore[arg-type]
    ep = record_expert(family, engine, task, seed, width, height)
    path = Path(out) if out else Path("runs") / f"{family.name}_{engine}.gif"
    write_gif(ep.frames, path, family.control_hz)
    if strip:
        import imageio.v2 as imageio

        n = len(ep.frames)
        picks = [ep.frames[i] for i in (0, n // 3, 2 * n // 3, n - 1)]
        Path(strip).parent.mkdir(parents=True, exist_ok=True)
        imageio.imwrite(strip, np.concatenate(picks, axis=1))
    print(f"{family.name}/{engine}: {ep.steps} steps, success={ep.success}, return={ep.ret:.2f}")
    return path


def family_spec(family_name: str) -> str:
    """Markdown description of a family: obs/action layout, task parameters, rates."""
    from adapt_robot.sim.registry import get_family

    family = get_family(family_name)
    lines = [
        f"# {family.name}",
        "",
        *_module_docs(type(family).__module__),
        "",
        f"engines: {', '.join(family.engines)}; control {family.control_hz:g} Hz; "
        f"episode {family.max_steps} steps; observation-based reward: "
        f"{family.observation_reward}",
        "",
        "## Observation",
        family.obs_spec.table(),
        "",
        "## Action",
        family.action_spec.table(),
        "",
        "## Task parameters",
        markdown_table(
            ["name", "hidden", "range / choices", "meaning"],
            [
                [
                    f"`{f.name}`",
                    f.metadata.get("hidden"),
                    f.metadata.get("choices") or f.metadata.get("range"),
                    f.metadata["doc"],
                ]
                for f in dataclasses.fields(family.params_type)
            ],
        ),
    ]
    return "\n".join(lines)


def _module_docs(module_name: str) -> list[str]:
    """Docstrings of a family's module and of its package's ``task`` and ``reward`` modules."""
    import importlib
    import importlib.util
    import inspect

    names = [module_name]
    package = module_name.rpartition(".")[0]
    for sibling in ("task", "reward"):
        full = f"{package}.{sibling}"
        if full != module_name and importlib.util.find_spec(full) is not None:
            names.append(full)
    docs = [inspect.getdoc(importlib.import_module(n)) for n in names]
    return [d for d in docs if d]
