"""Limits of the inner loop shared by training, export, launch files and the device.

Standard library only: :mod:`adapt_robot.config` validators, the meta-learners (torch) and the
bundle reader on the robot (numpy + pyyaml) all import these, so a bound is declared once.
"""

MAX_INNER_STEPS = 3
"""Most inner steps per adaptation (training, evaluation, ``inner_loop.steps`` of a bundle)."""

DEAD_VAR = 1e-10
"""Largest training variance of an observation entry that counts as never varying (a dead
input): the normaliser maps it to 0 and the runtime's transition check ignores it."""

MIN_RATE = 1e-6
"""Floor added to every learned inner rate, so a rate stays > 0 even where softplus underflows.

An initial rate (``algo.inner_lr``) must exceed it: the raw value is its inverse softplus."""
