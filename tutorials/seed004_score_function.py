"""Seed 004 (SVI Part III): the Beta-Bernoulli score-function example, ported to pyrolite.

The guide's ``NonreparameterizedBeta`` makes the gradient a score-function estimate
(Rao-Blackwellized by the plate). The seed trains with ``TraceGraph_ELBO`` and a
decaying-average baseline; pyrolite has no TraceGraph_ELBO yet, so ``Trace_ELBO``
stands in and the ``infer={"baseline": ...}`` entry is carried but not used.
It also shows the seed's per-parameter optimizer arguments.

Run: python tutorials/seed004_score_function.py
"""

import torch

import pyrolite as pyro
import pyrolite.distributions as dist
import pyrolite.optim as optim
from pyrolite.distributions import constraints
from pyrolite.distributions.testing.fakes import NonreparameterizedBeta
from pyrolite.infer import SVI, Trace_ELBO


def param_abs_error(name, target):
    return torch.sum(torch.abs(target - pyro.param(name))).item()


class BernoulliBetaExample:
    def __init__(self, max_steps):
        self.max_steps = max_steps
        # the two hyperparameters for the beta prior
        self.alpha0, self.beta0 = 10.0, 10.0
        # the dataset consists of six 1s and four 0s
        self.data = torch.zeros(10)
        self.data[0:6] = torch.ones(6)
        self.n_data = self.data.size(0)
        # the exact Beta posterior
        self.alpha_n = self.data.sum() + torch.tensor(self.alpha0)
        self.beta_n = -self.data.sum() + torch.tensor(self.beta0 + self.n_data)
        self.alpha_q_0, self.beta_q_0 = 15.0, 15.0

    def model(self, use_decaying_avg_baseline):
        f = pyro.sample("latent_fairness", dist.Beta(self.alpha0, self.beta0))
        with pyro.plate("data_plate"):
            pyro.sample("obs", dist.Bernoulli(f), obs=self.data)

    def guide(self, use_decaying_avg_baseline):
        alpha_q = pyro.param(
            "alpha_q", torch.tensor(self.alpha_q_0), constraint=constraints.positive
        )
        beta_q = pyro.param("beta_q", torch.tensor(self.beta_q_0), constraint=constraints.positive)
        baseline_dict = {
            "use_decaying_avg_baseline": use_decaying_avg_baseline,
            "baseline_beta": 0.90,
        }
        pyro.sample(
            "latent_fairness",
            NonreparameterizedBeta(alpha_q, beta_q),
            infer=dict(baseline=baseline_dict),
        )

    def do_inference(self, use_decaying_avg_baseline, tolerance=0.8):
        pyro.clear_param_store()
        optimizer = optim.Adam({"lr": 0.0005, "betas": (0.93, 0.999)})
        svi = SVI(self.model, self.guide, optimizer, loss=Trace_ELBO())
        while svi.step_count < self.max_steps:
            svi.step(use_decaying_avg_baseline)
            alpha_error = param_abs_error("alpha_q", self.alpha_n)
            beta_error = param_abs_error("beta_q", self.beta_n)
            if alpha_error < tolerance and beta_error < tolerance:
                break
        print(
            f"within {tolerance} of the exact posterior after {svi.step_count} steps: alpha_q "
            f"{pyro.param('alpha_q').item():.2f} (exact {self.alpha_n.item():.0f}), beta_q "
            f"{pyro.param('beta_q').item():.2f} (exact {self.beta_n.item():.0f})"
        )


def per_param_args(module_name, param_name):
    if "baseline" in param_name or "baseline" in module_name:
        return {"lr": 0.010}
    return {"lr": 0.001}


if __name__ == "__main__":
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead
    pyro.set_rng_seed(0)
    BernoulliBetaExample(max_steps=10000).do_inference(use_decaying_avg_baseline=False)

    # Per-parameter optimizer arguments: a baseline network gets the higher rate.
    pyro.clear_param_store()
    pyro.module("my_baseline", torch.nn.Linear(2, 1))
    pyro.param("alpha_q", torch.tensor(15.0), constraint=constraints.positive)
    optimizer = optim.Adam(per_param_args)
    store = pyro.get_param_store()
    leaves = [leaf for _, leaf in store.named_parameters()]
    for leaf in leaves:
        leaf.grad = torch.ones_like(leaf)
    optimizer(leaves)
    for name, leaf in store.named_parameters():
        lr = optimizer.torch_optimizer(leaf).param_groups[0]["lr"]
        print(f"{name}: lr {lr}")
