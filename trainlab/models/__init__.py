"""Built-in models; importing this package registers them in ``MODELS``."""

from . import bert, hf_wrapper

__all__ = ["bert", "hf_wrapper"]
