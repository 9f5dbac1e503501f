"""Tokenizers with InstructBLIP's settings, from local files only (or the bundled tiny ones).

- Q-Former: ``BertTokenizer`` plus ``[DEC]`` as bos, left truncation.
- Vicuna: slow ``LlamaTokenizer`` with ``[PAD]`` added and bos = eos = unk = ``</s>`` (so LLM text starts with id 2).
- FlanT5: ``T5TokenizerFast`` twice, truncating inputs on the left and outputs on the right.

A name of a bundled tokenizer (``tiny_bert``, ``tiny_llama``, ``tiny_t5``) resolves to
``lavis_vislinginstruct/assets/tokenizers/<name>``; those are small sentencepiece / WordPiece models made by
``tools/make_tiny_tokenizers.py`` with the real tokenizers' classes and special-token ids.
"""
import os
from typing import Tuple

from transformers import BertTokenizer, LlamaTokenizer, T5TokenizerFast

from ..paths import package_path

BUNDLED = ("tiny_bert", "tiny_llama", "tiny_t5")


def _bundled(name: str) -> str:
    return package_path(os.path.join("assets", "tokenizers", name))


def _check_local(name: str, what: str) -> None:
    looks_like_path = name.startswith((".", "/", "~")) or os.sep in name and not name.count("/") == 1
    if looks_like_path and not os.path.exists(os.path.expanduser(name)):
        raise FileNotFoundError(f"{what} tokenizer not found at {name!r}: set the path in the model config")


def qformer_tokenizer(name: str) -> BertTokenizer:
    """BERT tokenizer of the Q-Former with ``[DEC]`` added and left truncation."""
    if name == "tiny_bert":
        tok = BertTokenizer(os.path.join(_bundled(name), "vocab.txt"), truncation_side="left")
    else:
        _check_local(name, "Q-Former")
        tok = BertTokenizer.from_pretrained(name, truncation_side="left")
    tok.add_special_tokens({"bos_token": "[DEC]"})
    return tok


def vicuna_tokenizer(name: str) -> LlamaTokenizer:
    """Vicuna tokenizer configured exactly as LAVIS's InstructBLIP configures it."""
    if name == "tiny_llama":
        tok = LlamaTokenizer(os.path.join(_bundled(name), "tokenizer.model"), truncation_side="left", legacy=True)
    else:
        _check_local(name, "Vicuna")
        tok = LlamaTokenizer.from_pretrained(name, use_fast=False, truncation_side="left")
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
        _check_local(name, "FlanT5")
        make = lambda side: T5TokenizerFast.from_pretrained(name, truncation_side=side)  # noqa: E731
    return make("left"), make("right")
