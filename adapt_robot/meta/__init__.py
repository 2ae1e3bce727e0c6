"""Meta-learners (torch): policy, the shared inner-loop loss, sampler, algorithms, trainer."""
