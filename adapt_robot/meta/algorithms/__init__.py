"""Meta-learners and the non-meta baseline, one module and one frozen config each."""

from adapt_robot.meta.algorithms.base import Learner, TrainingDiverged
from adapt_robot.meta.algorithms.latent import LatentConfig, LatentID
from adapt_robot.meta.algorithms.law import LawConfig, LawID
from adapt_robot.meta.algorithms.maml import MAML, MAMLConfig
from adapt_robot.meta.algorithms.pearl import PEARL, PEARLConfig
from adapt_robot.meta.algorithms.ppo_dr import PPODR, PPODRConfig
from adapt_robot.meta.algorithms.reptile import Reptile, ReptileConfig
from adapt_robot.meta.algorithms.rl2 import RL2, RL2Config

AlgoConfig = (
    MAMLConfig | ReptileConfig | PPODRConfig | LatentConfig | LawConfig | RL2Config | PEARLConfig
)
"""Any algorithm config (the ``name`` field says which)."""

ALGORITHMS: dict[str, tuple[type, type[Learner]]] = {
    "maml": (MAMLConfig, MAML),
    "reptile": (ReptileConfig, Reptile),
    "ppo_dr": (PPODRConfig, PPODR),
    "latent_id": (LatentConfig, LatentID),
    "law_id": (LawConfig, LawID),
    "rl2": (RL2Config, RL2),
    "pearl": (PEARLConfig, PEARL),
}
"""Algorithm name -> (config class, learner class)."""

__all__ = [
    "ALGORITHMS",
    "MAML",
    "PEARL",
    "PPODR",
    "RL2",
    "AlgoConfig",
    "LatentConfig",
    "LatentID",
    "LawConfig",
    "LawID",
    "Learner",
    "MAMLConfig",
    "PEARLConfig",
    "PPODRConfig",
    "RL2Config",
    "Reptile",
    "ReptileConfig",
    "TrainingDiverged",
]
