"""Batched greedy decoding for decoder-only LLMs, with optional prompt-lookup drafts.

HF ``generate`` rebuilds the attention mask of a padded batch at every step; in transformers 4.5x that is a
``vmap`` over (batch, head, query, key) which, on a CPU, costs more than a small model's whole forward pass
(measured with ``bench/aio.py``: about 80 % of a greedy step of the tiny model). This loop keeps its own additive
4-D mask (the model uses a 4-D mask as given) and extends it by one column per step, and stops a row at its
end-of-sequence token. Its tokens equal HF's greedy ``generate`` on the same inputs (tests/test_decoding.py).

With ``lookup > 0`` each step also verifies up to ``lookup`` draft tokens per row, copied from the row's own text
where its last n-gram occurred before (prompt-lookup decoding, as transformers' ``prompt_lookup_num_tokens``, but
batched: rejected drafts stay in the KV cache, masked out for every later query). Greedy verification accepts a
draft only where it is the model's own argmax, so the output is the same; a rewrite that copies most of its input
then takes a fraction of the forward passes.

Used by ``llm_adapters.DecoderOnlyAdapter.generate`` for greedy calls (AIO's rewrite and comparison stages, greedy
answers); beam search and sampling stay with HF ``generate``.
"""
from typing import Any, List, Optional, Sequence

import torch
from transformers import DynamicCache


def _lookup_drafts(history: List[int], k: int, max_ngram: int = 3) -> List[int]:
    """Up to ``k`` tokens that followed the most recent earlier occurrence of the longest suffix n-gram."""
    for n in range(min(max_ngram, len(history) - 1), 0, -1):
        tail = history[-n:]
        for start in range(len(history) - n - 1, -1, -1):
            if history[start : start + n] == tail:
                return history[start + n : start + n + k]
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
    b = attention_mask.size(0)
    valid = attention_mask.bool()  # (B, L): which cached key positions are real
    eos = torch.tensor(list(eos_token_ids), device=device)
    if streamer is not None and b != 1:
        raise ValueError(f"a streamer follows one sample, got a batch of {b}")
    emit = (lambda token: streamer.put(torch.tensor([token]))) if streamer is not None else (lambda token: None)
    if streamer is not None:
        streamer.put(torch.zeros(1, 0, dtype=torch.long))  # HF's first put: the input ids (none beside embeddings)

    # step 1: prefill with a causal + padding mask
    position = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache()
    out = lm(inputs_embeds=embeds, attention_mask=causal_mask(attention_mask, dtype), position_ids=position,
             past_key_values=cache, use_cache=True, return_dict=True)
    logits = out.logits[:, -1].float()  # (B, V)
    next_pos = position[:, -1] + 1  # (B,)

    histories = [list(p) for p in prompt_ids] if prompt_ids is not None else [[] for _ in range(b)]
    outputs: List[List[int]] = [[] for _ in range(b)]
    done = [False] * b
    while True:
        # step 2: the model's choice after what each row has (EOS masked until min_new_tokens)
        for i in range(b):
            if done[i]:
                continue
            row = logits[i]
            if len(outputs[i]) < min_new_tokens:
                row = row.clone()
                row[eos] = float("-inf")
            token = int(row.argmax())
            outputs[i].append(token)
            emit(token)
            histories[i].append(token)
            if token in eos_token_ids or len(outputs[i]) >= max_new_tokens:
                done[i] = True
        if all(done):
            return _finish(outputs, streamer)
        # step 3: feed each row's last token (+ drafts); finished rows feed a masked placeholder
        drafts = [
            [] if done[i] or not lookup else _lookup_drafts(histories[i], min(lookup, max_new_tokens - len(outputs[i])))
            for i in range(b)
        ]
        width = 1 + max(len(d) for d in drafts)
        ids = torch.zeros(b, width, dtype=torch.long, device=device)
        block_valid = torch.zeros(b, width, dtype=torch.bool, device=device)
        for i in range(b):
            if not done[i]:
                row_ids = [outputs[i][-1]] + drafts[i]
                ids[i, : len(row_ids)] = torch.tensor(row_ids, device=device)
                block_valid[i, : len(row_ids)] = True
        past = valid.size(1)
        valid = torch.cat([valid, block_valid], dim=1)
        causal = torch.ones(width, width, dtype=torch.bool, device=device).tril()
        allowed = torch.cat([valid[:, None, :past].expand(b, width, past), causal[None] & block_valid[:, None, :]], -1)
        allowed[:, torch.arange(width), past + torch.arange(width)] = True
        positions = next_pos[:, None] + torch.arange(width, device=device)[None]
        out = lm(input_ids=ids, attention_mask=_additive(allowed, dtype, neg), position_ids=positions,
                 past_key_values=cache, use_cache=True, return_dict=True)
        step_logits = out.logits.float()  # (B, W, V)
        # step 4: accept drafts while they are the model's own choice; the rest stay cached but masked
        logits = torch.empty(b, step_logits.size(-1), device=device)
        for i in range(b):
            if done[i]:
                logits[i] = step_logits[i, 0]
                continue
            accepted = 0
            for j, draft in enumerate(drafts[i]):
                row = step_logits[i, j]
                if len(outputs[i]) < min_new_tokens:
                    row = row.clone()
                    row[eos] = float("-inf")
                if int(row.argmax()) != draft:
                    break
                outputs[i].append(draft)
                histories[i].append(draft)
                emit(draft)
                accepted += 1
                if draft in eos_token_ids or len(outputs[i]) >= max_new_tokens:
                    done[i] = True
                    break
            valid[i, past + 1 + accepted : past + width] = False
            logits[i] = step_logits[i, accepted]
            next_pos[i] += 1 + accepted
        if all(done):
            return _finish(outputs, streamer)


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
