"""Tokenizers with InstructBLIP's settings, from local files only (or the bundled tiny ones).

- Q-Former: ``BertTokenizer`` plus ``[DEC]`` as bos, left truncation.
- Vicuna: slow ``LlamaTokenizer`` with ``[PAD]`` added and bos = eos = unk = ``</s>`` (so LLM text starts with id 2).
- FlanT5: ``T5TokenizerFast`` twice, truncating inputs on the left and outputs on the right.

A name of a bundled tokenizer (``tiny_bert``, ``tiny_llama``, ``tiny_t5``) resolves to
``lavis_vislinginstruct/assets/tokenizers/<name>``; those are small sentencepiece / WordPiece models made by
``tools/make_tiny_tokenizers.py`` with the real tokenizers' classes and special-token ids.
"""
import os
from typing import Any, Tuple

from transformers import BertTokenizer, LlamaTokenizer, T5TokenizerFast

from ..paths import package_path

BUNDLED = ("tiny_bert", "tiny_llama", "tiny_t5")
#: Config key of the LLM tokenizer (empty: ``model.llm.model``), named in loading errors.
LLM_KEY = "model.llm.tokenizer"


def _bundled(name: str) -> str:
    return package_path(os.path.join("assets", "tokenizers", name))


def _check_local(name: str, what: str, key: str) -> None:
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and not name.count("/") == 1
    if looks_like_path and not os.path.exists(os.path.expanduser(name)):
        raise FileNotFoundError(f"{what} tokenizer not found at {name!r}: set {key} to the folder holding it")


def _from_pretrained(cls, name: str, what: str, key: str, **kwargs) -> Any:
    """``cls.from_pretrained(name)``, or an error naming the tokenizer, the config key and the local-folder fix.

    Offline, transformers fails on a hub id that is not in the local cache with errors that name neither
    (``TypeError: stat: path should be string ... not NoneType`` for BERT, ``Either model_file or model_proto
    must be specified`` for sentencepiece).

    Raises:
        FileNotFoundError: If the tokenizer cannot be loaded from ``name``.
        ValueError: If ``name`` is empty.
    """
    if not name:
        raise ValueError(f"no {what} tokenizer is set: set {key} to a local folder holding the tokenizer's files")
    _check_local(name, what, key)
    try:
        return cls.from_pretrained(name, **kwargs)
    except (OSError, TypeError, ValueError) as err:
        if os.path.isdir(os.path.expanduser(name)):
            raise FileNotFoundError(
                f"{what} tokenizer folder {name} cannot be read ({type(err).__name__}: {err}); set {key} to a folder "
                f"holding the {cls.__name__} files"
            ) from err
        offline = " (HF_HUB_OFFLINE is set)" if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") else ""
        raise FileNotFoundError(
            f"{what} tokenizer {name!r} is not available offline: it is not in the Hugging Face cache and cannot be "
            f"downloaded{offline}. Put its files in a local folder and set {key} to that folder's path"
        ) from err


def qformer_tokenizer(name: str) -> BertTokenizer:
    """BERT tokenizer of the Q-Former with ``[DEC]`` added and left truncation."""
    if name == "tiny_bert":
        tok = BertTokenizer(os.path.join(_bundled(name), "vocab.txt"), truncation_side="left")
    else:
        tok = _from_pretrained(BertTokenizer, name, "Q-Former", "model.qformer.tokenizer", truncation_side="left")
    tok.add_special_tokens({"bos_token": "[DEC]"})
    return tok


def vicuna_tokenizer(name: str) -> LlamaTokenizer:
    """Vicuna tokenizer configured exactly as LAVIS's InstructBLIP configures it."""
    if name == "tiny_llama":
        tok = LlamaTokenizer(os.path.join(_bundled(name), "tokenizer.model"), truncation_side="left", legacy=True)
    else:
        tok = _from_pretrained(LlamaTokenizer, name, "Vicuna", LLM_KEY, use_fast=False, truncation_side="left")
    tok.add_special_tokens({"pad_token": "[PAD]"})
    tok.add_special_tokens({"bos_token": "</s>"})
    tok.add_special_tokens({"eos_token": "</s>"})
    tok.add_special_tokens({"unk_token": "</s>"})
    return tok


def t5_tokenizers(name: str) -> Tuple[T5TokenizerFast, T5TokenizerFast]:
    """FlanT5 input tokenizer (left truncation) and output tokenizer (right truncation)."""
    if name == "tiny_t5":
        vocab = os.path.join(_bundled(name), "spiece.model")
        make = lambda side: T5TokenizerFast(vocab, extra_ids=0, truncation_side=side, legacy=True)  # noqa: E731
    else:
        make = lambda side: _from_pretrained(T5TokenizerFast, name, "FlanT5", LLM_KEY, truncation_side=side)  # noqa
    return make("left"), make("right")
