"""Simulated task families (grasp, door, point) in MuJoCo and PyBullet."""

from sim.registry import family_names, get_family, register_family

__all__ = ["family_names", "get_family", "register_family"]
