"""Lifecycle records: versioned datasets, features and labels, lineage, registry views.

The public calls are re-exported by :mod:`flordb` (``flor.dataset``, ``flor.feature``,
``flor.lineage``, ``flor.best``...); see ``docs/lifecycle.md``.
"""
