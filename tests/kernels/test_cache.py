"""The kernel cache hands every process the cached build, even after a kill mid-write.

Each check runs in a fresh interpreter: numba reads ``NUMBA_CACHE_DIR`` when it is imported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

from tests.conftest import REPO_ROOT

NAME = "bindvae_column_order"  # the quickest handler to compile (about 2 s)


def _run(cache_dir, code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "NUMBA_CACHE_DIR": str(cache_dir)}
    script = "import glob, os\nfrom bindvae.kernels import _cache\n" + textwrap.dedent(code)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip()


def _fill_then_drop_data(cache_dir) -> None:
    # What a kill between numba's two writes leaves: the index names a build whose file is missing.
    out = _run(cache_dir, f"""
        _cache.compile_into_cache([{NAME!r}])
        data = glob.glob(os.path.join(os.environ["NUMBA_CACHE_DIR"], "**", "*column_order_handler*.nbc"),
                         recursive=True)
        assert data and glob.glob(os.path.join(os.environ["NUMBA_CACHE_DIR"], "**", "*column_order_handler*.nbi"),
                                  recursive=True)
        for path in data:
            os.remove(path)
        print(_cache.is_cached({NAME!r}))
    """)
    assert out == "False"  # an index without its build is not a cached kernel


def test_an_index_without_its_build_is_compiled_in_the_child_and_loaded_from_the_cache(tmp_path):
    _fill_then_drop_data(tmp_path)
    out = _run(tmp_path, f"""
        calls = []
        child = _cache._compile_in_child
        _cache._compile_in_child = lambda names: calls.append(list(names)) or child(names)
        handler = _cache.load_handlers([{NAME!r}])[{NAME!r}]
        print(calls, bool(handler.cache_hits), _cache.is_cached({NAME!r}))
    """)
    assert out == f"[[{NAME!r}]] True True"


def test_a_handler_compiled_in_this_process_is_swapped_for_its_cached_build(tmp_path):
    # The child compiler fails (or the cache changed under us): the process compiles the handler,
    # which writes the cache, and must then run the cached build, not the one it compiled.
    _fill_then_drop_data(tmp_path)
    out = _run(tmp_path, f"""
        _cache._compile_in_child = lambda names: False
        handler = _cache.load_handlers([{NAME!r}])[{NAME!r}]
        print(bool(handler.cache_hits))
    """)
    assert out == "True"
