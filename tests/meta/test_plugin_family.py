"""The plug-in protocol: a user's Gymnasium env with set_task is meta-trained like a built-in."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapt_robot.config import ConfigError, to_dict
from adapt_robot.jobs.train import run_train
from adapt_robot.meta.train_config import load_train_config
from adapt_robot.sim.envs.vector import VectorTaskEnv
from adapt_robot.sim.families.gym_family import GymTaskFamily, gym_task_family
from adapt_robot.sim.registry import get_family
from tests.meta import plugin_env
from tests.meta.test_trainer import SMOKE

PLUGIN = ["imports=[tests.meta.plugin_env]", "family=slider"]


def test_vector_env_steps_the_users_env_with_its_reward_and_success() -> None:
    family = get_family("slider")
    env = VectorTaskEnv(family, "gym", 2)
    env.set_tasks([plugin_env.SliderTask(goal=0.1), plugin_env.SliderTask(goal=-0.1)])
    obs = env.reset(np.random.default_rng(0))
    _, rew, _, _, info = env.step(np.array([[1.0], [1.0]]))
    x = obs[:, 0] + 0.1
    np.testing.assert_allclose(rew, -np.abs(x - np.array([0.1, -0.1])), atol=1e-6)
    assert info["success"].tolist() == [True, False]
    env.close()


def test_family_pickles_by_name_for_worker_processes() -> None:
    family = get_family("slider")
    again = pickle.loads(pickle.dumps(family))
    assert type(again) is type(family) and again.obs_spec == family.obs_spec


def test_bad_plugins_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match=r"actions must lie in \[-1, 1\]"):

        class Wide(plugin_env.SliderEnv):
            action_space = plugin_env.gymnasium.spaces.Box(-5.0, 5.0, (1,), np.float32)

        gym_task_family("wide", Wide, plugin_env.sample_slider_tasks, task_type=object, max_steps=5)
    with pytest.raises(ConfigError, match=r"imports\[0\]: cannot import 'no.such.module'"):
        load_train_config(SMOKE, ["imports=[no.such.module]"])


def test_meta_training_a_plugin_family_improves_with_adaptation(tmp_path: Path) -> None:
    over = [
        *PLUGIN,
        f"out_dir={tmp_path}",
        "budget.iterations=30",
        "eval.every=30",
        "eval.tasks=10",
        "algo.inner_lr=0.3",
        "algo.outer_lr=0.01",
    ]
    run = run_train(SMOKE, over, resume=False)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    ev = rows[-1]["eval"]
    # Goals are on either side of the start: without adaptation the best is to stay put;
    # one inner step on the task's own episodes must move towards its goal.
    assert ev["post_return"] > ev["pre_return"] + 2.0


def test_worker_processes_find_the_plugin_family(tmp_path: Path) -> None:
    over = [
        *PLUGIN,
        f"out_dir={tmp_path}",
        "budget.iterations=1",
        "sampler.kind=process",
        "sampler.num_workers=2",
        "sampler.chunk_tasks=5",
    ]
    run = run_train(SMOKE, over, resume=False)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["env_steps"] == 2 * 10 * 10 * 15  # pre + post, 10 tasks x 10 episodes


def test_plugin_envs_are_capped_per_batch_and_reused_across_iterations(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapt_robot.sim.engines import GYM_MAX_ENVS

    built = [0]
    init = plugin_env.SliderEnv.__init__

    def counted(self: plugin_env.SliderEnv) -> None:
        built[0] += 1
        init(self)

    monkeypatch.setattr(plugin_env.SliderEnv, "__init__", counted)

    def envs_built(iterations: int) -> int:
        built[0] = 0
        over = [*PLUGIN, f"out_dir={tmp_path / str(iterations)}", f"budget.iterations={iterations}"]
        run_train(SMOKE, over, resume=False)
        return built[0]

    # 10 tasks x 10 episodes per call: one env per episode would be 100 envs per batch.
    once, thrice = envs_built(1), envs_built(3)
    assert once == thrice  # later iterations reuse the first iteration's envs (set_task)
    assert once <= 2 * GYM_MAX_ENVS  # a batch per batch size (train, eval), each capped


def test_plugin_tasks_are_recorded_without_assuming_a_method_on_them() -> None:
    from adapt_robot.sim.core.family import task_record

    family = get_family("slider")
    assert family.describe_task(plugin_env.SliderTask(goal=0.5)) == {"goal": 0.5}

    class Plain:
        def __init__(self) -> None:
            self.mass = np.float32(2.0)
            self.size = np.arange(3)
            self._private = 1

    class Slots:
        __slots__ = ("x",)

    assert task_record(Plain()) == {"mass": 2.0, "size": [0, 1, 2]}
    assert task_record({"a": (1, 2)}) == {"a": [1, 2]}
    assert set(task_record(Slots())) == {"repr"}
    json.dumps(task_record(Plain()))


@pytest.fixture(scope="module")
def slider_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("slider_run")
    return run_train(SMOKE, [*PLUGIN, f"out_dir={out}", "budget.iterations=1"], resume=False)


def test_eval_export_and_deploy_run_on_a_plugin_family(slider_run: Path, tmp_path: Path) -> None:
    from adapt_robot.export.bundle import export_bundle
    from adapt_robot.jobs.deploy import DeployConfig, run_deploy
    from adapt_robot.jobs.evaluate import make_protocol, run_eval

    reports, _ = run_eval([slider_run], make_protocol(tasks=3, seed=1), tmp_path / "eval")
    assert reports[0].tasks[0].keys() == {"goal"}
    bundle = export_bundle(slider_run, tmp_path / "bundle")
    report = run_deploy(
        DeployConfig(
            bundle=bundle,
            robot="sim:gym",
            objects=2,
            post_episodes=1,
            progress=False,
            imports=("tests.meta.plugin_env",),
        )
    )
    assert [set(o.task) for o in report.objects] == [{"goal"}, {"goal"}]


def test_deploy_names_the_plugin_module_the_bundle_was_trained_with(
    slider_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapt_robot.export.bundle import export_bundle
    from adapt_robot.jobs.deploy import DeployConfig, run_deploy
    from adapt_robot.sim import registry

    bundle = export_bundle(slider_run, tmp_path / "bundle")
    monkeypatch.delitem(registry._FACTORIES, "slider")
    with pytest.raises(ConfigError, match=r"--import tests\.meta\.plugin_env"):
        run_deploy(DeployConfig(bundle=bundle, robot="sim:gym", objects=1, progress=False))
    with pytest.raises(ConfigError, match=r"--import\[0\]: cannot import 'no_such_plugin'"):
        run_deploy(
            DeployConfig(bundle=bundle, robot="sim:gym", objects=1, imports=("no_such_plugin",))
        )


def test_export_says_the_plugin_module_is_missing_not_that_the_checkpoint_is_corrupt(
    slider_run: Path, tmp_path: Path
) -> None:
    import shutil

    import torch

    from adapt_robot.export.bundle import ExportError, export_bundle

    run = tmp_path / "run"
    shutil.copytree(slider_run, run)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    ckpt["config"]["imports"] = ["no_such_plugin_module"]
    torch.save(ckpt, run / "checkpoint.pt")
    with pytest.raises(ExportError, match="cannot be rebuilt here") as err:
        export_bundle(run, tmp_path / "bundle")
    assert "no module named 'no_such_plugin_module'" in str(err.value)
    assert "truncated" not in str(err.value)


def test_launch_file_imports_are_found_beside_it_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    folder = tmp_path / "my_project"
    folder.mkdir()
    (folder / "my_slider_family.py").write_text(
        "from adapt_robot.sim.registry import family_names, register_family\n"
        "from tests.meta.plugin_env import SliderFamily\n"
        "if 'my_slider' not in family_names():\n"
        "    register_family('my_slider', SliderFamily)\n"
    )
    launch = folder / "launch.yaml"
    launch.write_text(Path(SMOKE).read_text() + "\nimports: [my_slider_family]\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(launch, ["family=my_slider"])
    assert cfg.import_paths == (str(folder.resolve()),)
    from adapt_robot.meta.train_config import build_train_config

    sys.modules.pop("my_slider_family")  # the saved config alone finds it again
    sys.path.remove(str(folder.resolve()))
    rebuilt = build_train_config(to_dict(cfg))
    assert rebuilt.import_paths == cfg.import_paths


class _EarlyTruncation(plugin_env.SliderEnv):
    """Truncates after 5 steps by itself (an env-side time limit without a spec)."""

    def reset(self, **kw: object) -> tuple[np.ndarray, dict[str, object]]:
        self.t = 0
        return super().reset(**kw)  # type: ignore[arg-type]

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, object]]:
        self.t += 1
        obs, r, term, _, info = super().step(action)
        if self.t > 5:
            raise RuntimeError("You must reset the env manually once truncate==True")
        return obs, r, term, self.t == 5, info


def test_the_envs_own_time_limit_ends_the_episode_and_a_longer_max_steps_is_refused() -> None:
    import gymnasium

    fam = gym_task_family(
        "slider_trunc",
        _EarlyTruncation,
        plugin_env.sample_slider_tasks,
        task_type=plugin_env.SliderTask,
        max_steps=8,
    )()
    env = VectorTaskEnv(fam, "gym", 2)
    env.set_tasks(fam.sample_tasks(np.random.default_rng(0), 2, "train"))
    env.reset(np.random.default_rng(0))
    ends = []
    for _ in range(8):
        env.step(np.zeros((2, 1)))
        ends.append(bool(env.done.all()))
    env.close()
    assert ends.index(True) == 4  # done after the 5th step, and never stepped past it

    def limited() -> gymnasium.Env[np.ndarray, np.ndarray]:
        return gymnasium.wrappers.TimeLimit(plugin_env.SliderEnv(), max_episode_steps=10)

    with pytest.raises(ValueError, match=r"max_steps 11 is longer than the env's own time limit"):
        gym_task_family(
            "slider_lim",
            limited,
            plugin_env.sample_slider_tasks,
            task_type=plugin_env.SliderTask,
            max_steps=11,
        )


def test_a_plugin_expert_drives_the_oracle_and_the_warm_start(tmp_path: Path) -> None:
    # gym_task_family(expert=...): the scoreboard's expert arm and a warm start use it.
    from adapt_robot.scoreboard.arms.base import ScoreSettings
    from adapt_robot.scoreboard.arms.experts import ExpertArm, ExpertSpec
    from adapt_robot.scoreboard.results import FIXED

    family = get_family("slider")
    tasks = family.sample_tasks(np.random.default_rng(3), 6, "test")
    arm = ExpertArm(
        ExpertSpec(name="expert", kind="oracle", type="expert"),
        ScoreSettings(split="test", post_episodes=2),
    )
    stage = arm.score(family, "gym", tasks, seed=0).stages[FIXED]
    assert stage.rate == 1.0  # the proportional controller told the goal reaches it
    over = [
        *PLUGIN,
        f"out_dir={tmp_path}",
        "budget.iterations=1",
        "warm_start.tasks=4",
        "warm_start.episodes_per_task=1",
    ]
    run_train(SMOKE, over, resume=False)
    first = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert first["iteration"] == 0 and first["warm_start"]


def test_a_plugin_without_an_expert_says_how_to_add_one() -> None:
    def slider(name: str, **kw: Any) -> GymTaskFamily:
        return gym_task_family(
            name,
            plugin_env.make_slider_env,
            plugin_env.sample_slider_tasks,
            task_type=plugin_env.SliderTask,
            max_steps=5,
            **kw,
        )()

    bare = slider("bare_slider")
    with pytest.raises(ValueError, match=r"no expert; pass expert=FACTORY to gym_task_family"):
        bare.expert(plugin_env.SliderTask(goal=0.5))
    broken = slider("broken_slider", expert=lambda task: object())
    with pytest.raises(ValueError, match=r"without reset or act\(\)"):
        broken.expert(plugin_env.SliderTask(goal=0.5))


BESIDE = """
from adapt_robot.sim.families.gym_family import gym_task_family
from adapt_robot.sim.registry import family_names, register_family
from tests.meta import plugin_env

if "slider_beside" not in family_names():
    register_family(
        "slider_beside",
        gym_task_family(
            "slider_beside",
            plugin_env.make_slider_env,
            plugin_env.sample_slider_tasks,
            task_type=plugin_env.SliderTask,
            max_steps=15,
            expert=plugin_env.SliderExpert,
        ),
    )
"""


def test_experts_and_scoreboard_launch_files_import_plugin_modules_beside_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from adapt_robot.cli import main
    from adapt_robot.scoreboard.config import load_scoreboard_config

    (tmp_path / "slider_beside_mod.py").write_text(BESIDE)
    monkeypatch.chdir(tmp_path.parent)  # found beside the launch file, not in the cwd
    experts = tmp_path / "experts.yaml"
    experts.write_text(
        "imports: [slider_beside_mod]\nfamilies: [slider_beside]\nengines: [gym]\n"
        f"tasks_per_split: 2\ngif: false\nout_dir: {tmp_path / 'experts'}\n"
    )
    assert main(["experts", str(experts)]) == 0
    rows = json.loads((tmp_path / "experts" / "results.json").read_text())
    assert rows[0]["family"] == "slider_beside" and rows[0]["train_success"] == 1.0

    board = tmp_path / "board.yaml"
    board.write_text("imports: [no_such_plugin]\nfamily: slider_beside\nengines: [gym]\n")
    with pytest.raises(ConfigError, match=r"imports\[0\]: cannot import 'no_such_plugin'"):
        load_scoreboard_config(board)
    board.write_text("imports: [slider_beside_mod]\nfamily: slider_beside\nengines: [gym]\n")
    with pytest.raises(ConfigError, match="arms: expected a list"):  # the family was found
        load_scoreboard_config(board)
