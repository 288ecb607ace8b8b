"""Named graph passes (``fold_batchnorm``, ``fuse_activation``, ``shorten_names``) and the artifact
checker behind ``--strict-graph``. See ``deploykit.passes.registry`` for how passes are selected."""

from deploykit.passes.registry import PassResult, PassSelection, all_passes, names, parse_passes, register_pass

__all__ = ["PassResult", "PassSelection", "all_passes", "names", "parse_passes", "register_pass"]
