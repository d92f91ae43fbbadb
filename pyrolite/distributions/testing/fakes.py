"""Reparameterizable families declared non-reparameterized, to exercise score-function
gradient estimators; their ``log_prob`` stays differentiable in the parameters.

>>> NonreparameterizedNormal(0.0, 1.0).has_rsample
False
"""

from pyrolite.distributions.torch import Beta, Dirichlet, Gamma, Normal


class NonreparameterizedBeta(Beta):
    has_rsample = False


class NonreparameterizedDirichlet(Dirichlet):
    has_rsample = False


class NonreparameterizedGamma(Gamma):
    has_rsample = False


class NonreparameterizedNormal(Normal):
    has_rsample = False
