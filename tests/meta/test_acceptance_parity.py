"""``adapt-robot eval`` and the robot judge an adaptation alike: the same batch through eval's
path (:func:`adapt_robot.meta.evaluation.adapt_and_judge`, torch) and the runtime's
:class:`~adapt_robot.runtime.adaptation.InnerLoop` (ONNX Runtime) gets the same verdict, for
acceptance and for every rejection reason of the policy-gradient batch."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from adapt_robot.meta.evaluation import adapt_and_judge
from adapt_robot.meta.inner import InnerBatch
from adapt_robot.meta.trainer import load_run
from adapt_robot.runtime import Bundle
from adapt_robot.runtime.adaptation import ACCEPTED, InnerLoop
from adapt_robot.runtime.buffer import Batch, Episodes, pack
from adapt_robot.runtime.safety import (
    BAD_REWARD,
    LOSS_INCREASE,
    NONFINITE_ADVANTAGES,
    NONFINITE_UPDATE,
    UPDATE_NORM,
    AcceptanceConfig,
    SafetyConfig,
)
from adapt_robot.runtime.sessions import CPU, SessionSettings, create_session


def episodes_of(bundle: Bundle, rewards: np.ndarray, seed: int) -> Episodes:
    """``bundle``'s training batch shape (episodes x horizon) of random transitions."""
    m, rng = bundle.manifest, np.random.default_rng(seed)
    e, t = rewards.shape
    return Episodes(
        obs=rng.normal(size=(e, t, m.observation.dim)).astype(np.float32),
        act=rng.normal(size=(e, t, m.action.dim)).astype(np.float32),
        rew=rewards.astype(np.float64),
        mask=np.ones((e, t)),
    )


def both_verdicts(
    run: Path,
    bundle: Bundle,
    episodes: Episodes,
    factor: float,
    steps: int,
    acc: AcceptanceConfig,
    raw_returns: bool = False,
) -> tuple[str, str]:
    """(eval's verdict, the runtime's) on ``episodes`` with the rates scaled by ``factor``."""
    lrs = {k: (v * np.float32(factor)).astype(np.float32) for k, v in bundle.lrs.items()}
    session = create_session(bundle.graph_path("adapt_step"), [CPU], SessionSettings())
    manifest = bundle.manifest
    if raw_returns:  # advantages = discounted returns: a loss the step can overshoot
        il = dataclasses.replace(manifest.inner_loop, baseline="none", normalize_adv=False)
        manifest = dataclasses.replace(manifest, inner_loop=il)
    inner = InnerLoop(session, manifest, lrs, SafetyConfig.from_acceptance(acc))
    with np.errstate(all="ignore"):
        _, result = inner.run(bundle.params, episodes, steps)
    # Eval's path on the same rows: the runtime's advantages, the same packed batch.
    adv = inner.advantages(episodes)
    il = bundle.manifest.inner_loop
    batch = Batch.zeros(il.capacity, bundle.manifest.observation.dim, bundle.manifest.action.dim)
    live = episodes.mask > 0
    with np.errstate(over="ignore"):
        pack(episodes, np.zeros_like(episodes.rew) if adv is None else adv, batch)
    feedback = [
        (episodes.rew[live], np.full(int(live.sum()), np.nan) if adv is None else adv[live])
    ]
    tb = InnerBatch(
        obs=torch.from_numpy(batch.obs)[None],
        act=torch.from_numpy(batch.act)[None],
        adv=torch.from_numpy(batch.adv)[None],
        mask=torch.from_numpy(batch.mask)[None],
    )
    _, learner, _ = load_run(run)
    start = {k: torch.from_numpy(np.array(v))[None] for k, v in bundle.params.items()}
    rates = {k: torch.from_numpy(v) for k, v in lrs.items()}
    with np.errstate(all="ignore"):
        kept, verdicts = adapt_and_judge(learner, start, rates, tb, steps, feedback, acc)
    if verdicts[0] is not None:  # a rejected task keeps its start parameters
        assert all(torch.equal(kept[k], start[k]) for k in start)
    return verdicts[0] or ACCEPTED, result.reason


UNBOUNDED = AcceptanceConfig(max_update_norm=math.inf)


@pytest.mark.parametrize(
    ("case", "factor", "steps", "acc", "want"),
    [
        ("normal", 1.0, 1, AcceptanceConfig(), ACCEPTED),
        ("normal", 1.0, 3, AcceptanceConfig(), ACCEPTED),
        ("spike", 1.0, 1, AcceptanceConfig(), BAD_REWARD),
        ("overflow", 1.0, 1, AcceptanceConfig(max_abs_reward=math.inf), NONFINITE_ADVANTAGES),
        ("normal", math.inf, 1, AcceptanceConfig(), NONFINITE_UPDATE),
        ("normal", 1e3, 1, AcceptanceConfig(), UPDATE_NORM),
        # Constant positive rewards and raw returns as advantages: the step overshoots the
        # minimum of its own surrogate, which then rises (a natural loss increase).
        ("ones", 10.0, 1, UNBOUNDED, LOSS_INCREASE),
        ("tenths", 1.0, 1, UNBOUNDED, ACCEPTED),
    ],
)
def test_eval_and_runtime_give_the_same_verdict(
    point_run: Path,
    point_bundle: Path,
    case: str,
    factor: float,
    steps: int,
    acc: AcceptanceConfig,
    want: str,
) -> None:
    bundle = Bundle.load(point_bundle)
    il = bundle.manifest.inner_loop
    rewards = np.random.default_rng(1).normal(size=(il.episodes, il.horizon))
    if case == "spike":
        rewards[0, 5] = 1e30
    elif case == "overflow":
        rewards[:] = 1e308
    elif case in ("ones", "tenths"):
        rewards[:] = 1.0 if case == "ones" else 0.1
    got_eval, got_runtime = both_verdicts(
        point_run,
        bundle,
        episodes_of(bundle, rewards, 2),
        factor,
        steps,
        acc,
        raw_returns=case in ("ones", "tenths"),
    )
    assert got_eval == got_runtime == want
