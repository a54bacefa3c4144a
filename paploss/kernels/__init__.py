"""Pairwise sums of the Parameterized AP Loss: reference, sorted and Triton backends."""

from paploss.kernels.dispatch import BACKENDS, pairwise_sums, resolve_backend

__all__ = ["BACKENDS", "pairwise_sums", "resolve_backend"]
