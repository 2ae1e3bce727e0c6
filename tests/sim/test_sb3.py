"""Outside tools work on the single env: Stable-Baselines3's checker and a short PPO run."""

from __future__ import annotations

import gymnasium
import numpy as np

import adapt_robot.sim  # noqa: F401  (registers the adapt_robot/* ids)
from adapt_robot.sim.registry import get_family


def test_stable_baselines3_checks_and_trains_ppo_on_the_grasp_env() -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_checker import check_env

    env = gymnasium.make("adapt_robot/Grasp-v0")
    check_env(env.unwrapped, warn=True)
    model = PPO("MlpPolicy", env, n_steps=512, batch_size=128, n_epochs=2, seed=0, device="cpu")
    model.learn(2_000)
    assert model.num_timesteps >= 2_000
    # SB3's Monitor saw whole episodes, each ended by the family's own time limit or earlier.
    lengths = [int(ep["l"]) for ep in model.ep_info_buffer]
    assert lengths and max(lengths) <= get_family("grasp").max_steps
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action) and np.isfinite(action).all()
    env.close()
