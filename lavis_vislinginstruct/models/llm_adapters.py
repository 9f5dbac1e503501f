"""The two LLM families behind one interface: decoder-only (Vicuna) and encoder-decoder (FlanT5).

Each adapter turns (visual prefix embeddings, instruction texts, target texts) into what InstructBLIP computes:

- ``loss``: the training loss of LAVIS's ``Blip2VicunaInstruct`` / ``Blip2T5Instruct`` (paper eq. 2): visual
  tokens and instruction masked out; Vicuna sees ``[visual][</s> instruction][answer </s>]``, T5 gets the
  instruction in the encoder and the answer in the decoder.
- ``generate``: HF ``generate`` on the same embeddings, with LAVIS's post-processing.
- ``continuation_nll``: per-sample NLL of a continuation after (visual prefix, prompt), used by the Instruction
  Alignment Score.
- ``rank``: per-candidate NLL with the image+prompt prefix computed once per sample: a KV cache expanded over
  the candidates for Vicuna, one encoder output shared by the candidates for T5.

Adapters are plain objects that hold the language model they drive (the owning ``nn.Module`` registers the same
HF model under LAVIS's name, ``llm_model`` / ``t5_model``, so checkpoints keep their keys) and private copies of
their tokenizers, configured once.
"""
import contextlib
import copy
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from transformers import TextIteratorStreamer
from transformers.modeling_outputs import BaseModelOutput

from .decoding import causal_mask, greedy_decode
from .generation import Decoding
from .losses import IGNORE_INDEX, sequence_nll, token_nll


class LLMAdapter:
    """Shared plumbing; subclasses implement the family-specific token layout.

    An adapter owns its language model reference and its own copies of the tokenizers, each configured once here
    (padding and truncation sides), so no call changes a tokenizer that anyone else holds.
    """

    model_attr = ""
    proj_attr = ""
    autocast_dtype = torch.float16

    def __init__(self, lm: torch.nn.Module, max_txt_len: int, max_output_txt_len: int):
        self.lm = lm
        self.max_txt_len = max_txt_len
        self.max_output_txt_len = max_output_txt_len

    @property
    def device(self) -> torch.device:
        return self.lm.get_input_embeddings().weight.device

    def autocast(self, dtype: Optional[torch.dtype] = None):
        """Autocast on GPU (``dtype``, default fp16 for Vicuna and bf16 for T5, as LAVIS), nothing on CPU (fp32)."""
        if self.device.type == "cpu":
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=dtype or self.autocast_dtype)

    def clean_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """Generated ids as ``generate`` decodes them (in place; the identity unless a family needs more)."""
        return ids

    def make_streamer(self, timeout=None) -> "AdapterStreamer":
        """A streamer for ``generate(..., streamer=...)`` that decodes as ``generate`` does."""
        return AdapterStreamer(self, timeout)

    def weights_token(self) -> int:
        """A value that changes when any parameter of the language model is replaced or modified in place: the
        model object and, per tensor, its storage and PyTorch's in-place version counter (bumped by loading and by
        optimizer steps). AIO keys its cached rewrites with it (a hash: it is part of every key)."""
        return hash((id(self.lm),) + tuple((p.data_ptr(), p._version) for p in self.lm.parameters()))

    def token_counts(self, texts: Sequence[str]) -> List[int]:
        """LLM tokens of each text (special tokens included, as prompts are tokenized)."""
        return [len(ids) for ids in self.tokenizer(list(texts)).input_ids]

    def context_length(self) -> Optional[int]:
        """The LLM's context in tokens (visual tokens, prompt and generated tokens), or None when it has none."""
        return None

    def generation_room(self, prompts: Sequence[str], visual_tokens: int) -> Optional[int]:
        """New tokens the context leaves after the longest of ``prompts`` (as generation cuts them) and
        ``visual_tokens``; None without a fixed context."""
        context = self.context_length()
        if context is None:
            return None
        limit = self.prompt_limit()
        longest = max(min(n, limit) if limit else n for n in self.token_counts(prompts))
        return context - longest - visual_tokens

    def prompt_limit(self) -> Optional[int]:
        """Most LLM tokens of a generation prompt (longer ones lose their start), or None when none is cut (FlanT5:
        relative positions have no context limit, and LAVIS's T5 ``generate`` reads the prompt whole)."""
        return None


def configured(tokenizer, **sides: str):
    """A private copy of ``tokenizer`` with the given ``padding_side``/``truncation_side``."""
    tok = copy.deepcopy(tokenizer)
    for name, value in sides.items():
        setattr(tok, name, value)
    return tok


class AdapterStreamer(TextIteratorStreamer):
    """transformers' ``TextIteratorStreamer`` fed with the ids an adapter decodes (the prompt is skipped: for T5 it
    is the decoder start token, for Vicuna the empty ``input_ids`` beside ``inputs_embeds``)."""

    def __init__(self, adapter: LLMAdapter, timeout=None):
        super().__init__(adapter.tokenizer, skip_prompt=True, timeout=timeout, skip_special_tokens=True)
        self._clean = adapter.clean_ids

    def put(self, value: torch.Tensor) -> None:
        super().put(self._clean(value.clone()))


class DecoderOnlyAdapter(LLMAdapter):
    """Vicuna / LLaMA: visual tokens are a prefix of the decoder input."""

    model_attr = "llm_model"
    proj_attr = "llm_proj"
    autocast_dtype = torch.float16
    #: LAVIS main (``Blip2VicunaInstruct._predict_class``) and the official code rank under bf16 autocast.
    rank_autocast_dtype = torch.bfloat16

    def __init__(self, lm, tokenizer, max_txt_len, max_output_txt_len):
        super().__init__(lm, max_txt_len, max_output_txt_len)
        self.tokenizer = tokenizer  # read only (counts, streaming); calls use the configured copies below
        # generation and ranking prompts (generation's cut from the left at max_txt_len, as training cuts them)
        self._prompt_tok = configured(tokenizer, padding_side="left", truncation_side="left")
        self._input_tok = configured(tokenizer, padding_side="right", truncation_side="left")  # loss/NLL inputs
        self._output_tok = configured(tokenizer, padding_side="right", truncation_side="right")  # their targets

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.get_input_embeddings()(ids)

    def context_length(self) -> Optional[int]:
        """LLaMA's ``max_position_embeddings``."""
        return getattr(self.lm.config, "max_position_embeddings", None)

    def prompt_limit(self) -> Optional[int]:
        """``max_txt_len``: a generation prompt keeps its last ``max_txt_len`` tokens, where training cuts the
        instruction (LAVIS's and the official ``forward``; their ``generate`` cuts nothing, which lets a long
        instruction run past the LLM's context). Ranking prompts are scored whole, as both codes' ``_predict_class``
        score them."""
        return self.max_txt_len

    def _join(self, texts: Sequence[str], continuations: Sequence[str], add_eos: bool):
        """LAVIS's ``concat_text_input_output``: per row ``[text][continuation (no bos)][pads]`` and labels."""
        tok = self._input_tok
        inp = tok(list(texts), return_tensors="pt", padding="longest", truncation=True, max_length=self.max_txt_len)
        suffix = tok.eos_token if add_eos else ""
        out = self._output_tok(
            [c + suffix for c in continuations],
            return_tensors="pt",
            padding="longest",
            truncation=True,
            max_length=self.max_output_txt_len,
        )
        ids, mask, labels = [], [], []
        for i in range(inp.input_ids.size(0)):
            n = int(inp.attention_mask[i].sum())
            row = torch.cat([inp.input_ids[i][:n], out.input_ids[i][1:], inp.input_ids[i][n:]])
            row_mask = torch.cat([inp.attention_mask[i][:n], out.attention_mask[i][1:], inp.attention_mask[i][n:]])
            row_labels = row.masked_fill(row == tok.pad_token_id, IGNORE_INDEX)
            row_labels[:n] = IGNORE_INDEX
            ids.append(row)
            mask.append(row_mask)
            labels.append(row_labels)
        return torch.stack(ids), torch.stack(mask), torch.stack(labels)

    def _lm_inputs(self, prefix, prefix_mask, texts, continuations, add_eos):
        ids, mask, labels = (t.to(self.device) for t in self._join(texts, continuations, add_eos))
        embeds = torch.cat([prefix, self.embed(ids)], dim=1)
        attention_mask = torch.cat([prefix_mask, mask], dim=1)
        labels = torch.cat([torch.full_like(prefix_mask, IGNORE_INDEX), labels], dim=1)
        return embeds, attention_mask, labels

    def loss(self, prefix, prefix_mask, instructions, targets) -> torch.Tensor:
        """Token-mean cross-entropy of the answers (``answer </s>``), as InstructBLIP trains."""
        embeds, attention_mask, labels = self._lm_inputs(prefix, prefix_mask, instructions, targets, add_eos=True)
        with self.autocast():
            out = self.lm(inputs_embeds=embeds, attention_mask=attention_mask, labels=labels, return_dict=True)
        return out.loss

    def continuation_nll(
        self, prefix, prefix_mask, prompts, continuations, reduction="mean", add_eos=False
    ) -> torch.Tensor:
        """Per-sample NLL of ``continuations`` (``add_eos``: followed by ``</s>``) after ``[visual][</s> prompt]``;
        (B,)."""
        embeds, attention_mask, labels = self._lm_inputs(prefix, prefix_mask, prompts, continuations, add_eos)
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with self.autocast():
            mask = causal_mask(attention_mask, embeds.dtype)  # built once, not by HF's per-call mask code
            logits = self.lm(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids).logits
        return sequence_nll(logits[:, :-1], labels[:, 1:], reduction)

    def generate(
        self, prefix, prefix_mask, prompts, decoding: Decoding, streamer: Any = None, prompt_lookup: int = 0
    ) -> List[str]:
        """LAVIS's Vicuna ``generate``: left-padded prompts after the visual tokens; id 0 mapped to eos.

        ``decoding.max_new_tokens``/``min_new_tokens`` count generated tokens (LAVIS's ``max_length`` under
        transformers 4.33). Greedy calls (one beam, no sampling, no repetition penalty) run
        :func:`.decoding.greedy_decode`, which gives HF's greedy tokens without its per-step mask rebuilding, and
        honours ``prompt_lookup`` (draft tokens per step) for whole batches; everything else is HF ``generate``.
        ``prefix`` None: the LLM alone. ``streamer`` (:meth:`make_streamer`) is fed by either path.
        """
        gen_kwargs = decoding.hf_kwargs()
        tok = self._prompt_tok
        llm_tokens = tok(
            list(prompts), padding="longest", truncation=True, max_length=self.max_txt_len, return_tensors="pt"
        ).to(self.device)
        with self.autocast():
            embeds = self.embed(llm_tokens.input_ids)
            if prefix is not None:
                embeds = torch.cat([prefix, embeds], dim=1)
                attention_mask = torch.cat([prefix_mask, llm_tokens.attention_mask], dim=1)
            else:
                attention_mask = llm_tokens.attention_mask
            if _is_greedy(decoding):
                eos = self.lm.generation_config.eos_token_id
                text_ids = [ids[m.bool()].tolist() for ids, m in zip(llm_tokens.input_ids, llm_tokens.attention_mask)]
                rows = greedy_decode(
                    self.lm, embeds, attention_mask, decoding.max_new_tokens, eos if isinstance(eos, list)
                    else [eos], decoding.min_new_tokens, prompt_ids=text_ids, lookup=prompt_lookup or 0,
                    streamer=streamer,
                )
                outputs = _pad_rows(rows, tok.pad_token_id)
            else:
                if streamer is not None:
                    gen_kwargs["streamer"] = streamer
                outputs = self.lm.generate(inputs_embeds=embeds, attention_mask=attention_mask, **gen_kwargs)
        return [t.strip() for t in tok.batch_decode(self.clean_ids(outputs), skip_special_tokens=True)]

    def clean_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """LAVIS maps id 0 (``<unk>``, which this tokenizer no longer treats as special) to eos before decoding."""
        ids[ids == 0] = 2
        return ids

    def rank(self, prefix, prefix_mask, prompts, candidates, reduction="mean", chunk_size=128, return_greedy=False):
        """Candidate NLLs with one prefill of ``[visual][</s> prompt]`` per sample, shared through the KV cache.

        Each sample's candidates are packed side by side into one row after its cached prefix; a 4-D attention
        mask lets every candidate token see the prefix and the earlier tokens of its own candidate only, and
        position ids restart at the prefix length for each candidate. So no prefix is recomputed or copied per
        candidate. ``chunk_size`` bounds the candidates packed per sample and pass (the cache is cropped back to
        the prefix between passes).

        Returns:
            Per sample, the NLL of each candidate; with ``return_greedy``, also per candidate whether every one
            of its tokens is the argmax after the tokens before it (greedy decoding would produce it).
        """
        tok = self._prompt_tok
        p = tok(list(prompts), padding="longest", return_tensors="pt").to(self.device)
        attention_mask = torch.cat([prefix_mask, p.attention_mask], dim=1)  # (B, T), T = P + Lp
        position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
        with self.autocast(self.rank_autocast_dtype):
            embeds = torch.cat([prefix, self.embed(p.input_ids)], dim=1)
            out = self.lm(
                inputs_embeds=embeds,
                attention_mask=causal_mask(attention_mask, embeds.dtype),
                position_ids=position_ids,
                use_cache=True,
                return_dict=True,
            )
        first_logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, V): each candidate's first token
        first_best = first_logp.argmax(-1).tolist()  # (B,)
        cache, prefix_width = out.past_key_values, attention_mask.size(1)
        cand_ids = [[tok(c).input_ids[1:] for c in cands] for cands in candidates]  # LAVIS drops the bos
        scores: List[List[float]] = [[] for _ in candidates]
        greedy: List[List[bool]] = [[] for _ in candidates]
        longest = max(len(c) for c in candidates)
        for start in range(0, longest, chunk_size):
            chunk = [ids[start : start + chunk_size] for ids in cand_ids]
            packed = _pack(chunk, attention_mask, tok.pad_token_id, self.llm_dtype)
            with self.autocast(self.rank_autocast_dtype):
                logits = self.lm(
                    input_ids=packed["ids"],
                    attention_mask=packed["mask"],
                    position_ids=packed["positions"],
                    past_key_values=cache,
                    use_cache=True,
                    return_dict=True,
                ).logits  # (B, M, V)
            _crop(cache, prefix_width)
            logp = torch.log_softmax(logits.float(), dim=-1)
            best = logp.argmax(-1)  # (B, M): the greedy next token at every packed position
            for i, spans in enumerate(packed["spans"]):
                for (a, b), ids in zip(spans, chunk[i]):
                    target = torch.tensor(ids, device=logp.device)
                    nll = torch.cat([-first_logp[i, target[:1]], -logp[i, torch.arange(a, b - 1), target[1:]]])
                    scores[i].append((nll.sum() if reduction == "sum" else nll.mean()).item())
                    greedy[i].append(first_best[i] == ids[0] and bool((best[i, a : b - 1] == target[1:]).all()))
        return (scores, greedy) if return_greedy else scores

    @property
    def llm_dtype(self) -> torch.dtype:
        return self.lm.get_input_embeddings().weight.dtype


def _is_greedy(decoding: Decoding) -> bool:
    """Whether HF ``generate`` would run plain greedy search for these settings (``greedy_decode`` then applies)."""
    return (
        decoding.num_beams == 1
        and not decoding.do_sample
        and decoding.repetition_penalty == 1.0
        and decoding.num_return_sequences == 1
    )


def _pad_rows(rows: List[List[int]], pad_id: int) -> torch.Tensor:
    width = max(1, max(len(r) for r in rows))
    out = torch.full((len(rows), width), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def _pack(chunk: List[List[List[int]]], prefix_mask: torch.Tensor, pad_id: int, dtype: torch.dtype) -> Dict[str, Any]:
    """One row per sample holding its candidates back to back, with a block-causal mask over [prefix | row].

    Returns ids (B, M), positions (B, M), an additive float mask (B, 1, M, T + M) and per sample the
    ``(start, end)`` span of each candidate in the row.
    """
    device = prefix_mask.device
    b, t = prefix_mask.shape
    width = max(1, max(sum(len(c) for c in cands) for cands in chunk))
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    positions = torch.ones((b, width), dtype=torch.long)
    allowed = torch.zeros((b, width, t + width), dtype=torch.bool)
    allowed[:, torch.arange(width), t + torch.arange(width)] = True  # padding rows see themselves: no empty softmax
    prefix_len = prefix_mask.sum(-1).tolist()
    spans = []
    for i, cands in enumerate(chunk):
        row_spans, k = [], 0
        for c in cands:
            n = len(c)
            ids[i, k : k + n] = torch.tensor(c, dtype=torch.long)
            positions[i, k : k + n] = prefix_len[i] + torch.arange(n)
            allowed[i, k : k + n, :t] = prefix_mask[i].bool().cpu()
            allowed[i, k : k + n, t + k : t + k + n] = torch.ones(n, n, dtype=torch.bool).tril()
            row_spans.append((k, k + n))
            k += n
        spans.append(row_spans)
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    return {"ids": ids.to(device), "positions": positions.to(device), "mask": mask[:, None].to(device), "spans": spans}


def _crop(cache: Any, length: int) -> None:
    """Drop what a candidate pass appended to a HF cache object (legacy tuples are never extended in place)."""
    if hasattr(cache, "crop"):
        cache.crop(length)


class EncoderDecoderAdapter(LLMAdapter):
    """FlanT5: visual tokens and instruction in the encoder, the answer in the decoder."""

    model_attr = "t5_model"
    proj_attr = "t5_proj"
    autocast_dtype = torch.bfloat16

    def __init__(self, lm, tokenizers, max_txt_len, max_output_txt_len):
        super().__init__(lm, max_txt_len, max_output_txt_len)
        tokenizer, output_tokenizer = tokenizers
        self.tokenizer = configured(tokenizer, truncation_side="left")  # encoder inputs keep their end
        self.output_tokenizer = configured(output_tokenizer, truncation_side="right")  # decoder targets

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        return self.lm.encoder.embed_tokens(ids)

    def generation_room(self, prompts: Sequence[str], visual_tokens: int) -> Optional[int]:
        """The prompt is the encoder's: the decoder's room is T5's ``n_positions`` (512 for FlanT5), whatever the
        prompt (relative positions set no hard limit; this keeps a generated instruction within what T5 was
        trained to produce)."""
        return getattr(self.lm.config, "n_positions", None)

    def _encoder_inputs(self, prefix, prefix_mask, texts, truncate=True):
        kwargs = dict(truncation=True, max_length=self.max_txt_len) if truncate else {}
        inp = self.tokenizer(list(texts), padding="longest", return_tensors="pt", **kwargs).to(self.device)
        embeds = self.embed(inp.input_ids)
        if prefix is None:
            return embeds, inp.attention_mask
        return torch.cat([prefix, embeds], dim=1), torch.cat([prefix_mask, inp.attention_mask], dim=1)

    def _targets(self, texts, add_eos=True):
        out = self.output_tokenizer(
            list(texts),
            padding="longest",
            truncation=True,
            max_length=self.max_output_txt_len,
            add_special_tokens=add_eos,
            return_tensors="pt",
        ).to(self.device)
        return out.input_ids.masked_fill(out.input_ids == self.tokenizer.pad_token_id, IGNORE_INDEX), out.attention_mask

    def loss(self, prefix, prefix_mask, instructions, targets) -> torch.Tensor:
        """Token-mean cross-entropy of the decoder targets, as LAVIS's ``Blip2T5Instruct.forward``."""
        with self.autocast():
            embeds, mask = self._encoder_inputs(prefix, prefix_mask, instructions)
            labels, dec_mask = self._targets(targets)
            out = self.lm(
                inputs_embeds=embeds,
                attention_mask=mask,
                decoder_attention_mask=dec_mask,
                labels=labels,
                return_dict=True,
            )
        return out.loss

    def continuation_nll(
        self, prefix, prefix_mask, prompts, continuations, reduction="mean", add_eos=False
    ) -> torch.Tensor:
        """Per-sample NLL of ``continuations`` (``add_eos``: followed by ``</s>``) in the decoder, given
        ``[visual][prompt]``; (B,)."""
        with self.autocast():
            embeds, mask = self._encoder_inputs(prefix, prefix_mask, prompts)
            labels, dec_mask = self._targets(continuations, add_eos=add_eos)
            logits = self.lm(
                inputs_embeds=embeds, attention_mask=mask, labels=labels, decoder_attention_mask=dec_mask
            ).logits
        return sequence_nll(logits, labels, reduction)

    def generate(
        self, prefix, prefix_mask, prompts, decoding: Decoding, streamer: Any = None, prompt_lookup: int = 0
    ) -> List[str]:
        """LAVIS's T5 ``generate`` (``decoding`` counts new tokens, as there).

        ``prompt_lookup`` is ignored: HF's prompt-lookup decoding takes one sequence at a time, and the decoder-only
        loop of :mod:`.decoding` has no encoder-decoder counterpart here.
        """
        gen_kwargs = decoding.hf_kwargs()
        gen_kwargs["min_length"] = gen_kwargs.pop("min_new_tokens")  # LAVIS passes min_length to T5 as it is
        if streamer is not None:
            gen_kwargs["streamer"] = streamer
        with self.autocast():
            embeds, mask = self._encoder_inputs(prefix, prefix_mask, prompts, truncate=False)
            outputs = self.lm.generate(inputs_embeds=embeds, attention_mask=mask, **gen_kwargs)
        return self.tokenizer.batch_decode(outputs, skip_special_tokens=True)

    def rank(self, prefix, prefix_mask, prompts, candidates, reduction="mean", chunk_size=128, return_greedy=False):
        """Candidate NLLs (candidates end with eos, as LAVIS) decoding against one encoder pass per sample.

        The prompt is not truncated (LAVIS's T5 ``_predict_class`` tokenizes it whole: long ScienceQA hints and
        Visual Dialog histories stay in); only the Q-Former text, in ``visual_prefix``, is cut to ``max_txt_len``.
        With ``return_greedy``, also per candidate whether greedy decoding would produce it (eos included).
        """
        with self.autocast():
            embeds, mask = self._encoder_inputs(prefix, prefix_mask, prompts, truncate=False)
            encoded = self.lm.encoder(inputs_embeds=embeds, attention_mask=mask, return_dict=True).last_hidden_state
        eos = self.output_tokenizer.eos_token_id
        rows, cand_ids = _flatten_candidates(
            candidates, lambda c: self.output_tokenizer(c, add_special_tokens=False).input_ids + [eos]
        )
        scores = torch.empty(len(rows))
        greedy = torch.empty(len(rows), dtype=torch.bool)
        for start in range(0, len(rows), chunk_size):
            sel = torch.tensor(rows[start : start + chunk_size], device=self.device)
            ids, dec_mask = _pad(cand_ids[start : start + chunk_size], self.tokenizer.pad_token_id, self.device)
            labels = ids.masked_fill(dec_mask == 0, IGNORE_INDEX)
            with self.autocast():
                logits = self.lm(
                    encoder_outputs=BaseModelOutput(last_hidden_state=encoded.index_select(0, sel)),
                    attention_mask=mask.index_select(0, sel),
                    labels=labels,
                    decoder_attention_mask=dec_mask,
                    return_dict=True,
                ).logits
            scores[start : start + len(sel)] = _reduce(token_nll(logits, labels), labels, reduction).cpu()
            hits = (logits.argmax(-1) == labels) | (labels == IGNORE_INDEX)  # (N, T)
            greedy[start : start + len(sel)] = hits.all(-1).cpu()
        if return_greedy:
            return _unflatten(scores, candidates), _unflatten(greedy, candidates)
        return _unflatten(scores, candidates)


def _flatten_candidates(candidates, encode) -> Tuple[List[int], List[List[int]]]:
    rows, ids = [], []
    for i, cands in enumerate(candidates):
        for c in cands:
            rows.append(i)
            ids.append(encode(c))
    return rows, ids


def _unflatten(scores: torch.Tensor, candidates) -> List[List[float]]:
    out, k = [], 0
    for cands in candidates:
        out.append(scores[k : k + len(cands)].tolist())
        k += len(cands)
    return out


def _pad(seqs: List[List[int]], pad_id: int, device) -> Tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids.to(device), mask.to(device)


def _reduce(nll: torch.Tensor, labels: torch.Tensor, reduction: str) -> torch.Tensor:
    total = nll.sum(-1)
    if reduction == "sum":
        return total
    return total / (labels != IGNORE_INDEX).sum(-1).clamp(min=1)
