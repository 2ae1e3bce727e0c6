"""Torch-free reporting helpers: interval statistics, Markdown tables, figures, GIFs, loggers.

Everything here imports numpy, pyyaml, matplotlib or imageio at most at import time (never
torch, never ``sim``), so the torch-free deploy job and the scoreboard can use it on a robot
install. The one exception is run time, not import time: the training loggers' TensorBoard sink
(:mod:`adapt_robot.reporting.loggers`) imports torch's writer when a run asks for it.
"""
