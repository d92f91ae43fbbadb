"""SpanningTree: a distribution over the spanning trees of the complete graph on V vertices,
each tree weighted by the product of its edges' ``exp(logit)``.

The normalizer comes from the matrix-tree theorem; exact samples from a batched Wilson's
algorithm (loop-erased random walks); the mode from Kruskal's algorithm.
"""

import functools
import itertools
import math
from typing import Optional, Sequence

import torch
from torch.distributions import constraints
from torch.distributions.utils import lazy_property

from pyrolite.distributions.expanded import expand_by_wrapping
from pyrolite.distributions.torch_distribution import TorchDistribution

_SAMPLER_OPTIONS = ("init_edges", "mcmc_steps", "backend")
_BACKENDS = ("python", "cpp")


def make_complete_graph(num_vertices: int) -> torch.Tensor:
    """The ``(2, V*(V-1)//2)`` vertex pairs of the complete graph, in colexicographic order:
    edge ``(v1, v2)`` with ``v1 < v2`` has rank ``v1 + v2 * (v2 - 1) // 2``.

    >>> make_complete_graph(4)
    tensor([[0, 0, 1, 0, 1, 2],
            [1, 2, 2, 3, 3, 3]])
    """
    v1, v2 = torch.tril_indices(num_vertices, num_vertices, -1).flip(0)
    order = (v1 + v2 * (v2 - 1) // 2).argsort()
    return torch.stack([v1[order], v2[order]])


def _edge_rank(edges: torch.Tensor) -> torch.Tensor:
    v1, v2 = edges[..., 0], edges[..., 1]
    return v1 + v2 * (v2 - 1) // 2


def _num_vertices(num_edges: int) -> int:
    num_vertices = int(round((1 + math.sqrt(1 + 8 * num_edges)) / 2))
    if num_vertices * (num_vertices - 1) // 2 != num_edges:
        raise ValueError(
            f"SpanningTree: edge_logits must have V*(V-1)//2 entries for some V, got "
            f"{num_edges}; build them with edge_logits = matrix[make_complete_graph(V)]."
        )
    return num_vertices


def _labels(edges: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """Each vertex's component label (its smallest vertex) under the ``(..., E, 2)``
    edges: the smallest label spreads along edges, and V-1 rounds reach every vertex."""
    v1, v2 = edges[..., 0], edges[..., 1]
    labels = torch.arange(num_vertices, device=edges.device).expand(edges.shape[:-2] + (-1,))
    labels = labels.contiguous()
    for _ in range(num_vertices - 1):
        least = torch.minimum(labels.gather(-1, v1), labels.gather(-1, v2))
        labels = labels.scatter_reduce(-1, v1, least, "amin").scatter_reduce(-1, v2, least, "amin")
    return labels


def _is_connected(edges: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """Whether the ``(..., E, 2)`` edge sets connect all vertices."""
    return (_labels(edges, num_vertices) == 0).all(-1)


def _find(parent: list, v: int) -> int:
    """Union-find root of ``v`` (with path halving)."""
    while parent[v] != v:
        parent[v] = parent[parent[v]]
        v = parent[v]
    return v


@functools.cache
def _all_spanning_trees(num_vertices: int) -> torch.Tensor:
    edges = make_complete_graph(num_vertices).t().tolist()
    trees = []
    for combo in itertools.combinations(range(len(edges)), num_vertices - 1):
        parent = list(range(num_vertices))
        acyclic = True
        for k in combo:
            a, b = _find(parent, edges[k][0]), _find(parent, edges[k][1])
            if a == b:
                acyclic = False
                break
            parent[a] = b
        if acyclic:
            trees.append([edges[k] for k in combo])
    # Pyro's order: lexicographic in the flattened (v1, v2) pairs of each colex-sorted tree.
    trees.sort(key=lambda tree: [v for edge in tree for v in edge])
    return torch.tensor(trees, dtype=torch.long).reshape(len(trees), num_vertices - 1, 2)


class SpanningTree(TorchDistribution):
    """Spanning trees on ``V`` vertices with ``p(tree) ∝ exp(sum of its edges' logits)``.

    A tree is a long tensor of shape ``(V-1, 2)``: each edge ``(v1, v2)`` has ``v1 < v2``
    and the edges are sorted colexicographically (by ``v1 + v2 * (v2 - 1) // 2``, the
    order of ``edge_logits``; see :func:`make_complete_graph`).

    ``sampler_options`` may hold ``init_edges`` (a tree to start from), ``mcmc_steps``
    (default 1) and ``backend`` ("python" or "cpp", both served by torch here). Without
    ``init_edges``, ``sample`` draws exact samples (Wilson's algorithm), so MCMC steps
    would add nothing; with it, ``mcmc_steps`` Gibbs sweeps (each tree edge removed and
    redrawn among the edges that reconnect the tree) start from ``init_edges``.

    >>> d = SpanningTree(torch.zeros(3))
    >>> d.enumerate_support().shape, round(float(d.log_prob(d.mode)), 4)
    (torch.Size([3, 2, 2]), -1.0986)
    """

    arg_constraints = {"edge_logits": constraints.real}
    support = constraints.nonnegative_integer
    has_enumerate_support = True
    expand = expand_by_wrapping

    def __init__(
        self,
        edge_logits: torch.Tensor,
        sampler_options: Optional[dict] = None,
        validate_args=None,
    ):
        if edge_logits.dim() != 1:
            raise ValueError(
                "SpanningTree does not support batched edge_logits: expected shape "
                f"(V*(V-1)//2,), got {tuple(edge_logits.shape)}"
            )
        options = {} if sampler_options is None else dict(sampler_options)
        unknown = sorted(set(options) - set(_SAMPLER_OPTIONS))
        if unknown:
            raise TypeError(
                f"SpanningTree: unknown sampler_options {unknown}; expected any of "
                f"{list(_SAMPLER_OPTIONS)}"
            )
        if options.get("backend", "python") not in _BACKENDS:
            raise ValueError(f"unknown backend: {options['backend']!r}; use 'python' or 'cpp'")
        self.edge_logits = edge_logits
        self.sampler_options = options
        self.num_vertices = _num_vertices(edge_logits.size(0))
        event_shape = torch.Size([self.num_vertices - 1, 2])
        super().__init__(torch.Size(), event_shape, validate_args=validate_args)

    def validate_edges(self, edges: torch.Tensor) -> None:
        """Raise ValueError unless ``edges`` (shape ``(..., V-1, 2)``) are trees in the
        canonical form: sorted within each edge, edges colexicographically sorted."""
        V = self.num_vertices
        if edges.shape[-2:] != (V - 1, 2):
            raise ValueError(f"Invalid edges shape: {edges.shape}; expected (..., {V - 1}, 2)")
        if V < 2:
            return
        if not bool((edges[..., 0] < edges[..., 1]).all()):
            raise ValueError(f"Vertices are not sorted in each edge:\n{edges}")
        if not bool(((edges >= 0) & (edges < V)).all()):
            raise ValueError(f"Vertices out of range [0, {V}):\n{edges}")
        rank = _edge_rank(edges)
        if not bool((rank[..., 1:] > rank[..., :-1]).all()):
            raise ValueError(f"Edges are not sorted colexicographically:\n{edges}")
        if not bool(_is_connected(edges, V).all()):
            raise ValueError(f"Edges do not constitute a tree:\n{edges}")

    def _weights(self):
        """The weighted adjacency matrix scaled by ``exp(-shift)``, and ``shift``."""
        V = self.num_vertices
        logits = self.edge_logits.double()
        shift = logits.detach().max() if logits.numel() else logits.new_zeros(())
        v1, v2 = make_complete_graph(V).to(logits.device)
        weights = logits.new_zeros(V, V)
        weights = weights.index_put((v1, v2), (logits - shift).exp())
        return weights + weights.t(), shift

    @lazy_property
    def log_partition_function(self) -> torch.Tensor:
        """``log sum_tree prod_e exp(logit_e)``: the log-determinant of any principal
        ``(V-1)``-minor of the weighted Laplacian (the matrix-tree theorem)."""
        V = self.num_vertices
        if V < 2:
            return self.edge_logits.new_zeros(())
        weights, shift = self._weights()
        laplacian = torch.diag(weights.sum(-1)) - weights
        logdet = torch.linalg.slogdet(laplacian[1:, 1:]).logabsdet
        return (logdet + (V - 1) * shift).to(self.edge_logits.dtype)

    def log_prob(self, edges: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self.validate_edges(edges)
        energy = self.edge_logits[_edge_rank(edges)].sum(-1)
        return energy - self.log_partition_function

    def enumerate_support(self, expand: bool = True) -> torch.Tensor:
        """All spanning trees, in Pyro's order (implemented for up to 6 vertices)."""
        if self.num_vertices > 6:
            raise NotImplementedError(
                "enumerate_support() is implemented only for trees with up to 6 vertices; "
                f"this one has {self.num_vertices} (V**(V-2) = "
                f"{self.num_vertices ** (self.num_vertices - 2)} trees)"
            )
        return _all_spanning_trees(self.num_vertices).to(self.edge_logits.device)

    @property
    def mode(self) -> torch.Tensor:
        """The maximum-weight spanning tree (Kruskal's algorithm)."""
        V = self.num_vertices
        pairs = make_complete_graph(V).t().tolist()
        parent = list(range(V))
        chosen = []
        for k in self.edge_logits.detach().argsort(descending=True).tolist():
            a, b = _find(parent, pairs[k][0]), _find(parent, pairs[k][1])
            if a != b:
                parent[a] = b
                chosen.append(k)
        chosen.sort()
        return torch.tensor([pairs[k] for k in chosen], dtype=torch.long).reshape(V - 1, 2)

    @property
    def edge_mean(self) -> torch.Tensor:
        """The ``(V, V)`` symmetric matrix of each edge's marginal probability of being in
        the tree: its weight times its effective resistance."""
        V = self.num_vertices
        if V < 2:
            return self.edge_logits.new_zeros(V, V)
        weights, _ = self._weights()
        laplacian = torch.diag(weights.sum(-1)) - weights
        inverse = torch.zeros_like(weights)
        inverse[1:, 1:] = torch.linalg.inv(laplacian[1:, 1:])
        diag = inverse.diagonal()
        resistance = diag.unsqueeze(-1) + diag - 2 * inverse
        return (weights * resistance).to(self.edge_logits.dtype)

    @torch.no_grad()
    def sample(self, sample_shape: Sequence[int] = ()) -> torch.Tensor:
        sample_shape = torch.Size(sample_shape)
        num_samples = math.prod(sample_shape)
        init_edges = self.sampler_options.get("init_edges")
        if init_edges is None:
            trees = self._sample_wilson(num_samples)
        else:
            steps = self.sampler_options.get("mcmc_steps", 1)
            trees = self._sample_gibbs(init_edges, steps, num_samples)
        return trees.reshape(sample_shape + self.event_shape)

    def _sample_wilson(self, num_samples: int) -> torch.Tensor:
        """Exact draws by Wilson's algorithm, run for all samples at once: from each vertex
        not yet in the tree, a random walk (steps ∝ edge weight) runs until it meets the
        tree; its loop-erased path joins the tree. Overwriting each vertex's last exit
        does the loop erasure."""
        V = self.num_vertices
        device = self.edge_logits.device
        if V < 2:
            return torch.zeros(num_samples, 0, 2, dtype=torch.long, device=device)
        weights, _ = self._weights()
        cdf = (weights / weights.sum(-1, keepdim=True)).cumsum(-1)
        cdf[:, -1] = 1.0  # guard against rounding: a uniform draw always lands
        rows = torch.arange(num_samples, device=device)
        in_tree = torch.zeros(num_samples, V, dtype=torch.bool, device=device)
        in_tree[:, 0] = True
        successor = torch.zeros(num_samples, V, dtype=torch.long, device=device)
        for start in range(1, V):
            walking = ~in_tree[:, start]
            joining = walking.clone()
            current = torch.full((num_samples,), start, dtype=torch.long, device=device)
            while bool(walking.any()):
                who = rows[walking]
                here = current[who]
                u = torch.rand(who.shape, dtype=cdf.dtype, device=device)
                step = torch.searchsorted(cdf[here], u.unsqueeze(-1)).squeeze(-1)
                step = step.clamp(max=V - 1)
                successor[who, here] = step
                current[who] = step
                walking[who] = ~in_tree[who, step]
            current[:] = start
            while bool(joining.any()):
                who = rows[joining]
                here = current[who]
                in_tree[who, here] = True
                current[who] = successor[who, here]
                joining[who] = ~in_tree[who, current[who]]
        child = torch.arange(1, V, device=device).expand(num_samples, V - 1)
        parent = successor[:, 1:]
        edges = torch.stack([torch.minimum(child, parent), torch.maximum(child, parent)], -1)
        order = _edge_rank(edges).argsort(-1)
        return edges.gather(-2, order.unsqueeze(-1).expand_as(edges))

    def _sample_gibbs(self, init_edges: torch.Tensor, mcmc_steps: int, num_samples: int):
        """``mcmc_steps`` sweeps of a Gibbs kernel that leaves p(tree) invariant, for all
        samples at once: remove one edge (splitting the tree in two) and redraw it among
        the edges across the cut, with probability ∝ exp(logit)."""
        V = self.num_vertices
        pairs = make_complete_graph(V).to(self.edge_logits.device)
        logits = self.edge_logits.detach()
        ranks = _edge_rank(init_edges.reshape(V - 1, 2)).expand(num_samples, V - 1).clone()
        for _ in range(mcmc_steps):
            for position in range(V - 1):
                kept = torch.cat([ranks[:, :position], ranks[:, position + 1 :]], -1)
                side = _labels(pairs[:, kept].permute(1, 2, 0), V) == 0
                across = side[:, pairs[0]] != side[:, pairs[1]]
                choice = logits.masked_fill(~across, -float("inf"))
                ranks[:, position] = torch.distributions.Categorical(logits=choice).sample()
        ranks = ranks.sort(-1).values
        return pairs[:, ranks].permute(1, 2, 0)
