"""Compute paths ("backends"): how one padded batch's ELBO terms are computed, chosen once from the config.

Every backend computes the same model (:mod:`bindvae.vae.network`, :mod:`bindvae.vae.objectives`) and
returns the same per-sequence terms; they differ in how they touch the sparse counts:

    dense       densify the batch and use matmuls (fastest on accelerators)
    sparse      XLA gathers and scatter-adds at the nonzero k-mers
    sparse_cpu  numba kernels in k-mer order (CPU only; :mod:`bindvae.kernels`)
    fused_cpu   the same kernels, with the network's Adam update applied inside them

The CPU kernel backends live in :mod:`bindvae.kernels` and register themselves when that module is
loaded (by name, below), so this package never imports the kernels. A backend that does not implement
a model variant or an optimiser says so by name (:meth:`Backend.unsupported`); ``auto`` then picks one
that does.
"""

from __future__ import annotations

import importlib

from bindvae.vae import objectives
from bindvae.vae.network import BindVAE

# Backends provided by other modules, loaded on first use.
_PLUGINS = {"sparse_cpu": "bindvae.kernels.backends", "fused_cpu": "bindvae.kernels.backends"}
_REGISTRY: dict[str, Backend] = {}


class Backend:
    """One compute path.

    Attributes:
        name: the ``train.compute_path`` value.
        fuses_update: the backend applies the network's optimiser update itself (:meth:`update`);
            otherwise the trainer differentiates :meth:`row_terms` and applies optax.
        kernels: the CPU kernels it runs (loaded once per process before the first step).
    """

    name = ""
    fuses_update = False
    kernels: tuple[str, ...] = ()

    def row_terms(self, model: BindVAE, params, indices, counts, key, sampler: str = "fast"):
        """(log_likelihood [B], kl [B], prior_alpha [M]) of a padded batch (indices int32 / counts [B, K])."""
        raise NotImplementedError

    def new_workspace(self, model: BindVAE):
        """Buffers the backend keeps from one step to the next (``TrainState.workspace``); None when none."""
        return None

    def unsupported(self, optimizer=None) -> tuple[str, str] | None:
        """``(config key, why)`` when this backend cannot train with ``optimizer`` (an ``OptimizerSpec``); else None."""
        return None


class Dense(Backend):
    name = "dense"

    def row_terms(self, model, params, indices, counts, key, sampler="fast"):
        x = objectives.densify(indices, counts, model.n_kmers)
        conc, theta, prior = model.apply({"params": params}, x)
        z = objectives.sample_topics(key, conc, sampler)
        ll = objectives.log_likelihood_dense(z, theta, x, model.decoder)
        return ll, objectives.dirichlet_kl(conc, prior), prior


class Sparse(Backend):
    name = "sparse"

    def row_terms(self, model, params, indices, counts, key, sampler="fast"):
        conc, theta, prior = model.apply({"params": params}, indices, counts, method=BindVAE.sparse)
        z = objectives.sample_topics(key, conc, sampler)
        ll = objectives.log_likelihood_sparse(z, theta, indices, counts, model.decoder)
        return ll, objectives.dirichlet_kl(conc, prior), prior


def register(backend: Backend) -> Backend:
    """Make ``backend`` available under its name (kernel modules call this when loaded)."""
    _REGISTRY[backend.name] = backend
    return backend


def get(name: str) -> Backend:
    """The backend called ``name`` (a resolved ``train.compute_path``, not ``auto``)."""
    if name not in _REGISTRY and name in _PLUGINS:
        importlib.import_module(_PLUGINS[name])
    if name not in _REGISTRY:
        raise KeyError(f"no compute path {name!r}; known: {sorted(set(_REGISTRY) | set(_PLUGINS))}")
    return _REGISTRY[name]


register(Dense())
register(Sparse())
