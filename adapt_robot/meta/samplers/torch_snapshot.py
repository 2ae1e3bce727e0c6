"""Acting with any memoryless :class:`~adapt_robot.meta.policy_protocol.Policy` in rollouts.

The Gaussian MLP has an exact numpy twin
(:class:`~adapt_robot.meta.samplers.rollout.PolicySnapshot`); any other policy (a user's
``torch.nn.Module`` through :class:`~adapt_robot.meta.module_policy.ModulePolicy`, the control
law) acts through its own torch :meth:`~adapt_robot.meta.policy_protocol.Policy.forward`,
without gradients, one task's params at a time. The policy travels with the snapshot (pickled
to worker processes and Ray actors, which then import torch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from adapt_robot.meta.policy_protocol import Policy
from adapt_robot.meta.samplers.rollout import SnapshotParams


@dataclass(frozen=True)
class TorchSnapshot(SnapshotParams):
    """Numpy params and the policy that reads them (a :class:`RolloutPolicy`)."""

    policy: Policy
    params: dict[str, np.ndarray]
    """Name -> array; with a leading task axis ``[m, ...]`` when ``per_task``."""
    per_task: bool
    """Whether ``params`` holds one set per task (else one set shared by all tasks)."""

    def forward(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``[m, k, A]`` and log std ``[m, A]`` for ``obs [m, k, O]``.

        Row ``i`` is acted on with task ``i``'s params when ``per_task``.
        """
        m = obs.shape[0]
        x = torch.from_numpy(np.ascontiguousarray(obs, dtype=self.dtype))
        with torch.no_grad():
            if self.per_task:
                outs = [
                    self._one({k: v[i] for k, v in self.params.items()}, x[i]) for i in range(m)
                ]
                return np.stack([o[0] for o in outs]), np.stack([o[1] for o in outs])
            mean, log_std = self._one(self.params, x.reshape(-1, x.shape[-1]))
        return mean.reshape(*obs.shape[:-1], -1), np.broadcast_to(log_std, (m, log_std.shape[-1]))

    def _one(
        self, params: dict[str, np.ndarray], obs: torch.Tensor
    ) -> tuple[np.ndarray, np.ndarray]:
        """One param set on ``obs [n, O]``: mean ``[n, A]``, log std ``[A]``."""
        p = {k: torch.from_numpy(np.asarray(v)) for k, v in params.items()}
        mean, log_std, _ = self.policy.forward(p, obs)
        return mean.numpy(), log_std.numpy()
