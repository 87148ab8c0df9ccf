"""The infinite-depth limit of the ResNet (hayou.md §2, Eq. 4, Prop. 1 and Prop. 5):

    dX_t = n^{-1/2} ||phi(X_t)|| dB_t,   X_0 = W_in x,   t in [0, 1],

and for ``k`` inputs ``dX_t(x_a) = dM_t phi(X_t(x_a))`` with ``M`` an ``n x n`` matrix of
independent Brownian motions of variance rate ``1/n``, solved by Euler-Maruyama with
``steps`` equal steps. The Euler increment over ``dt`` is ``dM phi(X)``, whose law given ``X``
is the ResNet increment with ``L^{-1/2}`` replaced by ``sqrt(dt)``: the Euler scheme with
``steps = L`` *is* the ResNet in law (Lemma 6). With the same seed, ``sample_sde(steps=L)``
returns exactly the numbers of ``sample_resnet(depth=L, method="law")``; an SDE reference for a
depth-``L`` ResNet therefore needs ``steps`` much larger than ``L`` (or the closed-form laws).

``sample_sde`` is defined with the other shorthand functions in ``shorthands.py``; the SDE
itself is ``random_resnet.ResNetSDE``.
"""

from __future__ import annotations

from .shorthands import sample_sde

__all__ = ["sample_sde"]
