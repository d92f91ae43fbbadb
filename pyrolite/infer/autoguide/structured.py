"""``AutoStructured``: a guide whose sites depend on each other as the model's sites do.

Each latent site ``z`` gets a conditional (``"delta"``, ``"normal"``, ``"mvn"`` or a
callable drawing zero-centred noise) giving a perturbation ``delta_z`` of its flattened
unconstrained value, plus a dependency term per upstream site ``u``:
``delta_z += dep_zu(delta_u)`` (``"linear"`` is a bias-free ``nn.Linear``, initially zero).
The unconstrained value is ``loc_z + delta_z``. With ``dependencies="linear"`` each site
depends on the sites its prior depends on directly.
"""

from contextlib import ExitStack
from typing import Callable, Dict, List, Optional, Union

import torch
from torch import nn

from ... import primitives as pyro
from ...distributions import Delta, Normal, constraints
from ...distributions.util import sum_rightmost
from ...nn.module import PyroModule, PyroParam
from ...poutine.block_messenger import BlockMessenger
from ...poutine.messenger import Messenger
from ...poutine.plate_messenger import CondIndepStackFrame
from ...poutine.trace_messenger import TraceMessenger
from .guides import AutoGuide, _check_init_scale, _mask_is_false, deep_setattr, is_latent
from .initialization import init_to_feasible

_CONDITIONALS = ("delta", "normal", "mvn")
Conditional = Union[str, Callable]


class _LeafValues(Messenger):
    """Give each latent site its prototype value as a fresh leaf requiring grad, so that
    autograd tells which upstream values each site's distribution was built from."""

    def __init__(self, values: Dict[str, torch.Tensor]):
        super().__init__()
        self.values = values
        self.leaves: Dict[str, torch.Tensor] = {}

    def _pyro_sample(self, msg) -> None:
        name = msg["name"]
        if name in self.values and is_latent(msg):
            leaf = self.values[name].detach().clone().requires_grad_()
            self.leaves[name] = leaf
            msg["value"] = leaf
            msg["done"] = True


def prior_dependencies(model: Callable, values: Dict[str, torch.Tensor], *args, **kwargs):
    """{site: [upstream sites its prior's parameters are computed from]}, for the latent
    sites in ``values`` (in model order), found with autograd at those values."""
    leaves = _LeafValues(values)
    tracer = TraceMessenger()
    with torch.enable_grad(), BlockMessenger(), tracer, leaves:
        model(*args, **kwargs)
    order = [n for n in tracer.trace.nodes if n in leaves.leaves]
    deps: Dict[str, List[str]] = {}
    with torch.enable_grad():
        for i, name in enumerate(order):
            site = tracer.trace.nodes[name]
            upstream = order[:i]
            deps[name] = []
            if not upstream:
                continue
            log_prob = site["fn"].log_prob(site["value"]).sum()
            if not log_prob.requires_grad:
                continue
            grads = torch.autograd.grad(
                log_prob, [leaves.leaves[u] for u in upstream], allow_unused=True
            )
            deps[name] = [u for u, g in zip(upstream, grads) if g is not None]
    return deps


class AutoStructured(AutoGuide):
    """A structured guide: per-site conditionals plus (by default linear) dependencies on
    upstream sites, in the unconstrained space.

    Params (flattened per site): ``locs.{z}``; ``scales.{z}`` (``softplus_positive``) for
    ``"normal"``/``"mvn"``; ``scale_trils.{z}`` (``softplus_lower_cholesky``) for ``"mvn"``;
    ``deps.{z}.{u}`` (an ``nn.Linear``) for each linear dependency.

    :param conditionals: one of ``"delta"``, ``"normal"``, ``"mvn"`` for all sites, or a dict
        site -> one of them or a callable ``() -> noise`` (which samples its own noise).
    :param dependencies: ``"linear"`` (as the prior's dependencies), or a dict
        ``{downstream: {upstream: "linear" or callable}}``; a callable maps the flattened
        upstream perturbation to a flattened downstream one. Upstream sites must come
        before their downstream site in the model.

    >>> import torch, pyrolite, pyrolite.distributions as dist
    >>> pyrolite.clear_param_store()
    >>> def model():
    ...     a = pyrolite.sample("a", dist.Normal(0.0, 1.0))
    ...     pyrolite.sample("b", dist.Normal(a, 1.0))
    >>> guide = AutoStructured(model)
    >>> sorted(guide().keys())
    ['a', 'b']
    >>> sorted(pyrolite.get_param_store().keys())[:2]
    ['AutoStructured.deps.b.a$$$weight', 'AutoStructured.locs.a']
    """

    scale_constraint = constraints.softplus_positive
    scale_tril_constraint = constraints.softplus_lower_cholesky

    def __init__(
        self,
        model: Callable,
        *,
        conditionals: Union[str, Dict[str, Conditional]] = "mvn",
        dependencies: Union[str, Dict[str, Dict[str, Conditional]]] = "linear",
        init_loc_fn: Callable = init_to_feasible,
        init_scale: float = 0.1,
        create_plates: Optional[Callable] = None,
    ):
        if isinstance(conditionals, str) and conditionals not in _CONDITIONALS:
            raise ValueError(
                f"AutoStructured: conditionals must be one of {_CONDITIONALS} or a dict, "
                f"got {conditionals!r}"
            )
        if isinstance(dependencies, str) and dependencies != "linear":
            raise ValueError(
                f"AutoStructured: dependencies must be 'linear' or a dict, got {dependencies!r}"
            )
        super().__init__(model, create_plates=create_plates)
        self.init_loc_fn = init_loc_fn
        self._init_scale = _check_init_scale("AutoStructured", init_scale)
        self._conditionals_arg = conditionals
        self._dependencies_arg = dependencies

    def _check_can_subsample(self, name: str, frame: CondIndepStackFrame) -> None:
        raise NotImplementedError(
            f"AutoStructured cannot guide site '{name}', a local latent in the subsampled "
            f"plate('{frame.name}'): its params are of the prototype's full shape. Use "
            "AutoNormal for such sites (in an AutoGuideList), or do not subsample that plate."
        )

    def _setup_prototype(self, *args, **kwargs) -> None:
        super()._setup_prototype(*args, **kwargs)
        names = list(self._sites)
        conditionals = self._conditionals_arg
        if isinstance(conditionals, str):
            conditionals = {name: conditionals for name in names}
        for name in names:
            cond = conditionals.get(name)
            if cond is None or not (cond in _CONDITIONALS or callable(cond)):
                raise ValueError(
                    f"AutoStructured: site '{name}' needs a conditional in {_CONDITIONALS} "
                    f"or a callable, got {cond!r}; give one for every latent site"
                )
        dependencies = self._dependencies_arg
        if dependencies == "linear":
            values = {n: s["value"] for n, s in self.prototype_trace.nodes.items() if n in names}
            upstreams = prior_dependencies(self.model, values, *args, **kwargs)
            dependencies = {d: {u: "linear" for u in ups} for d, ups in upstreams.items() if ups}
        position = {name: i for i, name in enumerate(names)}
        for down, ups in dependencies.items():
            for up in ups:
                if down not in position or up not in position:
                    raise ValueError(
                        f"AutoStructured: dependency {up!r} -> {down!r} names a site that is "
                        f"not a latent site of the model (latent sites: {names})"
                    )
                if position[up] >= position[down]:
                    raise ValueError(
                        f"AutoStructured: site '{down}' cannot depend on '{up}', which is not "
                        "upstream of it in the model (dependencies must not form cycles)"
                    )

        self.locs, self.scales, self.scale_trils = PyroModule(), PyroModule(), PyroModule()
        self.deps = PyroModule()
        plans = []
        for name, site in self._sites.items():
            numel = site.init_unconstrained.numel()
            init = site.init_unconstrained.reshape(-1)
            cond = conditionals[name]
            loc = deep_setattr(self.locs, name, PyroParam(init, constraints.real, 1))
            scale = tril = None
            if cond in ("normal", "mvn"):
                scale_init = torch.full_like(init, self._init_scale)
                scale = deep_setattr(
                    self.scales, name, PyroParam(scale_init, self.scale_constraint, 1)
                )
            if cond == "mvn":
                eye = torch.eye(numel, dtype=init.dtype, device=init.device)
                tril = deep_setattr(
                    self.scale_trils, name, PyroParam(eye, self.scale_tril_constraint, 2)
                )
            deps = []
            for up, dep in dependencies.get(name, {}).items():
                if dep == "linear":
                    up_numel = self._sites[up].init_unconstrained.numel()
                    linear = nn.Linear(up_numel, numel, bias=False)
                    nn.init.zeros_(linear.weight)
                    dep = linear
                elif not callable(dep):
                    raise ValueError(
                        f"AutoStructured: dependency {up!r} -> {name!r} must be 'linear' or a "
                        f"callable, got {dep!r}"
                    )
                if isinstance(dep, nn.Module):
                    deps.append((up, deep_setattr(self.deps, f"{name}.{up}", dep)))
                else:
                    deps.append((up, (dep, None)))
            plans.append((site, cond, loc, scale, tril, deps))
        self._plans = plans

    def _deltas(self):
        """Draw each site's flattened perturbation; returns {site: (loc, delta, log_det)}."""
        out = {}
        for site, cond, (lo, la), scale, tril, _ in self._plans:
            name = site.name
            loc = getattr(lo, la)
            log_det = None
            if cond in ("normal", "mvn"):
                zero = torch.zeros_like(loc)
                aux = pyro.sample(
                    f"{name}_aux",
                    Normal(zero, torch.ones_like(zero)).to_event(1),
                    infer={"is_auxiliary": True},
                )
                scale_value = getattr(*scale)
                if cond == "mvn":
                    scale_tril = getattr(*tril)
                    delta = scale_value * (scale_tril @ aux.unsqueeze(-1)).squeeze(-1)
                    log_det = scale_value.log() + scale_tril.diagonal(dim1=-2, dim2=-1).log()
                else:
                    delta = scale_value * aux
                    log_det = scale_value.log()
            elif cond == "delta":
                delta = torch.zeros_like(loc)
            else:
                noise = cond()  # batch dims (if any) + the site's unconstrained shape
                batch = noise.shape[: noise.dim() - len(site.unconstrained_shape)]
                delta = noise.reshape(batch + loc.shape[-1:])
            out[name] = (loc, delta, log_det)
        # Dependencies after every conditional (as Pyro reads the params); in model order,
        # so an upstream perturbation is final when a downstream site reads it.
        for site, _, _, _, _, deps in self._plans:
            if deps:
                loc, delta, log_det = out[site.name]
                for up, (owner, attr) in deps:
                    dep = owner if attr is None else getattr(owner, attr)
                    delta = delta + dep(out[up][1])
                out[site.name] = (loc, delta, log_det)
        return out

    def forward(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        if self.prototype_trace is None:
            self._setup_prototype(*args, **kwargs)
        self._create_plates(*args, **kwargs)
        deltas = self._deltas()
        skip_jacobian = _mask_is_false()
        result = {}
        for site, *_ in self._plans:
            loc, delta, log_det = deltas[site.name]
            flat = loc + delta
            batch = flat.shape[:-1]
            shape = torch.broadcast_shapes(
                site.unconstrained_shape, batch + (1,) * site.unconstrained_event_dim
            )
            unconstrained = flat.reshape(shape)
            value, log_density = site.constrain(unconstrained, skip_jacobian)
            if log_det is not None and not skip_jacobian:
                # The triangular map aux -> value has log|det| = sum(log scale + log diag).
                per_element = log_det.reshape(site.unconstrained_shape)
                log_density = log_density - sum_rightmost(per_element, site.unconstrained_event_dim)
            point = Delta(value, log_density=log_density, event_dim=site.event_dim)
            with ExitStack() as stack:
                self._enter_plates(stack, site)
                result[site.name] = pyro.sample(site.name, point)
        return result

    def median(self, *args, **kwargs) -> Dict[str, torch.Tensor]:
        """{site: the constrained image of its loc} (every perturbation at zero)."""
        self._ensure_setup(args, kwargs)
        with torch.no_grad(), self._pyro_context:
            out = {}
            for site, _, (lo, la), *_ in self._plans:
                loc = getattr(lo, la).reshape(site.unconstrained_shape)
                out[site.name] = site.constrain(loc, True)[0].detach()
            return out

    def sample_posterior(self, *args, sample_shape=(), **kwargs) -> Dict[str, torch.Tensor]:
        self._ensure_setup(args, kwargs)
        shape = torch.Size(sample_shape)
        draws: Dict[str, List[torch.Tensor]] = {}
        with torch.no_grad():
            for _ in range(shape.numel()):
                with BlockMessenger():
                    for name, value in self(*args, **kwargs).items():
                        draws.setdefault(name, []).append(value)
        return {n: torch.stack(v).reshape(shape + v[0].shape) for n, v in draws.items()}
