"""Trained ResNets against their Neural Mean ODE limit.

Train 2LP ResNets of depth L and hidden width M (linear sigma, so the limit is exact) for a
few gradient steps on the synthetic task, and measure their distance to the Neural Mean ODE
limit as M grows: the fluctuation term of Chizat's bound falls like ``1/sqrt(LM)``, so the
log-log slope of the error against M is about -1/2 (the Euler term ``1/L`` is the same for
every M). ``python examples/train_against_limit.py``; ``DEEPLIMIT_EXAMPLE_SCALE=smoke`` for a
few seconds.
"""

import os

import deeplimit as dl
from deeplimit.stats import fit_loglog_slope

smoke = os.environ.get("DEEPLIMIT_EXAMPLE_SCALE") == "smoke"
depth, dim, steps, seeds = (8, 8, 2, 4) if smoke else (16, 16, 5, 8)
widths = [8, 32, 128] if smoke else [16, 64, 256, 1024]

limit = dl.mean_ode_limit(dim, activation="linear", steps=steps)  # exact for linear sigma
print(limit.description)
errors = []
for width in widths:
    run = dl.train_resnet(depth, width, dim, activation="linear", steps=steps, seeds=seeds)
    error = float(dl.limit_error(run, limit, step=steps))  # RMS over coordinates, samples, seeds
    errors.append(error)
    print(
        f"L = {depth}, M = {width:5d}: loss {float(run.loss[:, -1].mean()):.4f}, "
        f"embedding error to the limit {error:.4f}"
    )

fit = fit_loglog_slope(widths, errors)
print(f"error ~ M^{fit.slope:.2f} (expected -1/2 while the fluctuation term dominates)")
