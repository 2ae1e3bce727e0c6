"""Settings and fixtures shared by every test directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("MUJOCO_GL", "osmesa")
os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")


ROOT = Path(__file__).resolve().parents[1]
SMOKE = str(ROOT / "launch" / "smoke.yaml")
TINY = (
    "budget.iterations=1",
    "sampler.tasks_per_iter=2",
    "sampler.episodes_per_task=2",
    "eval.tasks=1",
    "eval.episodes_per_task=1",
)


def train_tiny(out: Path, *overrides: str) -> Path:
    """Train launch/smoke.yaml for one tiny iteration (plus ``overrides``) into ``out``."""
    from adapt_robot.jobs.train import run_train

    return run_train(SMOKE, [f"out_dir={out}", *TINY, *overrides], resume=False)


def train_launch(name: str, out: Path, *overrides: str) -> Path:
    """Train ``launch/NAME`` (plus ``overrides``) into ``out``."""
    from adapt_robot.jobs.train import run_train

    return run_train(str(ROOT / "launch" / name), [f"out_dir={out}", *overrides], resume=False)


def export(run: Path, out: Path) -> Path:
    """Export ``run`` to a bundle at ``out``."""
    from adapt_robot.export import export_bundle

    return export_bundle(run, out)


# Smoke-trained runs and their bundles (runtime, deploy, bench and docs tests), once per session.
# ``point`` has no reward.onnx (its reward uses the hidden goal); ``grasp`` carries one. Both
# are trained for one tiny iteration: the tests need real exported graphs, not good policies.
@pytest.fixture(scope="session")
def point_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("rt_point") / "run")


@pytest.fixture(scope="session")
def point_bundle(point_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(point_run, tmp_path_factory.mktemp("rt_point_bundle") / "b")


@pytest.fixture(scope="session")
def grasp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train_tiny(tmp_path_factory.mktemp("rt_grasp") / "run", "family=grasp")


@pytest.fixture(scope="session")
def grasp_bundle(grasp_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(grasp_run, tmp_path_factory.mktemp("rt_grasp_bundle") / "b")


@pytest.fixture(scope="session")
def latent_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The latent learner (identification inner loss) on ``point``, a few seconds of it."""
    return train_launch("smoke_latent.yaml", tmp_path_factory.mktemp("rt_latent") / "run")


@pytest.fixture(scope="session")
def latent_bundle(latent_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(latent_run, tmp_path_factory.mktemp("rt_latent_bundle") / "b")


@pytest.fixture(scope="session")
def law_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The law_id learner (the grasp control law told a decoded latent), one tiny iteration."""
    return train_launch("smoke_law.yaml", tmp_path_factory.mktemp("rt_law") / "run")


@pytest.fixture(scope="session")
def law_bundle(law_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(law_run, tmp_path_factory.mktemp("rt_law_bundle") / "b")


@pytest.fixture(scope="session")
def rl2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """RL² (a GRU policy, its state carried across a trial's episodes) on ``point``, seconds."""
    return train_launch("smoke_rl2.yaml", tmp_path_factory.mktemp("rt_rl2") / "run")


@pytest.fixture(scope="session")
def rl2_bundle(rl2_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(rl2_run, tmp_path_factory.mktemp("rt_rl2_bundle") / "b")


@pytest.fixture(scope="session")
def rl2_grasp_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-iteration RL² grasp bundle (it carries reward.onnx, so the robot can feed the
    policy rewards computed on the device)."""
    out = tmp_path_factory.mktemp("rt_rl2_grasp") / "run"
    run = train_launch(
        "smoke_rl2.yaml", out, "family=grasp", "budget.iterations=1", "sampler.tasks_per_iter=2"
    )
    return export(run, tmp_path_factory.mktemp("rt_rl2_grasp_bundle") / "b")


@pytest.fixture(scope="session")
def pearl_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PEARL (a context encoder's posterior over the policy's latent) on ``point``, seconds."""
    out = tmp_path_factory.mktemp("rt_pearl") / "run"
    return train_launch("smoke_pearl.yaml", out, "budget.iterations=1")


@pytest.fixture(scope="session")
def pearl_bundle(pearl_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(pearl_run, tmp_path_factory.mktemp("rt_pearl_bundle") / "b")
