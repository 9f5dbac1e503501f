"""Weight loading: HF InstructBLIP remap, LAVIS-layout checkpoints, clear errors for wrong or missing files."""
import pytest
import torch
from transformers import (InstructBlipConfig, InstructBlipForConditionalGeneration, LlamaConfig, T5Config)

from conftest import build_tiny
from lavis_vislinginstruct.models.checkpoint import (CheckpointKeyError, load_state_dict_checked, load_weights,
                                                     read_state_dict, remap_hf_instructblip, trainable_state_dict)


def hf_model(ours):
    """HF InstructBLIP with the same tiny geometry as ``ours`` (random weights)."""
    v, q = ours.cfg.vision, ours.cfg.qformer
    llm = ours.llm.config
    if ours.cfg.llm.family == "decoder_only":
        text = LlamaConfig(**{k: getattr(llm, k) for k in ("hidden_size", "intermediate_size", "num_hidden_layers",
                                                             "num_attention_heads", "vocab_size")}).to_dict()
    else:
        text = T5Config(**{k: getattr(llm, k) for k in ("d_model", "d_ff", "d_kv", "num_layers", "num_decoder_layers",
                                                         "num_heads", "vocab_size", "feed_forward_proj",
                                                         "tie_word_embeddings", "decoder_start_token_id",
                                                         "pad_token_id", "eos_token_id", "dense_act_fn")}).to_dict()
    cfg = InstructBlipConfig(
        vision_config=dict(hidden_size=v.width, intermediate_size=int(v.width * v.mlp_ratio),
                           num_hidden_layers=v.depth, num_attention_heads=v.num_heads, image_size=v.image_size,
                           patch_size=v.patch_size),
        qformer_config=dict(vocab_size=q.vocab_size, hidden_size=q.hidden_size, num_hidden_layers=q.num_hidden_layers,
                            num_attention_heads=q.num_attention_heads, intermediate_size=q.intermediate_size,
                            max_position_embeddings=q.max_position_embeddings, encoder_hidden_size=v.width),
        text_config=text,
        num_query_tokens=q.num_query_token,
    )
    torch.manual_seed(3)
    return InstructBlipForConditionalGeneration(cfg).eval()


def test_hf_remap_loads_every_tensor_and_round_trips(arch):
    ours = build_tiny(arch, **{"cmaa.enabled": False}).eval()
    hf = hf_model(ours)
    hf_sd = hf.state_dict()
    remapped = remap_hf_instructblip(hf_sd, ours.cfg.llm.family)
    report = load_state_dict_checked(ours, remapped, "hf", [])
    assert report["unexpected"] == []
    assert set(report["missing"]) <= {"Qformer.bert.embeddings.position_ids"}
    mine = ours.state_dict()
    for key, value in hf_sd.items():  # every HF tensor is now in our model, under its LAVIS name
        if key.endswith("self_attn.qkv.bias"):
            base = remap_hf_instructblip({key: value}, ours.cfg.llm.family)
            q_key = next(k for k in base if k.endswith("q_bias"))
            rebuilt = torch.cat([mine[q_key], torch.zeros_like(mine[q_key]), mine[q_key.replace("q_bias", "v_bias")]])
            torch.testing.assert_close(rebuilt, value)
        else:
            new = remap_hf_instructblip({key: value}, ours.cfg.llm.family)
            (name, tensor), = new.items()
            assert torch.equal(mine[name], tensor)


def test_hf_and_ours_compute_the_same_vision_features():
    ours = build_tiny("vislinginstruct_vicuna", **{"cmaa.enabled": False}).eval()
    hf = hf_model(ours)
    ours.load_state_dict(remap_hf_instructblip(hf.state_dict(), "decoder_only"), strict=False)
    image = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours.visual_encoder(image), hf.vision_model(image).last_hidden_state,
                                   rtol=1e-4, atol=1e-4)


def test_remap_is_pure():
    sd = {"language_projection.weight": torch.ones(2, 2), "vision_model.encoder.layers.0.self_attn.qkv.bias":
          torch.arange(6.0)}
    out = remap_hf_instructblip(sd, "encoder_decoder")
    assert set(sd) == {"language_projection.weight", "vision_model.encoder.layers.0.self_attn.qkv.bias"}
    assert torch.equal(out["t5_proj.weight"], torch.ones(2, 2))
    assert out["visual_encoder.blocks.0.attn.q_bias"].tolist() == [0.0, 1.0]
    assert out["visual_encoder.blocks.0.attn.v_bias"].tolist() == [4.0, 5.0]


def trimmed_instructblip(model):
    """What LAVIS's RunnerBase saves for InstructBLIP: its trainable parameters (no ViT, no LLM)."""
    keep = ("query_tokens", "ln_vision.", "Qformer.bert.", model.adapter.proj_attr + ".")
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(keep)}


def test_trimmed_checkpoint_loads_through_config(arch, tmp_path):
    source = build_tiny(arch, **{"cmaa.enabled": False})
    path = tmp_path / "instruct_blip_trimmed.pth"
    torch.save({"model": trimmed_instructblip(source)}, path)
    loaded = build_tiny(arch, checkpoint=str(path))  # CMAA on: its absence from the file is expected
    for key, value in trimmed_instructblip(source).items():
        assert torch.equal(loaded.state_dict()[key], value)


def test_finetuned_checkpoint_holds_only_trainable_keys(tiny_model, tmp_path):
    sd = trainable_state_dict(tiny_model)
    proj = tiny_model.adapter.proj_attr
    assert set(sd) == {f"{proj}.weight", f"{proj}.bias"}
    torch.save({"model": sd}, tmp_path / "ft.pth")
    assert set(read_state_dict(str(tmp_path / "ft.pth"))) == set(sd)


def test_unexpected_keys_are_an_error(tiny_model, tmp_path):
    path = tmp_path / "bad.pth"
    torch.save({"model": {"Qformer.cls.predictions.bias": torch.zeros(3), "query_tokens": torch.zeros(1, 8, 64)}},
               path)
    with pytest.raises(CheckpointKeyError, match="unexpected keys.*Qformer.cls.predictions.bias"):
        load_weights(tiny_model, tiny_model.cfg.__class__(**{**tiny_model.cfg.__dict__, "checkpoint": str(path)}))


def test_shape_mismatch_is_an_error(tiny_model):
    with pytest.raises(ValueError, match="shape mismatch.*query_tokens"):
        load_state_dict_checked(tiny_model, {"query_tokens": torch.zeros(1, 4, 64)}, "x")


def test_missing_checkpoint_file(arch, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint not found: .*nope.pth"):
        build_tiny(arch, checkpoint=str(tmp_path / "nope.pth"))


def test_corrupt_checkpoint_file(arch, tmp_path):
    path = tmp_path / "corrupt.pth"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint .*corrupt.pth"):
        build_tiny(arch, checkpoint=str(path))
