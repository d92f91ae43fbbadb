"""Seed 004 (SVI Part III): score-function gradients, Rao-Blackwellization and baselines.

The coin of SVI Part I again, with the Beta guide treated as non-reparameterized
(``NonreparameterizedBeta``), so every gradient is a score-function estimate. As in the
seed, ``TraceGraph_ELBO`` builds the surrogate (only the terms downstream of the draw, in
the plate elements it shares) and the guide asks for a decaying-average baseline with
``infer=dict(baseline={"use_decaying_avg_baseline": ..., "baseline_beta": 0.90})``.

It prints, over several seeds:

* the steps until both variational parameters are within the seed's tolerance (0.8) of
  the exact posterior Beta(16, 14), with and without the baseline, and with a neural
  baseline (``nn_baseline``, trained at its own learning rate through ``per_param_args``);
* the variance of the gradient estimate at the initial parameters under each.

Run: python tutorials/seed004_score_function.py [--seeds 10] [--max-steps 10000]
"""

import argparse

import torch

import pyrolite as pyro
import pyrolite.distributions as dist
import pyrolite.optim as optim
from pyrolite.distributions import constraints
from pyrolite.distributions.testing.fakes import NonreparameterizedBeta
from pyrolite.infer import SVI, TraceGraph_ELBO


def param_abs_error(name, target):
    return torch.sum(torch.abs(target - pyro.param(name))).item()


class BernoulliBetaExample:
    def __init__(self, max_steps):
        # the maximum number of inference steps we do
        self.max_steps = max_steps
        # the two hyperparameters for the beta prior
        self.alpha0, self.beta0 = 10.0, 10.0
        # the dataset consists of six 1s and four 0s
        self.data = torch.zeros(10)
        self.data[0:6] = torch.ones(6)
        self.n_data = self.data.size(0)
        # the parameters of the exact Beta posterior
        self.alpha_n = self.data.sum() + torch.tensor(self.alpha0)
        self.beta_n = -self.data.sum() + torch.tensor(self.beta0 + self.n_data)
        # initial values of the two variational parameters
        self.alpha_q_0, self.beta_q_0 = 15.0, 15.0
        # a neural baseline: a linear layer on a constant input (it learns the mean cost)
        self.baseline_net = torch.nn.Linear(1, 1)

    def model(self, baseline):
        # sample `latent_fairness` from the beta prior
        f = pyro.sample("latent_fairness", dist.Beta(self.alpha0, self.beta0))
        # use plate to indicate that the observations are
        # conditionally independent given f and get vectorization
        with pyro.plate("data_plate"):
            # observe all ten datapoints using the bernoulli likelihood
            pyro.sample("obs", dist.Bernoulli(f), obs=self.data)

    def guide(self, baseline):
        # register the two variational parameters with pyrolite
        alpha_q = pyro.param(
            "alpha_q", torch.tensor(self.alpha_q_0), constraint=constraints.positive
        )
        beta_q = pyro.param("beta_q", torch.tensor(self.beta_q_0), constraint=constraints.positive)
        if baseline == "neural":
            pyro.module("my_baseline", self.baseline_net)
            baseline_dict = {"nn_baseline": self.baseline_net, "nn_baseline_input": torch.ones(1)}
        else:
            # the decaying-average baseline is on or off
            baseline_dict = {
                "use_decaying_avg_baseline": baseline == "decaying",
                "baseline_beta": 0.90,
            }
        # sample f from the beta variational distribution; the baseline dict says which baseline
        pyro.sample(
            "latent_fairness",
            NonreparameterizedBeta(alpha_q, beta_q),
            infer=dict(baseline=baseline_dict),
        )

    def optimizer(self, baseline):
        if baseline != "neural":
            return optim.Adam({"lr": 0.0005, "betas": (0.93, 0.999)})

        # the seed's per-parameter arguments: the baseline network gets a higher rate
        def per_param_args(module_name, param_name):
            if "baseline" in param_name or "baseline" in module_name:
                return {"lr": 0.1}
            return {"lr": 0.0005, "betas": (0.93, 0.999)}

        return optim.Adam(per_param_args)

    def fresh_start(self, seed):
        pyro.clear_param_store()
        pyro.set_rng_seed(seed)
        with torch.no_grad():
            self.baseline_net.weight.zero_()
            self.baseline_net.bias.zero_()

    def do_inference(self, baseline, seed, tolerance=0.80):
        """Steps until both parameters are within ``tolerance`` of the exact posterior."""
        self.fresh_start(seed)
        svi = SVI(self.model, self.guide, self.optimizer(baseline), loss=TraceGraph_ELBO())
        for k in range(self.max_steps):
            svi.step(baseline)
            # compute the distance to the parameters of the true posterior
            alpha_error = param_abs_error("alpha_q", self.alpha_n)
            beta_error = param_abs_error("beta_q", self.beta_n)
            # stop inference early if we're close to the true posterior
            if alpha_error < tolerance and beta_error < tolerance:
                return k
        return self.max_steps

    def gradient_variance(self, baseline, seed, draws=500, warmup=200):
        """The variance of d(loss)/d(alpha_q, beta_q) at the initial parameters (summed
        over both), after ``warmup`` estimates that let a baseline settle."""
        self.fresh_start(seed)
        elbo = TraceGraph_ELBO()
        opt = self.optimizer(baseline)
        store = pyro.get_param_store()
        grads = []
        for i in range(warmup + draws):
            elbo.loss_and_grads(self.model, self.guide, baseline)
            leaves = [store.unconstrained("alpha_q"), store.unconstrained("beta_q")]
            if i >= warmup:
                grads.append(torch.stack([leaf.grad for leaf in leaves]))
            for leaf in leaves:
                leaf.grad = None
            if baseline == "neural":
                # train only the baseline network, keeping the guide at its initial point
                net_leaves = [p for n, p in store.named_parameters() if "my_baseline" in n]
                opt(net_leaves)
                for p in net_leaves:
                    p.grad = None
        return torch.stack(grads).var(0).sum().item()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--max-steps", type=int, default=10000)
    parser.add_argument("--draws", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)  # tiny tensors: threads only add overhead

    bbe = BernoulliBetaExample(max_steps=args.max_steps)
    seeds = range(args.seeds)
    rows = []
    for baseline in ("none", "decaying", "neural"):
        steps = [bbe.do_inference(baseline, seed) for seed in seeds]
        variance = bbe.gradient_variance(baseline, seed=0, draws=args.draws)
        rows.append((baseline, steps, variance))
    print(f"steps to converge (|alpha_q - 16| < 0.8 and |beta_q - 14| < 0.8), {args.seeds} seeds:")
    print(f"{'baseline':>10} {'mean steps':>11} {'grad variance':>14}   steps per seed")
    for baseline, steps, variance in rows:
        mean = sum(steps) / len(steps)
        print(f"{baseline:>10} {mean:11.1f} {variance:14.3f}   {steps}")
    none_mean = sum(rows[0][1]) / len(rows[0][1])
    decaying_mean = sum(rows[1][1]) / len(rows[1][1])
    fewer = 100 * (1 - decaying_mean / none_mean)
    print(f"the decaying-average baseline takes {fewer:.0f}% fewer steps")
    print(f"gradient variance ratio decaying/none: {rows[1][2] / rows[0][2]:.3f}")


if __name__ == "__main__":
    main()
