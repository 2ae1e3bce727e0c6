"""RL² (Duan et al. 2016; Wang et al. 2016): a recurrent policy trained with PPO on trials.

A *trial* is ``trial_episodes`` episodes of one task played one after the other by the
:class:`~adapt_robot.meta.recurrent_policy.GRUPolicy`, its hidden state carried across the
episodes (reset only when a new task starts), so what it learns to do in episode 2 depends on
what it met in episode 1. PPO (Schulman et al. 2017) maximises the whole trial's return: the
trial is one sequence for the advantages (GAE over a value function of the policy's hidden
state and input, not exported) and the ratio. Each iteration plays ``sampler.tasks_per_iter``
train tasks side by side in one env batch, one env per task.

Adaptation lives in the activations: ``adapted_names`` is empty, no inner step is exported,
and the robot's adapter carries the state (:mod:`adapt_robot.runtime.memory`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.meta.algorithms.base import Learner, check_finite, clipped_surrogate, masked_mean
from adapt_robot.meta.policy import Params, PolicyConfig, detach
from adapt_robot.meta.policy_protocol import Policy, diag_gaussian_log_prob, unroll
from adapt_robot.meta.recurrent_policy import GRUPolicy, trial_input
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.runtime.returns import gae, normalize_advantages
from adapt_robot.sim.core.family import Expert, TaskFamily
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import EnvBatches, VectorTaskEnv


@dataclass(frozen=True, kw_only=True)
class RL2Config:
    """RL² settings."""

    name: Literal["rl2"] = setting("rl2", doc="Algorithm name.")
    trial_episodes: int = setting(
        2, doc="Episodes per trial: the hidden state is carried across them.", ge=1, le=8
    )
    lr: float = setting(3e-4, doc="Adam step size (policy and value function).", gt=0)
    epochs: int = setting(4, doc="PPO epochs per iteration.", ge=1)
    minibatches: int = setting(4, doc="Minibatches of whole trials per epoch.", ge=1)
    clip: float = setting(0.2, doc="PPO ratio clip.", gt=0, le=1)
    vf_coef: float = setting(0.5, doc="Weight of the value loss.", ge=0)
    max_grad_norm: float = setting(1.0, doc="Gradient norm clip.", gt=0)
    value_hidden: int = setting(64, doc="Hidden width of the value function.", ge=1)
    dagger_iterations: int = setting(
        0,
        doc="First iterations trained by DAgger from the privileged scripted experts instead of "
        "PPO: the policy acts (the expert's action executed with probability expert_beta, "
        "falling linearly to 0), the expert told the true task labels every visited state, "
        "and the policy's mean is regressed on the labels over whole trials. 0: PPO only.",
        ge=0,
    )
    expert_beta: float = setting(
        0.5, doc="DAgger: initial probability of executing the expert's action.", ge=0, le=1
    )
    beta_iterations: int | None = setting(
        None,
        doc="DAgger: iterations over which expert_beta falls linearly to 0 (None: "
        "dagger_iterations).",
        ge=1,
    )
    dagger_lr: float = setting(1e-3, doc="Adam step size of the DAgger iterations.", gt=0)
    bc_coef: float = setting(
        0.0,
        doc="PPO iterations: weight of the same imitation loss on the experts' labels of the "
        "visited states (nothing executed from them), which keeps PPO near the imitation; 0: "
        "PPO alone.",
        ge=0,
    )


@dataclass(frozen=True)
class TrialRollouts:
    """Trials of ``M`` tasks as compact sequences ``[M, L, ...]`` (live steps first).

    Row ``i`` holds task ``i``'s episodes one after the other with the dead steps of an episode
    that ended early left out, so a plain unroll from the initial state sees exactly the
    inputs the rollout fed the policy. ``mask`` is 1 on those steps, 0 on the tail padding.
    """

    x: np.ndarray
    """Trial inputs ``[M, L, O + A + 2]`` (:func:`trial_input`)."""
    act: np.ndarray
    """Actions drawn (before the clip) ``[M, L, A]``."""
    rew: np.ndarray
    """Rewards ``[M, L]``."""
    mask: np.ndarray
    """1 on live steps, 0 on the tail padding ``[M, L]``."""
    episode: np.ndarray
    """Episode index within the trial of every step ``[M, L]`` (-1 on padding)."""
    success: np.ndarray
    """Success of every episode ``[M, K]``."""
    label: np.ndarray | None = None
    """The experts' clean actions in the visited states ``[M, L, A]`` (DAgger only)."""

    @property
    def env_steps(self) -> int:
        """Live transitions."""
        return int(self.mask.sum())

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode ``[M, K]``."""
        k = self.success.shape[1]
        return np.stack([(self.rew * (self.episode == e)).sum(1) for e in range(k)], axis=1)


def play_trials(
    policy: GRUPolicy,
    params: Mapping[str, torch.Tensor],
    env: VectorTaskEnv,
    tasks: Sequence[TaskParams],
    episodes: int,
    rng: np.random.Generator,
    *,
    deterministic: bool = False,
    experts: Sequence[Expert] | None = None,
    beta: float = 0.0,
) -> TrialRollouts:
    """``episodes`` episodes of each task in turn, one env per task, the state carried.

    Gaussian actions (the policy's mean when ``deterministic``) from ``rng``; the previous
    action fed back is the one sent (clipped to the action bounds). With ``experts`` (one per
    task, told the true task) every visited state is labelled with the expert's clean action,
    and with probability ``beta`` per step that action is executed instead (DAgger).
    """
    m, horizon = len(tasks), env.max_steps
    a_dim = env.act_dim
    low = env.family.action_spec.low
    high = env.family.action_spec.high
    env.set_tasks(list(tasks))
    length = episodes * horizon
    xs = np.zeros((m, length, policy.obs_dim), dtype=np.float32)
    acts = np.zeros((m, length, a_dim), dtype=np.float32)
    rews = np.zeros((m, length))
    mask = np.zeros((m, length))
    ep_of = np.full((m, length), -1, dtype=np.int64)
    success = np.zeros((m, episodes), dtype=bool)
    labels = np.zeros_like(acts) if experts is not None else None
    fill = np.zeros(m, dtype=np.int64)
    rows = np.arange(m)
    with torch.no_grad():
        h = torch.zeros(m, policy.state_dim)
        for e in range(episodes):
            obs = env.reset(rng)
            for expert in experts or ():
                expert.reset()
            prev_a = np.zeros((m, a_dim))
            prev_r = np.zeros((m, 1))
            start = np.ones((m, 1))
            for _ in range(horizon):
                live = ~env.done
                if not live.any():
                    break
                x = trial_input(
                    *(torch.as_tensor(v, dtype=torch.float32) for v in (obs, prev_a, prev_r, start))
                )
                mean, log_std, h_new = policy.forward(params, x, h)
                assert h_new is not None
                mu = mean.double().numpy()
                a = mu
                if not deterministic:
                    a = mu + np.exp(log_std.double().numpy()) * rng.standard_normal(mu.shape)
                idx = fill[live]
                if experts is not None and labels is not None:
                    clean = np.clip(
                        np.stack([ex.act(o) for ex, o in zip(experts, obs, strict=True)]), low, high
                    )
                    labels[rows[live], idx] = clean[live]
                    if beta > 0.0:
                        a = np.where((rng.uniform(size=m) < beta)[:, None], clean, a)
                xs[rows[live], idx] = x.numpy()[live]
                acts[rows[live], idx] = a[live]
                mask[rows[live], idx] = 1.0
                ep_of[rows[live], idx] = e
                h = torch.where(torch.as_tensor(live)[:, None], h_new, h)
                sent = np.clip(a, low, high)
                obs, r, _, _, _ = env.step(sent)
                rews[rows[live], idx] = r[live]
                fill[live] += 1
                prev_a = np.where(live[:, None], sent, prev_a)
                prev_r = np.where(live[:, None], r[:, None], prev_r)
                start = np.zeros((m, 1))
            success[:, e] = env.episode_success
    width = max(1, int(fill.max()))
    return TrialRollouts(
        xs[:, :width],
        acts[:, :width],
        rews[:, :width],
        mask[:, :width],
        ep_of[:, :width],
        success,
        None if labels is None else labels[:, :width],
    )


class RL2(Learner):
    """RL² with PPO (see the module docstring)."""

    name = "rl2"
    warm_startable = False

    def __init__(self, policy: Policy, sampler: Sampler, cfg: RL2Config, seed: int) -> None:
        if not isinstance(policy, GRUPolicy):
            raise TypeError(f"rl2 trains a GRUPolicy, got {type(policy).__name__}")
        super().__init__(policy, sampler, inner_lr=1.0, inner_steps=1, learn_rates=False, seed=seed)
        self.gru: GRUPolicy = policy
        self.cfg = cfg
        gen = torch.Generator().manual_seed(seed + 1)
        width = policy.state_dim + policy.obs_dim
        self.value: Params = {
            k: v.requires_grad_(True) for k, v in _value_init(width, cfg.value_hidden, gen).items()
        }
        self.optimizer = torch.optim.Adam([*self.params.values(), *self.value.values()], lr=cfg.lr)
        self._envs = EnvBatches(sampler.family)
        self.iterations_done = 0
        """Iterations trained (checkpointed: DAgger's schedule resumes where it stopped)."""

    @classmethod
    def make_policy(cls, family: TaskFamily[Any], cfg: PolicyConfig) -> Policy:
        """The GRU policy over the family's trial input."""
        if cfg.module:
            raise ValueError("policy.module: rl2 trains its own GRU policy; remove policy.module")
        return GRUPolicy(family.obs_spec.dim, family.action_spec.dim, cfg)

    def env(self, batch: int) -> VectorTaskEnv:
        """The learner's env batch of ``batch`` envs (one per task), made once per size."""
        return self._envs.get(self.sampler.engine, batch)

    def close(self) -> None:
        """Release the learner's own env batches and the sampler's."""
        self._envs.close()
        super().close()

    def trials(
        self,
        tasks: Sequence[TaskParams],
        rng: np.random.Generator,
        deterministic: bool = False,
        beta: float | None = None,
    ) -> TrialRollouts:
        """One trial of ``cfg.trial_episodes`` episodes per task with the current params.

        ``beta`` not None: labelled by the experts, executing theirs with that probability.
        """
        family = self.sampler.family
        return play_trials(
            self.gru,
            detach(self.params),
            self.env(len(tasks)),
            tasks,
            self.cfg.trial_episodes,
            rng,
            deterministic=deterministic,
            experts=None if beta is None else [family.expert(t) for t in tasks],
            beta=beta or 0.0,
        )

    def values(self, x: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """The value function ``V([h', x]) [M, L]``."""
        y = torch.cat([hidden, self.gru.normalize(x)], dim=-1)
        y = torch.tanh(y @ self.value["v0.w"].T + self.value["v0.b"])
        return (y @ self.value["v1.w"].T + self.value["v1.b"])[..., 0]

    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """Play one trial per train task, then PPO epochs over minibatches of whole trials.

        The first ``dagger_iterations`` iterations are DAgger instead: labelled trials (the
        expert's action executed with a probability falling over ``beta_iterations``), then the
        mean regressed on the labels.
        """
        tasks = self.train_tasks(rng)
        if self.iterations_done < self.cfg.dagger_iterations:
            n = self.cfg.beta_iterations or self.cfg.dagger_iterations
            beta = self.cfg.expert_beta * max(0.0, 1.0 - self.iterations_done / n)
            roll = self.trials(tasks, rng, beta=beta)
            metrics = {
                **self._update(roll, rng, self.cfg.dagger_lr, ppo=False),
                "expert_beta": beta,
            }
        else:
            roll = self.trials(tasks, rng, beta=0.0 if self.cfg.bc_coef > 0 else None)
            metrics = self._update(roll, rng, self.cfg.lr, ppo=True)
        self.iterations_done += 1
        self.gru.normalizer.update(roll.x[roll.mask > 0][:, : self.gru.family_obs_dim])
        return {**self._summary(roll), **metrics}

    def _update(
        self, roll: TrialRollouts, rng: np.random.Generator, lr: float, *, ppo: bool
    ) -> dict[str, float]:
        """Epochs over minibatches of whole trials: the value function, and the policy.

        The policy by PPO (``ppo``) plus ``bc_coef`` x imitation, or by imitation alone (DAgger).
        The imitation loss is the squared distance of the policy's mean to the experts'
        labels; the value function regresses GAE returns (the critic is ready when PPO starts).
        """
        assert self.optimizer is not None
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        x = torch.as_tensor(roll.x)
        act = torch.as_tensor(roll.act)
        mask = torch.as_tensor(roll.mask, dtype=torch.float32)
        label = None if roll.label is None else torch.as_tensor(roll.label)
        with torch.no_grad():
            mean, log_std, hidden = _unroll_states(self.gru, detach(self.params), x)
            old_logp = diag_gaussian_log_prob(mean, log_std, act)
            values = self.values(x, hidden).double().numpy()
        gamma, lam = self.sampler.cfg.gamma, self.sampler.cfg.gae_lambda
        adv_np = gae(roll.rew, values * roll.mask, roll.mask, gamma, lam)
        ret = torch.as_tensor(adv_np + values * roll.mask, dtype=torch.float32)
        adv = torch.as_tensor(normalize_advantages(adv_np, roll.mask), dtype=torch.float32)
        bc_coef = self.cfg.bc_coef if ppo else 1.0
        m = x.shape[0]
        out: dict[str, float] = {}
        for _ in range(self.cfg.epochs):
            perm = torch.as_tensor(rng.permutation(m))
            for idx in torch.tensor_split(perm, min(self.cfg.minibatches, m)):
                mean, log_std, _ = unroll(self.gru, self.params, x[idx])
                loss = torch.zeros(())
                if ppo:
                    logp = diag_gaussian_log_prob(mean, log_std, act[idx])
                    pg = clipped_surrogate(logp, old_logp[idx], adv[idx], mask[idx], self.cfg.clip)
                    loss = loss + pg
                    out["loss"] = float(pg.item())
                if label is not None and bc_coef > 0:
                    bc = masked_mean(((mean - label[idx]) ** 2).sum(-1), mask[idx])
                    loss = loss + bc_coef * bc
                    out["imitation_loss"] = float(bc.item())
                v_loss = masked_mean((self.values(x[idx], hidden[idx]) - ret[idx]) ** 2, mask[idx])
                loss = loss + self.cfg.vf_coef * v_loss
                out["value_loss"] = float(v_loss.item())
                check_finite(loss, "rl2 loss")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                for group in (self.params, self.value):  # the value loss must not crowd out pg
                    norm = torch.nn.utils.clip_grad_norm_(
                        list(group.values()), self.cfg.max_grad_norm
                    )
                    check_finite(norm, "rl2 gradient norm")
                self.optimizer.step()
        return out

    @staticmethod
    def _summary(roll: TrialRollouts) -> dict[str, float]:
        """Steps, and return and success of the first (pre) and last (post) episode of a trial."""
        returns = roll.episode_returns()
        return {
            "env_steps": float(roll.env_steps),
            "pre_return": float(returns[:, 0].mean()),
            "post_return": float(returns[:, -1].mean()),
            "pre_success": float(roll.success[:, 0].mean()),
            "post_success": float(roll.success[:, -1].mean()),
        }

    def evaluate(
        self, tasks: list[TaskParams], rng: np.random.Generator, episodes_per_task: int
    ) -> dict[str, float]:
        """A trial per task with the mean action: first episode (pre), last episode (post)."""
        del episodes_per_task
        out = self._summary(self.trials(tasks, rng, deterministic=True))
        del out["env_steps"]
        return out

    def adapt_each(self, rollouts: Any, params: Mapping[str, torch.Tensor]) -> Params:
        """Not applicable: RL² adapts in its hidden state."""
        raise NotImplementedError("rl2 adapts in its hidden state; it has no inner step")

    def state_dict(self) -> dict[str, Any]:
        """The base state plus the value function (not exported)."""
        return {
            **super().state_dict(),
            "value": detach(self.value),
            "iterations_done": self.iterations_done,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the value function before the optimiser)."""
        with torch.no_grad():
            for k, v in self.value.items():
                saved = state["value"].get(k)
                if saved is None or saved.shape != v.shape:
                    raise ValueError(f"checkpoint value.{k}: missing or wrong shape")
                v.copy_(saved)
        self.iterations_done = int(state["iterations_done"])
        super().load_state_dict(state)


def _value_init(width: int, hidden: int, gen: torch.Generator) -> Params:
    def uniform(*shape: int) -> torch.Tensor:
        return (torch.rand(*shape, generator=gen) * 2 - 1) / np.sqrt(shape[-1])

    return {
        "v0.w": uniform(hidden, width),
        "v0.b": torch.zeros(hidden),
        "v1.w": uniform(1, hidden),
        "v1.b": torch.zeros(1),
    }


def _unroll_states(
    policy: GRUPolicy, params: Mapping[str, torch.Tensor], x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Means ``[M, L, A]``, the log std and ``h'`` after every step ``[M, L, H]`` of ``x``."""
    h = policy.initial_state((x.shape[0],), x.dtype)
    means, states = [], []
    log_std = torch.zeros(())
    for t in range(x.shape[1]):
        mean, log_std, h = policy.forward(params, x[:, t], h)
        assert h is not None
        means.append(mean)
        states.append(h)
    return torch.stack(means, dim=1), log_std, torch.stack(states, dim=1)
