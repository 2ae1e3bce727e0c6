"""Torch-free reporting helpers: interval statistics, Markdown tables, figures and GIFs.

Everything here imports numpy, pyyaml, matplotlib or imageio at most (never torch, never
``sim``), so the torch-free deploy job and the scoreboard can use it on a robot install.
"""
