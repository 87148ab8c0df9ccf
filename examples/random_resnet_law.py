"""A random ResNet against its infinite-depth law.

Width-1 ResNets with the linear activation, ``Y_l = Y_{l-1} + W_l Y_{l-1} / sqrt(L)``,
converge as the depth L grows to a geometric Brownian motion: ``log(Y_L / Y_0)`` tends to
``N(-1/2, 1)`` (Hayou, Prop. 2). Sample the networks, test them against the law, and draw
both. ``python examples/random_resnet_law.py [OUT_DIR]``; ``DEEPLIMIT_EXAMPLE_SCALE=smoke``
for a few seconds.
"""

import os
import sys
from pathlib import Path

import numpy as np

import deeplimit as dl

smoke = os.environ.get("DEEPLIMIT_EXAMPLE_SCALE") == "smoke"
samples, depth = (2_000, 50) if smoke else (50_000, 1_000)

# ---- the ten lines: networks, their limit law, a goodness-of-fit test
y = dl.sample_resnet(1, depth, "linear", samples=samples, y0=[1.0])[:, 0]
law = dl.laws.gbm_law(a=1.0, y0=1.0)  # X_1 = exp(B_1 - 1/2)
print(dl.stats.ks_test(y, law))

# ---- a figure of both
from matplotlib.figure import Figure  # noqa: E402

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(".")
figure = Figure(figsize=(4.5, 3.2), layout="constrained")
ax = figure.subplots()
log_ratio = np.log(y.numpy())
ax.hist(log_ratio, bins=60, density=True, alpha=0.5, label=f"ResNet, $L = {depth}$")
grid = np.linspace(log_ratio.min(), log_ratio.max(), 400)
# density of log X_1 from the law of X_1: p(u) = f(e^u) e^u
ax.plot(grid, law.pdf(np.exp(grid)) * np.exp(grid), label=r"limit $\mathcal{N}(-1/2, 1)$")
ax.set_xlabel(r"$\log(Y_L / Y_0)$")
ax.set_ylabel("density")
ax.legend(frameon=False)
figure.savefig(out / "random_resnet_law.png", dpi=150)
print(f"wrote {out / 'random_resnet_law.png'}")
