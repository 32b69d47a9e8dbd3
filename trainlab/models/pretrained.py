"""Find a pretrained model on local disk and load it without network access or noisy reports."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Iterator
from typing import Any

from huggingface_hub import snapshot_download
from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

from trainlab.errors import ConfigError

logger = logging.getLogger(__name__)

# transformers logs its load report (missing / unexpected keys) as one large table through this logger.
# Only that record is filtered; other warnings still show. (Raising the logger's level instead would
# switch on transformers' tensor-parallel plan check, which warns on every load.)
_LOAD_REPORT_LOGGER = "transformers.modeling_utils"


def _is_not_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in str(record.msg)


def resolve_pretrained(pretrained: str, key: str = "MODEL.PRETRAINED") -> str:
    """Return a local directory for ``pretrained``: the directory itself, or the cached snapshot of a hub id.

    Never touches the network, so a missing model fails at once instead of hanging on a download.
    """
    if not isinstance(pretrained, (str, os.PathLike)) or not str(pretrained):
        raise ConfigError(f"{key} must be a directory or a Hugging Face hub id, got {pretrained!r}")
    path = os.path.expanduser(str(pretrained))
    if os.path.isdir(path):
        return path
    if _looks_like_path(path):
        raise ConfigError(
            f"{key} = '{pretrained}' is not a directory. Point it at a folder holding config.json and the "
            f"weights (the output of save_pretrained), or use a hub id that is already downloaded."
        )
    try:
        return snapshot_download(path, local_files_only=True)
    except (LocalEntryNotFoundError, HFValidationError) as error:
        raise ConfigError(
            f"{key} = '{pretrained}' is neither a local directory nor a model in the Hugging Face cache "
            f"(HF_HOME). TrainLab never downloads models: run `hf download {pretrained}` on a machine with "
            f"network access (or copy the model folder here) and set {key} to its path."
        ) from error


def _looks_like_path(text: str) -> bool:
    # hub ids are "name" or "owner/name"; anything else can only be meant as a path
    return os.path.isabs(text) or text.startswith(".") or text.count("/") > 1


@contextlib.contextmanager
def quiet_hf() -> Iterator[None]:
    """Hide transformers' progress bars and load-report table; callers log a one-line summary instead."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    report_logger = logging.getLogger(_LOAD_REPORT_LOGGER)
    report_logger.addFilter(_is_not_load_report)
    try:
        yield
    finally:
        report_logger.removeFilter(_is_not_load_report)
        if bars_were_on:
            hf_logging.enable_progress_bar()


def log_load_summary(what: str, source: str, newly_initialized: list[str], unused: list[str]) -> None:
    """Log the weights the checkpoint lacked (freshly initialised) and the checkpoint weights left unused."""
    if newly_initialized:
        logger.warning(
            "%s from %s: newly initialised (not in the checkpoint, train them): %s",
            what,
            source,
            _short_list(newly_initialized),
        )
    if unused:
        logger.info("%s from %s: checkpoint weights not used: %s", what, source, _short_list(unused))


def _short_list(names: list[str], limit: int = 8) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f", … ({len(names)} in all)" if len(names) > limit else "")


# Weight files of save_pretrained (and of older PyTorch, TensorFlow and Flax exports), shards included.
_WEIGHT_FILE = re.compile(r".*\.safetensors$|(pytorch_model|tf_model|flax_model|model\.ckpt)\b.*")


def check_weights(directory: str, key: str = "MODEL.PRETRAINED") -> None:
    """Raise ConfigError, naming ``directory``, when it holds no weight files or a safetensors file whose header
    is unreadable (truncated, not safetensors at all); reads headers only, so it costs nothing next to a load."""
    from safetensors import SafetensorError, safe_open

    files = sorted(name for name in os.listdir(directory) if _WEIGHT_FILE.fullmatch(name))
    if not files:
        raise ConfigError(
            f"no weights (*.safetensors / pytorch_model.bin) in {key} {directory} (it holds: "
            f"{', '.join(sorted(os.listdir(directory))[:6]) or 'nothing'}); copy the model's weight files there "
            f"(the whole save_pretrained output)"
        )
    for name in files:
        if name.endswith(".safetensors"):
            try:
                with safe_open(os.path.join(directory, name), framework="pt"):
                    pass
            except (SafetensorError, OSError) as error:
                raise ConfigError(
                    f"{key} {directory}: {name} is damaged ({error}); copy the model's weight files again"
                ) from None


# A directory holds a tokenizer / processor only if one of these files is there; without this check
# AutoTokenizer builds an empty-vocabulary tokenizer from config.json alone.
_TOKENIZER_FILES = ("tokenizer_config.json", "tokenizer.json", "vocab.txt", "vocab.json", "tokenizer.model")
_PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def load_preprocessors(directory: str, trust_remote_code: bool = False) -> tuple[Any, Any]:
    """Return ``(tokenizer, processor)`` saved in ``directory``; either is None when the model has none.

    An image-only model has no tokenizer and a text-only model no processor; neither is an error.
    """
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    files = set(os.listdir(directory))
    tokenizer = processor = None
    if files.intersection(_TOKENIZER_FILES):
        tokenizer = _load(AutoTokenizer, directory, trust_remote_code)
    if files.intersection(_PROCESSOR_FILES):
        processor = _load(AutoProcessor, directory, trust_remote_code)
        if processor is None or processor is tokenizer or _is_tokenizer(processor):
            processor = _load(AutoImageProcessor, directory, trust_remote_code)
    return tokenizer, processor


def _is_tokenizer(component: Any) -> bool:
    from transformers import PreTrainedTokenizerBase

    return isinstance(component, PreTrainedTokenizerBase)


def _load(loader: Any, directory: str, trust_remote_code: bool) -> Any:
    with quiet_hf():
        try:
            return loader.from_pretrained(
                directory, local_files_only=True, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError, TypeError, KeyError) as error:  # no such component, or an incomplete one
            logger.warning("could not load %s from %s: %s", loader.__name__, directory, error)
            return None
