from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch

from adapt_robot.config import ConfigError
from adapt_robot.meta.policy import GaussianMLPPolicy, PolicyConfig
from adapt_robot.meta.samplers import make_sampler
from adapt_robot.meta.samplers.config import SamplerConfig
from adapt_robot.meta.train_config import build_train_config
from adapt_robot.sim.registry import get_family

FIELDS = ("obs", "act", "rew", "mask", "adv", "success")


def setup(name: str):
    family = get_family(name)
    pol = GaussianMLPPolicy(family.obs_spec.dim, family.action_spec.dim, PolicyConfig(hidden=(16,)))
    return family, pol, pol.init_params(torch.Generator().manual_seed(0))


def same(a, b) -> bool:
    return all(np.array_equal(getattr(a, f), getattr(b, f)) for f in FIELDS)


@pytest.mark.parametrize(("name", "m", "k"), [("point", 7, 3), ("grasp", 3, 2)])
def test_process_sampler_matches_local_for_any_worker_count(name, m, k) -> None:
    family, pol, params = setup(name)
    tasks = family.sample_tasks(np.random.default_rng(0), m, "train")
    ref = make_sampler(family, pol, SamplerConfig(chunk_tasks=2)).sample(
        params, tasks, np.random.default_rng(5), k
    )
    for n in (1, 2):
        s = make_sampler(family, pol, SamplerConfig(kind="process", num_workers=n, chunk_tasks=2))
        try:
            assert same(ref, s.sample(params, tasks, np.random.default_rng(5), k))
            per = {n_: v.expand(m, *v.shape) for n_, v in params.items()}
            r1 = s.sample(per, tasks, np.random.default_rng(6), k, per_task=True)
        finally:
            s.close()
        r0 = make_sampler(family, pol, SamplerConfig(chunk_tasks=2)).sample(
            per, tasks, np.random.default_rng(6), k, per_task=True
        )
        assert same(r0, r1)


def test_killed_worker_is_replaced_and_every_task_returned() -> None:
    family, pol, params = setup("grasp")
    tasks = family.sample_tasks(np.random.default_rng(0), 4, "train")
    ref = make_sampler(family, pol, SamplerConfig(chunk_tasks=1)).sample(
        params, tasks, np.random.default_rng(1), 2
    )
    s = make_sampler(family, pol, SamplerConfig(kind="process", num_workers=2, chunk_tasks=1))
    try:
        info = s.worker_info()
        victim = info[0]["pid"]
        s.after_dispatch = lambda: os.kill(victim, signal.SIGKILL)
        r = s.sample(params, tasks, np.random.default_rng(1), 2)
        assert s.restarts == 1 and victim not in s.worker_pids()
        assert same(ref, r) and r.n_tasks == 4 and len(r.success) == 8
    finally:
        s.close()


def test_worker_that_keeps_dying_fails_loudly() -> None:
    family, pol, params = setup("point")
    tasks = family.sample_tasks(np.random.default_rng(0), 2, "train")
    cfg = SamplerConfig(kind="process", num_workers=1, max_retries=0)
    s = make_sampler(family, pol, cfg)
    try:
        s.after_dispatch = lambda: os.kill(s.worker_pids()[0], signal.SIGKILL)
        with pytest.raises(RuntimeError, match="lost its worker"):
            s.sample(params, tasks, np.random.default_rng(1), 200)
    finally:
        s.close()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"kind": "slurm"}, r"sampler\.kind: expected one of \['local', 'process', 'ray'\]"),
        ({"num_workers": 0}, r"sampler\.num_workers: expected a value >= 1"),
        ({"kind": "process", "address": "auto"}, r"sampler\.address: only used with"),
        ({"chunk_tasks": 0}, r"sampler\.chunk_tasks: expected a value >= 1"),
    ],
)
def test_sampler_config_validation(override, message) -> None:
    with pytest.raises(ConfigError, match=message):
        build_train_config({"family": "point", "sampler": override})


def test_default_kind_is_local() -> None:
    assert build_train_config({"family": "point"}).sampler.kind == "local"


@pytest.mark.slow
def test_ray_smoke_training_matches_local(tmp_path) -> None:
    ray = pytest.importorskip("ray")
    from adapt_robot.meta.trainer import Trainer

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        metrics = {}
        for kind in ("local", "ray"):
            cfg = build_train_config(
                {
                    "family": "point",
                    "out_dir": str(tmp_path / kind),
                    "policy": {"hidden": [16]},
                    "sampler": {
                        "kind": kind,
                        "tasks_per_iter": 4,
                        "episodes_per_task": 4,
                        "chunk_tasks": 2,
                        "num_workers": 2,
                    },
                    "budget": {"iterations": 2},
                    "eval": {"every": 2, "tasks": 2, "episodes_per_task": 2},
                }
            )
            run = Trainer(cfg).run()
            metrics[kind] = [
                {
                    k: v
                    for k, v in __import__("json").loads(ln).items()
                    if "seconds" not in k and "per_s" not in k
                }
                for ln in (run / "metrics.jsonl").read_text().splitlines()
            ]
        assert metrics["local"] == metrics["ray"]
    finally:
        ray.shutdown()


@pytest.mark.slow
def test_killed_ray_worker_is_survived() -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        family, pol, params = setup("grasp")
        tasks = family.sample_tasks(np.random.default_rng(0), 4, "train")
        ref = make_sampler(family, pol, SamplerConfig(chunk_tasks=1)).sample(
            params, tasks, np.random.default_rng(1), 2
        )
        s = make_sampler(family, pol, SamplerConfig(kind="ray", num_workers=2, chunk_tasks=1))
        info = s.worker_info()
        assert not any(i["torch"] for i in info)
        s.after_dispatch = lambda: os.kill(info[0]["pid"], signal.SIGKILL)
        r = s.sample(params, tasks, np.random.default_rng(1), 2)
        assert s.restarts >= 1 and same(ref, r)
        s.close()
    finally:
        ray.shutdown()


def test_pybullet_and_plugin_batches_are_capped_whatever_max_envs_says() -> None:
    from adapt_robot.meta.samplers.config import SamplerConfig
    from adapt_robot.sim.engines import GYM_MAX_ENVS, PYBULLET_MAX_ENVS

    # Each PyBullet env is a physics client of ~36 MB: a 500-env batch would take ~18 GB.
    assert SamplerConfig(engine="pybullet").chunk_size(10) == PYBULLET_MAX_ENVS // 10
    assert SamplerConfig(engine="pybullet", max_envs=20).chunk_size(10) == 2
    assert SamplerConfig(engine="mujoco").chunk_size(10) == 4096 // 10
    # A plug-in env is a whole simulator: 16 at most, even when the engine is resolved later.
    assert SamplerConfig().chunk_size(3, "gym") == GYM_MAX_ENVS // 3
    assert SamplerConfig(max_envs=4).chunk_size(2, "gym") == 2
    assert SamplerConfig().chunk_size(40, "gym") == 1  # one task per chunk, whatever its K
