"""Limits of the inner loop shared by training, export, launch files and the device.

Standard library only: :mod:`adapt_robot.config` validators, the meta-learners (torch) and the
bundle reader on the robot (numpy + pyyaml) all import these, so a bound is declared once.
"""

MAX_INNER_STEPS = 3
"""Most inner steps per adaptation (training, evaluation, ``inner_loop.steps`` of a bundle)."""

MIN_RATE = 1e-6
"""Floor added to every learned inner rate, so a rate stays > 0 even where softplus underflows.

An initial rate (``algo.inner_lr``) must exceed it: the raw value is its inverse softplus."""
