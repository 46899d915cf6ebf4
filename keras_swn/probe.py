"""Zero "probes" added to composed kernels, for dL/dkernel on any backend.

A probe is a plain zero tensor of a kernel's shape, added to the composed kernel
while `probe_scope` is active. The forward pass is unchanged and the gradient of
the loss with respect to the probe equals the gradient with respect to the
composed kernel (see the algorithm page, [Gradient capture and
similarity][similarity]). Probes are never variables: they never reach the
optimizer or saved files.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator
from typing import Mapping

_STATE = threading.local()


def _stack() -> list:
    if not hasattr(_STATE, "stack"):
        _STATE.stack = []
    return _STATE.stack


@contextlib.contextmanager
def probe_scope(probes: Mapping[int, object]) -> Iterator[None]:
    """Add `probes[id(layer)]` to the kernel of each listed layer."""
    _stack().append(dict(probes))
    try:
        yield
    finally:
        _stack().pop()


def active_probe(key: object):
    """The probe for `key` in the innermost scope, or None.

    Kernel probes are keyed by `id(layer)`; coefficient probes by the tuple
    of `keras_swn.bank.template_bank.coefficient_probe_key`. Any other object
    is looked up by its `id`.
    """
    stack = _stack()
    if not stack:
        return None
    return stack[-1].get(key if isinstance(key, tuple) else id(key))


def probes_active() -> bool:
    """Whether a `probe_scope` is active (a gradient-capture pass)."""
    return bool(_stack())
