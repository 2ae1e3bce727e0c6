"""PEARL (Rakelly et al. 2019): soft actor-critic on a latent inferred from a context posterior.

The policy is the Gaussian MLP conditioned on a latent ``z`` (``policy.adapt: context``: its
``context`` parameter, the prior mean 0, is where the robot puts ``z``). A probabilistic
context encoder (:class:`~adapt_robot.meta.context_encoder.ContextEncoder`) maps a task's
transitions ``(obs, act, reward, next_obs)`` to a Gaussian posterior over ``z``; nothing is
adapted by gradient on the robot: the posterior is one forward pass (``encoder.onnx``).

Training is off-policy, one replay per task of a fixed pool of ``train_tasks`` train tasks:

- **Collection.** Each iteration plays ``sampler.tasks_per_iter`` pool tasks side by side, one
  env per task: ``prior_episodes`` episodes with ``z`` drawn from the prior, then
  ``posterior_episodes`` with ``z`` drawn from the posterior of that task's transitions so far
  (posterior sampling, PEARL's exploration). With ``expert_beta > 0`` the scripted expert's
  action (told the true task: privileged, training only) is executed instead with that
  probability, falling to 0 over ``beta_iterations``; with ``bc_coef > 0`` every visited
  state is labelled with the expert's action.
- **Updates** (``grad_steps`` per iteration, ``meta_batch`` tasks each): a context of 1 to
  ``context_size`` recent transitions of each task gives ``q(z | c)``; ``z ~ q`` by the
  reparameterisation. Twin critics ``Q(s, a, z)`` (the meta-value function) regress the soft
  Bellman target of polyak-averaged target critics; the encoder is trained by the critic loss
  plus ``kl_weight * KL(q(z | c) || N(0, I))`` (PEARL's information bottleneck). The actor
  minimises ``alpha log pi(a | s, z) - min Q(s, a, z)`` with ``z`` detached (plus ``bc_coef``
  times the squared distance of its mean to the expert's label; with ``q_normalize`` the
  first term is divided by the batch's mean ``|Q|``, as in TD3+BC), and ``alpha`` is tuned to a
  target entropy of ``-act_dim`` (Haarnoja et al. 2018).

The policy's log std is a parameter, not a function of the state (the bundle's policy
contract); SAC's entropy term tunes it. Rewards enter the critics multiplied by
``reward_scale``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from adapt_robot.config import setting
from adapt_robot.meta.algorithms.base import Learner, check_finite
from adapt_robot.meta.context_encoder import (
    ENC_PREFIX,
    ContextEncoder,
    episodes_posterior,
    gaussian_kl_to_prior,
)
from adapt_robot.meta.identification import _mlp, _mlp_init
from adapt_robot.meta.policy import GaussianMLPPolicy, Params, PolicyConfig, detach
from adapt_robot.meta.policy_protocol import Policy, diag_gaussian_log_prob
from adapt_robot.meta.samplers.local import Sampler
from adapt_robot.sim.core.family import TaskFamily
from adapt_robot.sim.core.params import TaskParams
from adapt_robot.sim.envs.vector import EnvBatches, VectorTaskEnv


@dataclass(frozen=True, kw_only=True)
class PEARLConfig:
    """PEARL settings (the latent size is ``policy.context_dim``)."""

    name: Literal["pearl"] = setting("pearl", doc="Algorithm name.")
    train_tasks: int = setting(
        64, doc="Size of the fixed pool of train tasks, each with its own replay.", ge=1
    )
    replay_size: int = setting(4000, doc="Transitions kept per task (oldest overwritten).", ge=16)
    prior_episodes: int = setting(
        1, doc="Episodes per collected task with z drawn from the prior.", ge=0
    )
    posterior_episodes: int = setting(
        1,
        doc="Further episodes per collected task with z drawn from the posterior of that "
        "task's transitions so far (posterior sampling).",
        ge=0,
    )
    grad_steps: int = setting(50, doc="Gradient steps per iteration.", ge=1)
    meta_batch: int = setting(16, doc="Tasks per gradient step.", ge=1)
    batch_size: int = setting(128, doc="Transitions per task per gradient step.", ge=1)
    context_size: int = setting(
        128,
        doc="Most context transitions per task and step (each step draws 1 to this many, "
        "from the task's recent ones, so the encoder sees short and long contexts).",
        ge=1,
    )
    recent_rows: int = setting(
        400, doc="Contexts are drawn from each task's last this-many transitions.", ge=1
    )
    encoder_hidden: tuple[int, ...] = setting(
        (64, 64), doc="Hidden widths of the context encoder's factor network."
    )
    critic_hidden: tuple[int, ...] = setting((128, 128), doc="Hidden widths of each critic.")
    lr: float = setting(3e-4, doc="Adam step size of actor, critics, encoder and alpha.", gt=0)
    tau: float = setting(0.005, doc="Polyak rate of the target critics.", gt=0, le=1)
    kl_weight: float = setting(0.1, doc="Weight of KL(q(z|c) || N(0, I)).", ge=0)
    reward_scale: float = setting(5.0, doc="Rewards enter the critics times this.", gt=0)
    init_alpha: float = setting(0.1, doc="Initial entropy temperature.", gt=0)
    max_grad_norm: float = setting(10.0, doc="Gradient norm clip of each update.", gt=0)
    expert_beta: float = setting(
        0.0,
        doc="Probability of executing the privileged scripted expert's action while "
        "collecting (falls linearly to 0 over beta_iterations; training only). 0: never.",
        ge=0,
        le=1,
    )
    beta_iterations: int = setting(100, doc="Iterations over which expert_beta falls to 0.", ge=1)
    bc_coef: float = setting(
        0.0,
        doc="Weight of the squared distance of the actor's mean to the expert's action in the "
        "visited states (labels stored in the replay; training only). 0: SAC alone.",
        ge=0,
    )
    q_normalize: bool = setting(
        False,
        doc="Divide the actor's soft-Q term by its batch mean |Q| (TD3+BC, Fujimoto and Gu "
        "2021), so bc_coef weighs the imitation term against a Q term of scale 1 whatever "
        "the returns' size (with raw Q, returns of 100 drown the imitation term).",
    )


def actor_objective(
    soft_q_loss: torch.Tensor, q_pi: torch.Tensor, *, normalize: bool
) -> torch.Tensor:
    """The SAC actor's loss ``mean(alpha log pi - Q)``, optionally Q-normalised.

    With ``normalize`` it is divided by the batch's mean ``|Q|`` (held constant): TD3+BC's
    ``lambda = 1 / mean|Q|``.
    """
    loss = soft_q_loss.mean()
    if normalize:
        loss = loss / q_pi.detach().abs().mean().clamp_min(1e-6)
    return loss


class TaskReplay:
    """Ring buffers of transitions, one per task: ``[T, R, ...]`` arrays and fill counters."""

    FIELDS = ("obs", "act", "rew", "next_obs", "term", "label")

    def __init__(self, tasks: int, size: int, obs_dim: int, act_dim: int) -> None:
        self.size = size
        self.obs = np.zeros((tasks, size, obs_dim), dtype=np.float32)
        self.act = np.zeros((tasks, size, act_dim), dtype=np.float32)
        self.rew = np.zeros((tasks, size), dtype=np.float32)
        self.next_obs = np.zeros((tasks, size, obs_dim), dtype=np.float32)
        self.term = np.zeros((tasks, size), dtype=np.float32)
        self.label = np.zeros((tasks, size, act_dim), dtype=np.float32)
        self.count = np.zeros(tasks, dtype=np.int64)
        """Transitions ever added to each task (the next row is ``count % size``)."""

    def add(self, task: int, **rows: np.ndarray) -> None:
        """Append rows ``[n, ...]`` of every field to ``task``'s ring."""
        n = len(rows["obs"])
        idx = (self.count[task] + np.arange(n)) % self.size
        for name in self.FIELDS:
            getattr(self, name)[task, idx] = rows[name]
        self.count[task] += n

    def sample(
        self, tasks: np.ndarray, n: int, rng: np.random.Generator, recent: int | None = None
    ) -> dict[str, torch.Tensor]:
        """``n`` rows of each of ``tasks`` (with replacement), the last ``recent`` if given."""
        filled = np.minimum(self.count[tasks], self.size)
        span = filled if recent is None else np.minimum(filled, recent)
        offset = rng.integers(0, 2**62, size=(len(tasks), n)) % span[:, None]
        rows = (self.count[tasks][:, None] - 1 - offset) % self.size
        t = tasks[:, None]
        return {k: torch.from_numpy(getattr(self, k)[t, rows]) for k in self.FIELDS}

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The arrays as tensors (checkpoints hold tensors only)."""
        out = {k: torch.from_numpy(getattr(self, k).copy()) for k in self.FIELDS}
        out["count"] = torch.from_numpy(self.count.copy())
        return out

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Restore :meth:`state_dict` output (shapes must match)."""
        for k in (*self.FIELDS, "count"):
            mine = getattr(self, k)
            saved = state[k].numpy()
            if saved.shape != mine.shape:
                raise ValueError(
                    f"checkpoint replay.{k}: shape {saved.shape}, expected {mine.shape}"
                )
            mine[...] = saved


@dataclass(frozen=True)
class Played:
    """Episodes of ``M`` tasks, padded ``[M, T, ...]`` (one episode per task)."""

    obs: np.ndarray
    act: np.ndarray
    rew: np.ndarray
    next_obs: np.ndarray
    term: np.ndarray
    mask: np.ndarray
    label: np.ndarray
    success: np.ndarray

    def live(self, i: int) -> dict[str, np.ndarray]:
        """Task ``i``'s live rows, for its replay."""
        m = self.mask[i] > 0
        return {
            "obs": self.obs[i][m],
            "act": self.act[i][m],
            "rew": self.rew[i][m],
            "next_obs": self.next_obs[i][m],
            "term": self.term[i][m],
            "label": self.label[i][m],
        }


def play_episode(
    policy: GaussianMLPPolicy,
    params: Mapping[str, torch.Tensor],
    z: torch.Tensor,
    env: VectorTaskEnv,
    rng: np.random.Generator,
    *,
    deterministic: bool = False,
    experts: Sequence[Any] | None = None,
    beta: float = 0.0,
) -> Played:
    """One episode of each env's task, env ``i`` acting with latent ``z[i]``.

    Gaussian actions (the mean when ``deterministic``) drawn from ``rng``; the stored action is
    the sample (before the clip to the bounds), as the robot's buffer stores it. With
    ``experts`` every visited state is labelled with the expert's clean action, executed
    instead with probability ``beta`` per step.
    """
    m, horizon = env.batch, env.max_steps
    low, high = env.family.action_spec.low, env.family.action_spec.high
    shape = (m, horizon)
    obs_b = np.zeros((*shape, env.obs_dim), dtype=np.float32)
    act_b = np.zeros((*shape, env.act_dim), dtype=np.float32)
    next_b = np.zeros_like(obs_b)
    label_b = np.zeros_like(act_b)
    rew_b = np.zeros(shape, dtype=np.float32)
    term_b = np.zeros(shape, dtype=np.float32)
    mask_b = np.zeros(shape, dtype=np.float32)
    obs = env.reset(rng)
    for expert in experts or ():
        expert.reset()
    acting = {**params, "context": z[:, None, :]}
    with torch.no_grad():
        for t in range(horizon):
            live = ~env.done
            if not live.any():
                break
            mean, log_std, _ = policy.forward(acting, torch.from_numpy(obs)[:, None, :])
            a = mean[:, 0].double().numpy()
            if not deterministic:
                a = a + np.exp(log_std.double().numpy()) * rng.standard_normal(a.shape)
            if experts is not None:
                clean = np.clip(
                    np.stack([e.act(o) for e, o in zip(experts, obs, strict=True)]), low, high
                )
                label_b[:, t] = clean
                if beta > 0.0:
                    a = np.where((rng.uniform(size=m) < beta)[:, None], clean, a)
            next_obs, r, term, _, _ = env.step(np.clip(a, low, high))
            obs_b[:, t], act_b[:, t], next_b[:, t] = obs, a, next_obs
            rew_b[:, t], term_b[:, t], mask_b[:, t] = r, term, live
            obs = next_obs
    return Played(obs_b, act_b, rew_b, next_b, term_b, mask_b, label_b, env.episode_success.copy())


class PEARL(Learner):
    """PEARL with SAC (see the module docstring)."""

    name = "pearl"
    warm_startable = False

    def __init__(self, policy: Policy, sampler: Sampler, cfg: PEARLConfig, seed: int) -> None:
        if not isinstance(policy, GaussianMLPPolicy) or policy.cfg.adapt != "context":
            raise ValueError(
                "pearl: the policy must be the Gaussian MLP with policy.adapt: context (its "
                "context input carries the latent z)"
            )
        super().__init__(policy, sampler, inner_lr=1.0, inner_steps=1, learn_rates=False, seed=seed)
        self.mlp: GaussianMLPPolicy = policy
        self.cfg = cfg
        self.z_dim = policy.cfg.context_dim
        gen = torch.Generator().manual_seed(seed + 11)
        self.encoder = ContextEncoder(policy, cfg.encoder_hidden)
        for k, v in self.encoder.init_params(gen).items():
            self.params[k] = v.requires_grad_(True)
        self.params["context"].requires_grad_(False)  # the prior mean: never trained
        q_in = policy.obs_dim + policy.act_dim + self.z_dim
        sizes = (q_in, *cfg.critic_hidden, 1)
        self.critics: Params = {
            k: v.requires_grad_(True)
            for prefix in ("q1.", "q2.")
            for k, v in _mlp_init(sizes, prefix, gen, out_scale=1.0).items()
        }
        self.targets: Params = {k: v.detach().clone() for k, v in self.critics.items()}
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), requires_grad=True)
        self._actor = [
            v for k, v in self.params.items() if not k.startswith(ENC_PREFIX) and k != "context"
        ]
        """The actor's trained tensors (the prior mean ``context`` is not one)."""
        self._encoder = [v for k, v in self.params.items() if k.startswith(ENC_PREFIX)]
        self.actor_opt = torch.optim.Adam(self._actor, lr=cfg.lr)
        self.optimizer = self.actor_opt  # the base checkpoints it
        self.critic_opt = torch.optim.Adam([*self.critics.values(), *self._encoder], lr=cfg.lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.lr)
        family = sampler.family
        pool_rng = np.random.default_rng(seed + 13)
        self.pool: list[TaskParams] = list(family.sample_tasks(pool_rng, cfg.train_tasks, "train"))
        self.replay = TaskReplay(cfg.train_tasks, cfg.replay_size, policy.obs_dim, policy.act_dim)
        self.horizon = family.max_steps
        self._envs = EnvBatches(sampler.family)
        self.iterations_done = 0

    @classmethod
    def make_policy(cls, family: TaskFamily[Any], cfg: PolicyConfig) -> Policy:
        """The latent-conditioned Gaussian MLP."""
        if cfg.module:
            raise ValueError("policy.module: pearl trains the built-in MLP; remove policy.module")
        if cfg.adapt != "context":
            raise ValueError(
                f"policy.adapt: pearl conditions on a latent; set context (got {cfg.adapt!r})"
            )
        return GaussianMLPPolicy(family.obs_spec.dim, family.action_spec.dim, cfg)

    # ------------------------------------------------------------------ envs and acting
    def env(self, batch: int) -> VectorTaskEnv:
        """The learner's env batch of ``batch`` envs (one per task), made once per size."""
        return self._envs.get(self.sampler.engine, batch)

    def close(self) -> None:
        """Release the learner's own env batches and the sampler's."""
        self._envs.close()
        super().close()

    def posterior(self, episodes: Sequence[Played]) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior ``(mean, var) [M, Z]`` of each task's episodes, packed as the robot does."""
        obs = np.concatenate([p.obs[:, None] for p in episodes], axis=1)
        act = np.concatenate([p.act[:, None] for p in episodes], axis=1)
        rew = np.concatenate([p.rew[:, None] for p in episodes], axis=1)
        mask = np.concatenate([p.mask[:, None] for p in episodes], axis=1)
        capacity = len(episodes) * self.horizon
        params = detach(self.params)
        means, variances = [], []
        for i in range(obs.shape[0]):
            mean, var = episodes_posterior(
                self.encoder, params, obs[i], act[i], rew[i], mask[i], capacity
            )
            means.append(mean)
            variances.append(var)
        return torch.stack(means), torch.stack(variances)

    def play(
        self,
        tasks: Sequence[TaskParams],
        rng: np.random.Generator,
        prior: int,
        after: int,
        *,
        deterministic: bool = False,
        sample_posterior: bool = True,
        beta: float | None = None,
    ) -> list[Played]:
        """``prior`` episodes per task with ``z`` from the prior, then ``after`` with the posterior.

        The posterior is that of all the task's episodes so far: a sample of it
        (``sample_posterior``) or its mean. ``beta`` not None: experts label (and act).
        """
        env = self.env(len(tasks))
        env.set_tasks(list(tasks))
        experts = None if beta is None else [self.sampler.family.expert(t) for t in tasks]
        out: list[Played] = []
        params = detach(self.params)
        for e in range(prior + after):
            if e < prior or not out:
                z = torch.as_tensor(
                    rng.standard_normal((len(tasks), self.z_dim)), dtype=torch.float32
                )
            else:
                mean, var = self.posterior(out)
                z = mean
                if sample_posterior:
                    noise = torch.as_tensor(rng.standard_normal(mean.shape), dtype=torch.float32)
                    z = mean + var.sqrt() * noise
            out.append(
                play_episode(
                    self.mlp,
                    params,
                    z,
                    env,
                    rng,
                    deterministic=deterministic,
                    experts=experts,
                    beta=beta or 0.0,
                )
            )
        return out

    # ------------------------------------------------------------------ training
    def iteration(self, rng: np.random.Generator) -> dict[str, float]:
        """Collect on ``tasks_per_iter`` pool tasks, then ``grad_steps`` SAC/encoder updates."""
        cfg = self.cfg
        m = min(self.sampler.cfg.tasks_per_iter, len(self.pool))
        chosen = rng.choice(len(self.pool), size=m, replace=False)
        beta = cfg.expert_beta * max(0.0, 1.0 - self.iterations_done / cfg.beta_iterations)
        labelled = cfg.bc_coef > 0 or beta > 0
        played = self.play(
            [self.pool[i] for i in chosen],
            rng,
            cfg.prior_episodes,
            cfg.posterior_episodes,
            beta=beta if labelled else None,
        )
        steps = 0
        for p in played:
            for j, task in enumerate(chosen):
                self.replay.add(int(task), **p.live(j))
            steps += int(p.mask.sum())
        live = np.concatenate([p.obs[p.mask > 0] for p in played])
        self.mlp.normalizer.update(live)
        filled = np.flatnonzero(self.replay.count > 0)
        metrics: dict[str, float] = {}
        for _ in range(cfg.grad_steps):
            tasks = rng.choice(filled, size=min(cfg.meta_batch, len(filled)), replace=False)
            metrics = self.update(tasks, rng)
        self.iterations_done += 1
        returns = [float((p.rew * p.mask).sum(1).mean()) for p in played]
        return {
            "env_steps": float(steps),
            "pre_return": returns[0],
            "post_return": returns[-1],
            "pre_success": float(played[0].success.mean()),
            "post_success": float(played[-1].success.mean()),
            "expert_beta": beta,
            **metrics,
        }

    def critic(
        self, params: Mapping[str, torch.Tensor], prefix: str, x: torch.Tensor
    ) -> torch.Tensor:
        """``Q [...]`` of critic ``prefix`` on inputs ``[norm(obs), act, z]``."""
        return _mlp(params, prefix, x)[..., 0]

    def _q_input(self, obs: torch.Tensor, act: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        zz = z[:, None, :].expand(*obs.shape[:-1], self.z_dim)
        return torch.cat([self.mlp.normalize(obs), torch.clamp(act, -1.0, 1.0), zz], dim=-1)

    def _sample_action(
        self,
        params: Mapping[str, torch.Tensor],
        obs: torch.Tensor,
        z: torch.Tensor,
        noise: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reparameterised action, its log-density and the mean, for ``obs [M, B, O]``."""
        acting = {**params, "context": z[:, None, :]}
        mean, log_std, _ = self.mlp.forward(acting, obs)
        a = mean + torch.exp(log_std) * noise
        return a, diag_gaussian_log_prob(mean, log_std, a), mean

    def update(self, tasks: np.ndarray, rng: np.random.Generator) -> dict[str, float]:
        """One critic+encoder, actor and temperature step on ``tasks`` (pool indices)."""
        cfg = self.cfg
        k = len(tasks)
        ctx = self.replay.sample(tasks, cfg.context_size, rng, recent=cfg.recent_rows)
        counts = rng.integers(1, cfg.context_size + 1, size=k)
        ctx_mask = torch.as_tensor(
            np.arange(cfg.context_size)[None, :] < counts[:, None], dtype=torch.float32
        )
        mean, var = self.encoder.posterior(
            self.params, ctx["obs"], ctx["act"], ctx["rew"], ctx["next_obs"], ctx_mask
        )
        eps = torch.as_tensor(rng.standard_normal(mean.shape), dtype=torch.float32)
        z = mean + var.sqrt() * eps
        b = self.replay.sample(tasks, cfg.batch_size, rng)
        a_dim = self.mlp.act_dim
        n1 = torch.as_tensor(rng.standard_normal((k, cfg.batch_size, a_dim)), dtype=torch.float32)
        n2 = torch.as_tensor(rng.standard_normal((k, cfg.batch_size, a_dim)), dtype=torch.float32)
        alpha = self.log_alpha.exp().detach()
        zd = z.detach()
        gamma = self.sampler.cfg.gamma
        actor_params = detach(self.params)
        with torch.no_grad():
            a2, logp2, _ = self._sample_action(actor_params, b["next_obs"], zd, n1)
            x2 = self._q_input(b["next_obs"], a2, zd)
            q_next = torch.minimum(
                self.critic(self.targets, "q1.", x2), self.critic(self.targets, "q2.", x2)
            )
            y = cfg.reward_scale * b["rew"] + gamma * (1.0 - b["term"]) * (q_next - alpha * logp2)
        x = self._q_input(b["obs"], b["act"], z)
        q_loss = ((self.critic(self.critics, "q1.", x) - y) ** 2).mean() + (
            (self.critic(self.critics, "q2.", x) - y) ** 2
        ).mean()
        kl = gaussian_kl_to_prior(mean, var).mean()
        critic_loss = q_loss + cfg.kl_weight * kl
        check_finite(critic_loss, "pearl critic loss")
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        check_finite(
            torch.nn.utils.clip_grad_norm_(
                [*self.critics.values(), *self._encoder], cfg.max_grad_norm
            ),
            "pearl critic gradient norm",
        )
        self.critic_opt.step()

        a, logp, mu = self._sample_action(self.params, b["obs"], zd, n2)
        frozen = detach(self.critics)
        xa = self._q_input(b["obs"], a, zd)
        q_pi = torch.minimum(self.critic(frozen, "q1.", xa), self.critic(frozen, "q2.", xa))
        actor_loss = actor_objective(alpha * logp - q_pi, q_pi, normalize=cfg.q_normalize)
        out = {"critic_loss": float(q_loss.item()), "kl": float(kl.item())}
        if cfg.bc_coef > 0:
            bc = ((mu - b["label"]) ** 2).sum(-1).mean()
            actor_loss = actor_loss + cfg.bc_coef * bc
            out["imitation_loss"] = float(bc.item())
        check_finite(actor_loss, "pearl actor loss")
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        check_finite(
            torch.nn.utils.clip_grad_norm_(self._actor, cfg.max_grad_norm),
            "pearl actor gradient norm",
        )
        self.actor_opt.step()

        target_entropy = -float(a_dim)
        alpha_loss = -(self.log_alpha * (logp.detach() + target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        with torch.no_grad():
            for name, target in self.targets.items():
                target.lerp_(self.critics[name], cfg.tau)
        out.update(
            actor_loss=float(actor_loss.item()),
            alpha=float(self.log_alpha.exp().item()),
            posterior_var=float(var.mean().item()),
        )
        return out

    def evaluate(
        self, tasks: list[TaskParams], rng: np.random.Generator, episodes_per_task: int
    ) -> dict[str, float]:
        """First episode with ``z`` from the prior (pre), then the posterior mean (post).

        Mean actions, as the robot's deterministic adapter: the first episode's ``z`` is a
        prior sample, each later one the posterior mean of the episodes before it (the
        bundle's ``prior_sample`` rule and a sequential adaptation after every episode).
        """
        played = self.play(
            tasks, rng, 1, max(1, episodes_per_task), deterministic=True, sample_posterior=False
        )
        pre, post = played[0], played[-1]
        return {
            "pre_return": float((pre.rew * pre.mask).sum(1).mean()),
            "post_return": float((post.rew * post.mask).sum(1).mean()),
            "pre_success": float(pre.success.mean()),
            "post_success": float(post.success.mean()),
        }

    def adapt_each(self, rollouts: Any, params: Mapping[str, torch.Tensor]) -> Params:
        """Not applicable: PEARL's robot computes a posterior, not a gradient step."""
        raise NotImplementedError("pearl adapts by its context posterior; it has no inner step")

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict[str, Any]:
        """The base state plus critics, targets, temperature, optimisers, pool and replay."""
        return {
            **super().state_dict(),
            "critics": detach(self.critics),
            "targets": detach(self.targets),
            "log_alpha": self.log_alpha.detach().clone(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "replay": self.replay.state_dict(),
            "iterations_done": self.iterations_done,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output (shapes checked)."""
        with torch.no_grad():
            for group, mine in (("critics", self.critics), ("targets", self.targets)):
                for k, v in mine.items():
                    saved = state[group].get(k)
                    if saved is None or saved.shape != v.shape:
                        raise ValueError(f"checkpoint {group}.{k}: missing or wrong shape")
                    v.copy_(saved)
            self.log_alpha.copy_(state["log_alpha"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
        self.replay.load_state_dict(state["replay"])
        self.iterations_done = int(state["iterations_done"])
        super().load_state_dict(state)
