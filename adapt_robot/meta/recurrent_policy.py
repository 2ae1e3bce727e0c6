"""The recurrent policy of RL²: a GRU over the trial, exported with its hidden state.

RL² (Duan et al. 2016, "RL²: Fast Reinforcement Learning via Slow Reinforcement Learning";
Wang et al. 2016, "Learning to reinforcement learn") adapts in its activations: a recurrent
policy sees, at every step, the observation and what happened at the previous step (the
action it sent, the reward it got, whether a new episode started), and its hidden state is
carried across the episodes of one task. No gradient step runs on the robot.

**Input.** ``forward`` reads the *trial input* ``[..., O + A + 2]`` that :func:`trial_input`
lays out (the protocol's rule for a policy whose memory needs the previous action and reward:
its ``obs_dim`` is that width)::

    [ obs (O) | prev_action (A) | prev_reward (1) | episode_start (1) ]

``prev_action`` is the action sent at the previous step (clipped to the bounds; 0 at an
episode start), ``prev_reward`` the reward of that step (0 at an episode start), and
``episode_start`` 1 on the first step of every episode, else 0. Inside, the observation goes
through the frozen normaliser (O entries, as for every policy), the reward is multiplied by
``cfg.reward_scale`` and clipped to ``+-cfg.obs_clip``.

**Network.** ``h' = GRU(x, h)`` with PyTorch's gate layout (``gru.w_ih [3H, I]``, ``gru.w_hh
[3H, H]``, ``gru.b_ih``, ``gru.b_hh``, gates ordered reset, update, new), then a head MLP on
``[h', x]`` (widths ``cfg.hidden[1:]``) with a tanh-squashed mean. ``H = cfg.hidden[0]``.
The state is ``h`` ``[..., H]``, zeros at the start of a task (:meth:`initial_state`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import torch

from adapt_robot.meta.policy import ObsNormalizer, PolicyConfig, normalize_obs
from adapt_robot.meta.policy_protocol import GaussianHead, Params, State

FEEDBACK = ("prev_action", "prev_reward", "episode_start")
"""What the trial input adds to the observation, in order (graph input names too)."""


def trial_input(
    obs: torch.Tensor,
    prev_action: torch.Tensor,
    prev_reward: torch.Tensor,
    episode_start: torch.Tensor,
) -> torch.Tensor:
    """``[obs | prev_action | prev_reward | episode_start]`` along the last axis.

    ``prev_reward`` and ``episode_start`` are ``[..., 1]``. The one layout training, export and
    the robot's graph use.
    """
    return torch.cat([obs, prev_action, prev_reward, episode_start], dim=-1)


def gru_cell(params: Mapping[str, torch.Tensor], x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One GRU step ``h' = (1 - u) * n + u * h`` (Cho et al. 2014; PyTorch's gate layout)."""
    gi = x @ params["gru.w_ih"].transpose(-1, -2) + params["gru.b_ih"]
    gh = h @ params["gru.w_hh"].transpose(-1, -2) + params["gru.b_hh"]
    i_r, i_u, i_n = gi.chunk(3, dim=-1)
    h_r, h_u, h_n = gh.chunk(3, dim=-1)
    r = torch.sigmoid(i_r + h_r)
    u = torch.sigmoid(i_u + h_u)
    n = torch.tanh(i_n + r * h_n)
    return (1 - u) * n + u * h


class GRUPolicy(GaussianHead):
    """A GRU policy over the trial input (see the module docstring)."""

    kind: str = "gru"
    action_squash: Literal["tanh", "clip"] = "tanh"
    numpy_forward: bool = False

    def __init__(self, family_obs_dim: int, act_dim: int, cfg: PolicyConfig) -> None:
        if family_obs_dim < 1 or act_dim < 1:
            raise ValueError(
                f"policy: obs_dim and act_dim must be >= 1, got {family_obs_dim}, {act_dim}"
            )
        if not cfg.hidden:
            raise ValueError("policy.hidden: a recurrent policy needs at least the GRU width")
        self.family_obs_dim = family_obs_dim
        self.obs_dim = family_obs_dim + act_dim + 2
        self.act_dim = act_dim
        self.state_dim = cfg.hidden[0]
        self.cfg = cfg
        self.normalizer = ObsNormalizer(family_obs_dim)
        self.head_sizes = (self.state_dim + self.obs_dim, *cfg.hidden[1:], act_dim)

    def init_params(self, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Params:
        """Uniform ``+-1/sqrt(H)`` GRU weights (PyTorch's default), a small output layer."""
        h, i = self.state_dim, self.obs_dim
        bound = 1.0 / math.sqrt(h)

        def uniform(*shape: int, b: float = bound) -> torch.Tensor:
            return (torch.rand(*shape, generator=generator, dtype=dtype) * 2 - 1) * b

        params: Params = {
            "gru.w_ih": uniform(3 * h, i),
            "gru.w_hh": uniform(3 * h, h),
            "gru.b_ih": uniform(3 * h),
            "gru.b_hh": uniform(3 * h),
        }
        n = len(self.head_sizes) - 1
        for k, (fan_in, fan_out) in enumerate(
            zip(self.head_sizes[:-1], self.head_sizes[1:], strict=True)
        ):
            scale = 0.01 if k == n - 1 else 1.0
            params[f"head{k}.w"] = uniform(fan_out, fan_in, b=1.0 / math.sqrt(fan_in)) * scale
            params[f"head{k}.b"] = torch.zeros(fan_out, dtype=dtype)
        params["log_std"] = torch.full((self.act_dim,), self.cfg.init_log_std, dtype=dtype)
        return params

    def adapted_names(self, params: Mapping[str, torch.Tensor]) -> list[str]:
        """None: RL² adapts in its activations, not its parameters."""
        del params
        return []

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """The trial input as the network reads it: obs normalised, reward scaled and clipped."""
        o = self.family_obs_dim
        a = self.act_dim
        x_obs = normalize_obs(obs[..., :o], self.normalizer, self.cfg)
        clip = self.cfg.obs_clip
        reward = torch.clamp(obs[..., o + a : o + a + 1] * self.cfg.reward_scale, -clip, clip)
        return torch.cat([x_obs, obs[..., o : o + a], reward, obs[..., o + a + 1 :]], dim=-1)

    def initial_state(self, batch: Sequence[int], dtype: torch.dtype = torch.float32) -> State:
        """Zeros ``[*batch, H]``: nothing known of a new task."""
        return torch.zeros(*batch, self.state_dim, dtype=dtype)

    def forward(
        self, params: Mapping[str, torch.Tensor], obs: torch.Tensor, state: State = None
    ) -> tuple[torch.Tensor, torch.Tensor, State]:
        """Mean ``[..., A]``, log std ``[A]`` and ``h'`` for the trial input ``obs``."""
        if state is None:
            state = torch.zeros(*obs.shape[:-1], self.state_dim, dtype=obs.dtype)
        x = self.normalize(obs)
        h = gru_cell(params, x, state)
        y = torch.cat([h, x], dim=-1)
        n = len(self.head_sizes) - 1
        for k in range(n):
            y = y @ params[f"head{k}.w"].transpose(-1, -2) + params[f"head{k}.b"]
            if k < n - 1:
                y = torch.tanh(y) if self.cfg.activation == "tanh" else torch.relu(y)
        return torch.tanh(y), params["log_std"], h

    def state_dict(self) -> dict[str, Any]:
        """Non-parameter state (the normaliser)."""
        return {"normalizer": self.normalizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.normalizer.load_state_dict(state["normalizer"])
