"""Batched greedy decoding for decoder-only LLMs, with optional prompt-lookup drafts.

HF ``generate`` rebuilds the attention mask of a padded batch at every step; in transformers 4.5x that is a
``vmap`` over (batch, head, query, key) which, on a CPU, costs more than a small model's whole forward pass
(measured with ``bench/aio.py``: about 80 % of a greedy step of the tiny model). This loop keeps its own additive
mask over the cached keys, written one block of columns per step, and stops a row at its end-of-sequence token.
Its tokens equal HF's greedy ``generate`` on the same inputs (tests/test_decoding.py).

With ``lookup > 0`` each step also verifies up to ``lookup`` draft tokens per row, copied from the row's own text
where its last n-gram occurred before (prompt-lookup decoding, as transformers' ``prompt_lookup_num_tokens``, but
batched: rejected drafts stay in the KV cache, masked out for every later query). Greedy verification accepts a
draft only where it is the model's own argmax, so the output is the same; a rewrite that copies most of its input
then takes a fraction of the forward passes.

A step of a small model is mostly per-operation overhead, so the loop does per step one argmax over the whole
(batch, block), one transfer of its result to Python, and builds its inputs with a few tensor operations from Python
lists; drafts come from an n-gram index that grows with each row's text. (Tiny Vicuna, one CPU thread, AIO's
ranking batches of ``bench/eval_throughput.py``: the loop's own work fell from 0.40 to 0.17 ms of a step; the
rest, about 1.1 ms, is the HF forward.)

Used by ``llm_adapters.DecoderOnlyAdapter.generate`` for greedy calls (AIO's rewrite and comparison stages, greedy
answers); beam search and sampling stay with HF ``generate``.
"""
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from transformers import DynamicCache


class _Drafter:
    """Draft tokens for one growing token sequence: what followed the most recent earlier occurrence of its
    longest suffix n-gram (n <= ``max_ngram``).

    An index maps each n-gram to its latest start among the n-grams that end before the last token (so the suffix
    itself never matches), extended as the sequence grows: a lookup costs O(max_ngram), not a scan of the text.
    """

    def __init__(self, history: List[int], max_ngram: int = 3):
        self.history = history  # the caller appends to it
        self.max_ngram = max_ngram
        self._latest: Dict[Tuple[int, ...], int] = {}
        self._ends = 0  # n-grams ending at indices < _ends are indexed

    def drafts(self, k: int) -> List[int]:
        """Up to ``k`` draft tokens (none when no suffix n-gram occurred before)."""
        h = self.history
        last = len(h) - 1
        for end in range(self._ends, last):  # index the n-grams that end before the last token
            for n in range(1, min(self.max_ngram, end + 1) + 1):
                self._latest[tuple(h[end - n + 1 : end + 1])] = end - n + 1
        self._ends = max(self._ends, last)
        for n in range(min(self.max_ngram, last), 0, -1):
            start = self._latest.get(tuple(h[-n:]))
            if start is not None:
                return h[start + n : start + n + k]
        return []


@torch.no_grad()
def greedy_decode(
    lm: torch.nn.Module,
    embeds: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_token_ids: Sequence[int],
    min_new_tokens: int = 0,
    prompt_ids: Optional[List[List[int]]] = None,
    lookup: int = 0,
    streamer: Optional[Any] = None,
) -> List[List[int]]:
    """Greedy continuation of left-padded input embeddings; returns each row's new tokens (ending at EOS).

    Args:
        lm: A HF causal LM (called with ``inputs_embeds``/``input_ids``, a 4-D mask, ``position_ids`` and a cache).
        embeds: (B, T, D) input embeddings, left-padded.
        attention_mask: (B, T) 1 for real positions.
        max_new_tokens: Most tokens generated per row.
        eos_token_ids: Tokens that end a row (kept as its last token, as HF ``generate`` does).
        min_new_tokens: End-of-sequence tokens are not chosen before this many tokens (HF's ``min_new_tokens``).
        prompt_ids: Per row, the token ids of its text part (drafts are looked up there and in the output).
        lookup: Draft tokens verified per step (0: plain greedy decoding).
        streamer: A HF streamer (one row only), fed as HF ``generate`` feeds it: the (empty) prompt ids first, then
            each token as it is chosen, then ``end()``.
    """
    device, dtype = embeds.device, embeds.dtype
    neg = torch.finfo(dtype).min
    b, t = attention_mask.shape
    eos_set = set(eos_token_ids)
    eos = torch.tensor(list(eos_token_ids), dtype=torch.long, device=device)
    if streamer is not None and b != 1:
        raise ValueError(f"a streamer follows one sample, got a batch of {b}")
    emit = (lambda token: streamer.put(torch.tensor([token]))) if streamer is not None else (lambda token: None)
    if streamer is not None:
        streamer.put(torch.zeros(1, 0, dtype=torch.long))  # HF's first put: the input ids (none beside embeddings)

    # step 1: prefill with a causal + padding mask; only the last position's logits are needed (as HF generate)
    position = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    logits = lm(inputs_embeds=embeds, attention_mask=causal_mask(attention_mask, dtype), position_ids=position,
                past_key_values=cache, use_cache=True, return_dict=True, logits_to_keep=1).logits  # (B, 1, V)
    next_pos = (position[:, -1] + 1).tolist()
    # the additive mask over cached keys, one column per key: 0 for a real token, ``neg`` for padding, finished
    # rows' placeholders and rejected drafts (a step adds at most 1 + lookup keys, and there are < max_new_tokens)
    lookup = max(0, min(lookup, max_new_tokens - 1))
    keys = torch.full((b, t + max_new_tokens * (1 + lookup)), neg, dtype=dtype, device=device)
    keys[:, :t].masked_fill_(attention_mask.bool(), 0.0)
    past = t  # keys in the cache

    drafters = [_Drafter(list(p)) for p in prompt_ids] if prompt_ids is not None else [_Drafter([]) for _ in range(b)]
    outputs: List[List[int]] = [[] for _ in range(b)]
    done = [False] * b
    drafts: List[List[int]] = [[] for _ in range(b)]  # what each row fed after its last token in the last step
    width = 0  # keys the last step added (0: the prefill)
    while True:
        # step 2: the model's choice at every fed position (EOS masked while a row is below min_new_tokens); a row
        # takes its drafts while each equals the choice before it, then the choice after its last accepted token
        best = _choices(logits, [len(o) for o in outputs], min_new_tokens, eos).tolist()  # (B, W)
        kept = [0] * b  # keys of the last block that stay visible: the fed token and the accepted drafts
        for i in range(b):
            if done[i]:
                continue
            fed = drafts[i]
            for j, token in enumerate(best[i][: len(fed) + 1]):
                outputs[i].append(token)
                drafters[i].history.append(token)
                emit(token)
                if token in eos_set or len(outputs[i]) >= max_new_tokens:
                    done[i] = True
                    break
                if j == len(fed) or token != fed[j]:
                    break
            kept[i] = 1 + j
            next_pos[i] += kept[i] if width else 0  # the position of the token fed next
        if width and any(not d and k < 1 + len(f) for d, k, f in zip(done, kept, drafts)):  # rejected drafts
            keys[:, past - width : past] = _block(kept, width, neg, keys)
        if all(done):
            return _finish(outputs, streamer)
        # step 3: feed each row's last token and its drafts; finished rows feed a masked placeholder
        drafts = [
            [] if done[i] or not lookup else drafters[i].drafts(min(lookup, max_new_tokens - len(outputs[i])))
            for i in range(b)
        ]
        width = 1 + max(len(d) for d in drafts)
        ids = [[0] * width if done[i] else [outputs[i][-1], *d] + [0] * (width - 1 - len(d))
               for i, d in enumerate(drafts)]
        keys[:, past : past + width] = _block([0 if done[i] else 1 + len(d) for i, d in enumerate(drafts)], width,
                                              neg, keys)
        past += width
        # a placeholder or unused draft slot sees no key of its own block: its output is never read, and its
        # softmax is not empty (masked keys are finite, and every row keeps its prompt's keys)
        mask = keys[:, None, None, :past]  # (B, 1, 1, K): every fed token sees the same keys, but for ...
        if width > 1:  # ... the block itself, where a draft sees the tokens fed before it only
            mask = mask.expand(b, 1, width, past).clone()
            mask[..., past - width :].masked_fill_(_upper(width, device), neg)
        positions = [[p + j for j in range(width)] for p in next_pos]
        logits = lm(input_ids=torch.tensor(ids, device=device), attention_mask=mask,
                    position_ids=torch.tensor(positions, device=device), past_key_values=cache, use_cache=True,
                    return_dict=True).logits  # (B, W, V)


def _choices(logits: torch.Tensor, counts: List[int], min_new_tokens: int, eos: torch.Tensor) -> torch.Tensor:
    """(B, W) argmax of (B, W, V) logits, with the end-of-sequence tokens masked at positions where a row that has
    ``counts[i]`` tokens would have fewer than ``min_new_tokens`` (ties: the lowest id, as ``argmax``)."""
    w = logits.size(1)
    if any(n < min_new_tokens for n in counts):
        below = torch.tensor([[n + j < min_new_tokens for j in range(w)] for n in counts], device=logits.device)
        logits[:, :, eos] = logits[:, :, eos].masked_fill(below[..., None], float("-inf"))
    return logits.argmax(-1)


def _block(visible: List[int], width: int, neg: float, like: torch.Tensor) -> torch.Tensor:
    """(B, width) additive mask columns: the first ``visible[i]`` of row i at 0, the rest at ``neg``."""
    rows = [[0.0] * v + [neg] * (width - v) for v in visible]
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


_UPPER: Dict[Tuple[int, str], torch.Tensor] = {}


def _upper(width: int, device: torch.device) -> torch.Tensor:
    """(width, width) True above the diagonal: the keys of a fed block a query of the block must not see."""
    key = (width, str(device))
    if key not in _UPPER:
        _UPPER[key] = torch.ones(width, width, dtype=torch.bool, device=device).triu(1)
    return _UPPER[key]


def _finish(outputs: List[List[int]], streamer: Optional[Any]) -> List[List[int]]:
    if streamer is not None:
        streamer.end()
    return outputs


def causal_mask(attention_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The (B, 1, T, T) additive causal + padding mask of a (B, T) padding mask, built once (HF accepts a 4-D
    mask as given). Padded query positions see themselves, so no softmax row is empty; their outputs are unused."""
    t = attention_mask.size(1)
    ones = torch.ones(t, t, dtype=torch.bool, device=attention_mask.device)
    allowed = (ones.tril()[None] & attention_mask.bool()[:, None, :]) | torch.eye(t, dtype=torch.bool,
                                                                                 device=attention_mask.device)[None]
    return _additive(allowed, dtype, torch.finfo(dtype).min)


def _additive(allowed: torch.Tensor, dtype: torch.dtype, neg: float) -> torch.Tensor:
    """(B, Q, K) booleans -> the (B, 1, Q, K) additive mask HF attention takes as given."""
    return torch.zeros(allowed.shape, dtype=dtype, device=allowed.device).masked_fill(~allowed, neg)[:, None]
