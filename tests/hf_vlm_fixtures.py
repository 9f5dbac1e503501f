"""Tiny random HF image-text-to-text models saved to folders, offline (tests/test_hf_vlm.py).

Each builder writes a model and its processor to a folder in the layout of the hub's checkpoints, so that
``AutoModelForImageTextToText.from_pretrained(folder)`` and ``AutoProcessor.from_pretrained(folder)`` load them:

* ``llava``: LLaVA-1.5 (``LlavaForConditionalGeneration``: CLIP vision tower, LLaMA), the tokenizer from the bundled
  tiny LLaMA sentencepiece model, the chat template of ``llava-hf/llava-1.5-*`` (processor and tokenizer);
* ``llava_next``: LLaVA-NeXT (any-resolution tiles) with the same tokenizer;
* ``qwen2_vl``: Qwen2-VL, with a byte-level BPE tokenizer trained on the bundled tiny BERT vocabulary (Qwen2's
  tokenizer class, its special tokens and the chat template of ``Qwen/Qwen2-VL-*-Instruct``);
* ``instructblip``: InstructBLIP with a LLaMA (Vicuna) LLM (``InstructBlipForConditionalGeneration``), the bundled
  tiny LLaMA tokenizer configured as LAVIS configures Vicuna's (``</s>`` as bos, eos and unk, ``[PAD]``) and the
  bundled tiny BERT tokenizer for the Q-Former (``InstructBlipProcessor``, which adds its ``<image>`` token); no chat
  template, as ``Salesforce/instructblip-vicuna-*``;
* ``instructblip_t5``: the same with a FlanT5-style LLM and the bundled tiny T5 tokenizer.
"""
import json
from pathlib import Path

import torch
from transformers import (BlipImageProcessor, CLIPImageProcessor, CLIPVisionConfig, InstructBlipConfig,
                          InstructBlipForConditionalGeneration, InstructBlipProcessor, LlamaConfig,
                          LlamaTokenizerFast, LlavaConfig, LlavaForConditionalGeneration, LlavaNextConfig,
                          LlavaNextForConditionalGeneration, LlavaNextImageProcessor, LlavaNextProcessor,
                          LlavaProcessor, Qwen2TokenizerFast,
                          Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor,
                          Qwen2VLVideoProcessor, T5Config)

from lavis_vislinginstruct.models.tokenizers import qformer_tokenizer, t5_tokenizers, vicuna_tokenizer
from lavis_vislinginstruct.paths import package_path

TOKENIZERS = Path(package_path("assets/tokenizers"))
CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]

#: ``llava-hf/llava-1.5-7b-hf``'s processor template (chat_template.json), which also takes a message whose content
#: is a string (lmms-eval's ``llava_hf`` gives the tokenizer "<image>\n" + the question): processor and tokenizer
#: share one template file.
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}{% endif %}"
    "{% if message['content'] is string %}{{ message['content'] + ' ' }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}"
    "{% endfor %}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)
#: ``Qwen/Qwen2-VL-7B-Instruct``'s chat template.
QWEN2_VL_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: "
    "{% endif %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
QWEN_SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
TINY_LLM = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=1024)
FAMILIES = ("llava", "llava_next", "qwen2_vl", "instructblip", "instructblip_t5")


def llama_tokenizer() -> LlamaTokenizerFast:
    """The bundled tiny LLaMA tokenizer (fast) with LLaVA's added tokens: ``<image>`` and a pad token."""
    tok = LlamaTokenizerFast(vocab_file=str(TOKENIZERS / "tiny_llama/tokenizer.model"), legacy=False,
                             add_bos_token=True, add_eos_token=False, from_slow=True)
    tok.add_special_tokens({"pad_token": "<pad>", "additional_special_tokens": ["<image>"]})
    tok.chat_template = LLAVA_TEMPLATE
    return tok


def qwen_tokenizer(folder: Path) -> Qwen2TokenizerFast:
    """A byte-level BPE (Qwen2's kind) trained on the words of the bundled tiny BERT vocabulary, with Qwen2-VL's
    special tokens; written as vocab.json + merges.txt and loaded by Qwen2's own tokenizer class."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    words = [w.replace("##", "") for w in (TOKENIZERS / "tiny_bert/vocab.txt").read_text().split() if "[" not in w]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    bpe.train_from_iterator([" ".join(words)] * 4 + words, trainer)
    folder.mkdir(parents=True, exist_ok=True)
    bpe.model.save(str(folder))  # vocab.json, merges.txt
    tok = Qwen2TokenizerFast(vocab_file=str(folder / "vocab.json"), merges_file=str(folder / "merges.txt"),
                             eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token=None, bos_token=None)
    tok.add_special_tokens({"additional_special_tokens": QWEN_SPECIAL[1:]})
    tok.add_special_tokens({"pad_token": "<|endoftext|>"})
    tok.chat_template = QWEN2_VL_TEMPLATE
    return tok


def _vision(image_size: int, patch: int) -> dict:
    return dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=image_size,
                patch_size=patch, projection_dim=32)


def build(family: str, folder: Path, seed: int = 0) -> Path:
    """A tiny random model of ``family`` (:data:`FAMILIES`) and its processor, saved to ``folder``."""
    folder = Path(folder)
    torch.manual_seed(seed)
    if family in ("llava", "llava_next"):
        tok = llama_tokenizer()
        image_token = tok.convert_tokens_to_ids("<image>")
        text = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                           pad_token_id=tok.pad_token_id, **TINY_LLM)
        if family == "llava":
            images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                        image_mean=CLIP_MEAN, image_std=CLIP_STD)
            cfg = LlavaConfig(vision_config=CLIPVisionConfig(**_vision(32, 8)), text_config=text,
                              image_token_index=image_token, vision_feature_layer=-2,
                              vision_feature_select_strategy="default", projector_hidden_act="gelu")
            model = LlavaForConditionalGeneration(cfg)
            processor = LlavaProcessor(images, tok, patch_size=8, vision_feature_select_strategy="default",
                                       num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE)
        else:
            pinpoints = [[32, 64], [64, 32], [64, 64]]
            images = LlavaNextImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                             image_grid_pinpoints=pinpoints, image_mean=CLIP_MEAN, image_std=CLIP_STD)
            cfg = LlavaNextConfig(vision_config=CLIPVisionConfig(**_vision(32, 8)), text_config=text,
                                  image_token_index=image_token, image_grid_pinpoints=pinpoints,
                                  vision_feature_layer=-2, vision_feature_select_strategy="default")
            model = LlavaNextForConditionalGeneration(cfg)
            processor = LlavaNextProcessor(images, tok, patch_size=8, vision_feature_select_strategy="default",
                                           num_additional_image_tokens=1, chat_template=LLAVA_TEMPLATE)
    elif family == "qwen2_vl":
        tok = qwen_tokenizer(folder / "bpe")
        ids = {t: tok.convert_tokens_to_ids(t) for t in QWEN_SPECIAL}
        # 56 x 56 images (lmms-eval's qwen2_vl resizes to multiples of 28 with at least 56 x 56 pixels): 4 x 4
        # patches of 14, merged 2 x 2 into 4 visual tokens
        images = Qwen2VLImageProcessor(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                       temporal_patch_size=2)
        cfg = Qwen2VLConfig(
            vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=1024, rope_scaling={"type": "mrope",
                                                                               "mrope_section": [2, 2, 2]},
            vision_config=dict(depth=1, embed_dim=32, hidden_size=48, num_heads=4, mlp_ratio=2, patch_size=14,
                               spatial_merge_size=2, temporal_patch_size=2, in_channels=3),
            bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
            image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
            vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
        )
        model = Qwen2VLForConditionalGeneration(cfg)
        videos = Qwen2VLVideoProcessor(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14, merge_size=2,
                                       temporal_patch_size=2)
        processor = Qwen2VLProcessor(images, tok, videos, chat_template=QWEN2_VL_TEMPLATE)
    elif family in ("instructblip", "instructblip_t5"):
        qtok = qformer_tokenizer("tiny_bert")
        tok = vicuna_tokenizer("tiny_llama") if family == "instructblip" else t5_tokenizers("tiny_t5")[0]
        images = BlipImageProcessor(size={"height": 32, "width": 32}, image_mean=CLIP_MEAN, image_std=CLIP_STD)
        processor = InstructBlipProcessor(images, tok, qtok, num_query_tokens=8)  # adds <image> to tok
        if family == "instructblip":
            text = LlamaConfig(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                               pad_token_id=tok.pad_token_id, **TINY_LLM)
        else:  # FlanT5's layout (gated GELU, untied embeddings), with LAVIS's exact GELU
            text = T5Config(vocab_size=len(tok), d_model=48, d_ff=96, d_kv=12, num_layers=2, num_decoder_layers=2,
                            num_heads=4, feed_forward_proj="gated-gelu", dense_act_fn="gelu", tie_word_embeddings=False,
                            decoder_start_token_id=tok.pad_token_id, pad_token_id=tok.pad_token_id,
                            eos_token_id=tok.eos_token_id)
        cfg = InstructBlipConfig(
            vision_config=_vision(32, 8), text_config=text.to_dict(), num_query_tokens=8,
            qformer_config=dict(vocab_size=len(qtok), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=256, encoder_hidden_size=32),
            image_token_index=tok.convert_tokens_to_ids("<image>"),
        )
        model = InstructBlipForConditionalGeneration(cfg)
        with torch.no_grad():  # HF's initialization (std 0.02, zero queries) leaves image and text almost unread
            model.vision_model.embeddings.patch_embedding.weight.normal_(0, 0.5)
            model.query_tokens.normal_(0, 1)
            for name, weight in model.qformer.named_parameters():
                if "attention" in name and name.endswith("weight") and weight.dim() == 2:
                    weight.normal_(0, 0.3)
    else:
        raise ValueError(f"unknown family {family!r}; families: {', '.join(FAMILIES)}")
    model.eval().save_pretrained(folder)
    processor.save_pretrained(folder)
    (folder / "family.json").write_text(json.dumps({"family": family}))
    return folder
