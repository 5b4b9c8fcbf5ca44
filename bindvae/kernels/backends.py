"""The CPU kernel backends, registered with :mod:`bindvae.vae.backends` when this module is loaded.

``sparse_cpu`` computes the ELBO terms with the numba kernels of :mod:`bindvae.kernels.sparse_ops`
(k-mer ordered, multi-threaded) and leaves the update to optax; ``fused_cpu`` computes the same terms
and applies Adam to W1 and theta inside its gradient kernels (:mod:`bindvae.kernels.fused`), so it
implements exactly one optimiser: Adam with float32 moments, the hyper-parameters read from the
trainer's ``OptimizerSpec``.
"""

from __future__ import annotations

from bindvae.kernels import _ffi_layout, sparse_ops
from bindvae.vae import backends, objectives
from bindvae.vae.network import BindVAE, encoder_order, prior_alpha


class SparseCpu(backends.Backend):
    name = "sparse_cpu"
    kernels = sparse_ops.SPARSE_CPU_KERNELS

    def unsupported(self, optimizer=None):
        problem = _ffi_layout.problem()  # the installed jaxlib's call frame, checked before registering
        return ("train.compute_path", f"the CPU kernels are off: {problem}") if problem else None

    def row_terms(self, model, params, indices, counts, key, sampler="fast"):
        order = sparse_ops.column_order(indices, counts, model.n_kmers)
        enc = params["encoder"]
        enc_order = encoder_order(order, counts, model.input_transform, model.input_norm)
        h1 = sparse_ops.first_layer(enc["input_kernel"], enc_order, indices.shape[0]) + enc["input_bias"]
        conc = model.apply({"params": params}, h1, method=BindVAE.from_preactivation)
        prior = prior_alpha(params, model.min_concentration, model.max_concentration)
        z = objectives.sample_topics(key, conc, sampler)
        ll = sparse_ops.log_likelihood(z, params["topic_kmer"]["theta"], counts, order)
        return ll, objectives.dirichlet_kl(conc, prior), prior


class FusedCpu(SparseCpu):
    name = "fused_cpu"
    fuses_update = True
    kernels = sparse_ops.FUSED_CPU_KERNELS

    def unsupported(self, optimizer=None):
        refused = super().unsupported(optimizer)
        if refused is not None or optimizer is None:
            return refused
        if optimizer.name != "adam":
            return ("train.optimizer", f"fused_cpu applies Adam itself and does not implement {optimizer.name}")
        if optimizer.moment_dtype != "float32":
            return ("train.optimizer_state_dtype", "fused_cpu needs float32 Adam moments")
        if optimizer.decoder_update != "adam":
            return ("train.decoder_update",
                    f"fused_cpu applies Adam to the topics itself, not {optimizer.decoder_update}")
        return None

    def update(self, model, state, indices, counts, key, sampler, metrics_fn):
        """(params, opt_state, metrics, grad_norm, ok, workspace) of one step.

        See :func:`bindvae.kernels.fused.fused_step`.
        """
        from bindvae.kernels import fused

        return fused.fused_step(model, state, indices, counts, key, sampler, state.learning_rate, metrics_fn)

    def new_workspace(self, model):
        from bindvae.kernels import fused

        return fused.new_workspace(model)


backends.register(SparseCpu())
backends.register(FusedCpu())
