"""Load the CPU kernels' FFI handlers from numba's on-disk cache, compiling them in a child process.

Why a child process: a kernel that numba has just compiled in this process and the same kernel
loaded from its cache do not compute the same floats. numba links a ``parallel=True`` kernel's
loop body into the caller once more when it writes the cache, so the cached build vectorises the
fast-math float32 reductions (theta's softmax sums, the squared gradient norms) differently from
the build that ran while compiling (measured: row sums apart in the 7th digit, parameters up to
1e-3 apart after 600 steps). A run whose kernels were compiled fresh (a new install, an edited
kernel, an empty ``NUMBA_CACHE_DIR``) was therefore not the run that a warm cache gives, and a
run killed in its first session and resumed was not the run left alone. Here a process never
runs a kernel it compiled itself: missing handlers are compiled by ``python -m
bindvae.kernels._cache NAME ...``, which only fills the cache, and every process then loads the
same cached builds, so cold and warm runs are bit-identical. numba writes a cache entry's index
before its build, so a run killed while its kernels compile can leave an index naming a missing
build: that counts as not cached.

The cache key of a handler covers the sources of both kernel modules (the handler and the
kernels it inlines), so editing a kernel never leaves a stale handler in the cache.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from numba.core import sigutils, typing
from numba.core.caching import FunctionCache
from numba.core.ccallback import CFunc
from numba.core.registry import cpu_target

logger = logging.getLogger(__name__)

# The modules whose source a handler's build depends on.
_SOURCES = ("_sparse_kernels.py", "_fused_kernels.py", "_sparse_ffi.py")
# Seconds per handler compiled in the child process on a 2-core CPU (measured: the fused path's 7
# handlers in 55 s, one at a time 4-18 s).
SECONDS_PER_HANDLER = 8


@functools.cache
def source_hash() -> str:
    """SHA-256 of the kernel modules' sources (part of every handler's cache key)."""
    digest = hashlib.sha256()
    for name in _SOURCES:
        digest.update((Path(__file__).parent / name).read_bytes())
    return digest.hexdigest()


class _KernelCache(FunctionCache):
    """numba's function cache with the kernels' source hash in the key of every entry."""

    def _index_key(self, sig, codegen):
        signature, magic, hashes = super()._index_key(sig, codegen)
        return signature, magic, hashes + (source_hash(),)


def _cfunc(pyfunc, signature) -> CFunc:
    # numba.cfunc(signature, cache=True) without compiling yet, with the source-keyed cache.
    handler = CFunc(pyfunc, sigutils.normalize_signature(signature), locals={}, options={})
    handler._cache = _KernelCache(pyfunc)
    return handler


def is_cached(name: str) -> bool:
    """Whether the cache holds a build of handler ``name`` for this machine and these sources."""
    from bindvae.kernels import _sparse_ffi

    pyfunc = _sparse_ffi.HANDLERS[name]
    try:
        cache = _KernelCache(pyfunc)
        args, return_type = sigutils.normalize_signature(_sparse_ffi.SIGNATURE)
        key = cache._index_key(typing.signature(return_type, *args), cpu_target.target_context.codegen())
        data_name = cache._cache_file._load_index().get(key)
        # numba writes an entry's index before its data file, so a process killed between the two
        # (a run stopped while its kernels compile) leaves an index that names a missing build.
        return data_name is not None and os.path.isfile(cache._cache_file._data_path(data_name))
    except Exception:  # an unreadable or foreign index: treat as missing (the child rewrites it)
        return False


def _compile_in_child(names: list[str]) -> bool:
    """Fill the cache with ``names`` from a child process; False when it could not."""
    logger.info("compiling CPU kernels, once: about %d s (%d kernel(s); cached for later runs)",
                SECONDS_PER_HANDLER * len(names), len(names))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "bindvae.kernels._cache", *names], env=os.environ.copy(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if result.returncode != 0:
        logger.warning("compiling CPU kernels in a child process failed; compiling here, then running "
                       "the builds this writes to the cache: %s",
                       (result.stderr.strip().splitlines() or ["no message"])[-1])
        return False
    logger.info("CPU kernels compiled in %.0f s", time.perf_counter() - start)
    return True


def load_handlers(names) -> dict:
    """The FFI handlers ``names``, each loaded from the cache (compiled first where missing).

    Returns:
        name -> numba ``CFunc`` (``.address`` is the handler's C entry point).
    """
    from bindvae.kernels import _sparse_ffi

    names = list(dict.fromkeys(names))
    missing = [name for name in names if not is_cached(name)]
    if missing:
        _compile_in_child(missing)
    handlers = {}
    for name in names:
        handler = _cfunc(_sparse_ffi.HANDLERS[name], _sparse_ffi.SIGNATURE)
        handler.compile()
        if not handler.cache_hits:
            # Compiled here after all (the child failed, or the cache changed under us); that compile
            # wrote the cache, so run the cached build that every other process loads, not this one.
            handler = _cfunc(_sparse_ffi.HANDLERS[name], _sparse_ffi.SIGNATURE)
            handler.compile()
        if not handler.cache_hits:
            logger.warning("CPU kernel %s was compiled in this process (its cache cannot be written?): "
                           "this run's last digits may differ from runs with a cached build", name)
        handlers[name] = handler
    return handlers


def compile_into_cache(names) -> None:
    """Compile handlers ``names`` and write them to the cache (the child process's job)."""
    from bindvae.kernels import _sparse_ffi

    for name in names:
        if name not in _sparse_ffi.HANDLERS:
            raise SystemExit(f"bindvae.kernels._cache: unknown handler {name!r}")
        handler = _cfunc(_sparse_ffi.HANDLERS[name], _sparse_ffi.SIGNATURE)
        handler.compile()  # loads when another process cached it meanwhile; writes the cache otherwise


if __name__ == "__main__":
    # python -m bindvae.kernels._cache NAME ... | --all (the install step fills the cache with --all)
    from bindvae.kernels import _sparse_ffi

    compile_into_cache(list(_sparse_ffi.HANDLERS) if sys.argv[1:] == ["--all"] else sys.argv[1:])
