"""Simulated task families (grasp, door, point) in MuJoCo and PyBullet."""

from sim.registry import family_names, get_family, register_family, register_gym_envs

register_gym_envs()

__all__ = ["family_names", "get_family", "register_family"]
