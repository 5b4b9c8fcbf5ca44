"""Checks that the installed jaxlib's XLA FFI matches the call-frame layout the handlers read.

The handlers (``bindvae.kernels._sparse_ffi``) read XLA's call frame at fixed word offsets, written
for FFI API 0.3. A jaxlib that changed the API version or the order of the structs' fields would make
them read the wrong words, with no error naming it. So before the kernels are registered, the C header
that the installed jaxlib ships (``jax.ffi.include_dir()``) is read and compared with what the offsets
assume; a mismatch turns the CPU kernels off with one line saying why (``auto`` then trains on the XLA
``sparse`` path).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

API_VERSION = (0, 3)
# The fields, in order, whose positions the handlers' word offsets encode (see _sparse_ffi's docstring).
FIELDS = {
    "XLA_FFI_CallFrame": ["struct_size", "extension_start", "api", "ctx", "stage", "args", "rets"],
    "XLA_FFI_Args": ["struct_size", "extension_start", "size", "types", "args"],
    "XLA_FFI_Rets": ["struct_size", "extension_start", "size", "types", "rets"],
    "XLA_FFI_Buffer": ["struct_size", "extension_start", "dtype", "data", "rank", "dims"],
}


def header_problem(text: str) -> str | None:
    """Why the FFI described by the C header ``text`` differs from the handlers' layout; None when it matches."""
    version = tuple(int(v) for v in re.findall(r"#define XLA_FFI_API_(?:MAJOR|MINOR) (\d+)", text)[:2])
    if version != API_VERSION:
        return f"XLA FFI API {'.'.join(map(str, version)) or 'unknown'}, the kernels read API 0.3"
    for struct, expected in FIELDS.items():
        body = re.search(rf"struct {struct} \{{(.*?)\n\}};", text, re.S)
        if body is None:
            return f"{struct} is not declared in the FFI header"
        code = re.sub(r"//[^\n]*", "", body.group(1))
        names = re.findall(r"(\w+)\s*;", code)
        if names[: len(expected)] != expected:
            return f"{struct} has fields {names[:len(expected)]}, the kernels read {expected}"
    return None


@functools.cache
def problem() -> str | None:
    """Why the CPU kernels cannot run with the installed jaxlib (None: they can)."""
    import jax

    header = Path(jax.ffi.include_dir()) / "xla" / "ffi" / "api" / "c_api.h"
    if not header.is_file():
        return f"jaxlib ships no FFI header ({header.name}) to check the call frame against"
    return header_problem(header.read_text(errors="replace"))
