"""Weight loading: HF InstructBLIP remap, LAVIS-layout checkpoints, clear errors for wrong or missing files."""
import pytest
import torch
from omegaconf import OmegaConf
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
    mine = ours.full_state_dict()
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
    return {k: v.clone() for k, v in model.full_state_dict().items() if k.startswith(keep)}


def test_trimmed_checkpoint_loads_through_config(arch, tmp_path):
    source = build_tiny(arch, **{"cmaa.enabled": False})
    path = tmp_path / "instruct_blip_trimmed.pth"
    torch.save({"model": trimmed_instructblip(source)}, path)
    loaded = build_tiny(arch, checkpoint=str(path))  # CMAA on: its absence from the file is expected
    for key, value in trimmed_instructblip(source).items():
        assert torch.equal(loaded.full_state_dict()[key], value)


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


# ------------------------------------------------------------------- what a checkpoint of the model holds


def test_state_dict_is_the_trainable_parameters_and_full_state_dict_everything(arch):
    model = build_tiny(arch)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(model.state_dict()) == trainable == set(trainable_state_dict(model))
    full = model.full_state_dict()
    assert set(full) == set(torch.nn.Module.state_dict(model)) and len(full) > 100
    if arch == "vislinginstruct_t5":  # tied copies of `shared`: in PyTorch's state dict, not in a checkpoint
        assert full["t5_model.encoder.embed_tokens.weight"].data_ptr() == full["t5_model.shared.weight"].data_ptr()
    # as a submodule (DDP's `module`, here a ModuleDict) the parent's state dict holds the same keys, prefixed
    parent = torch.nn.ModuleDict({"module": model, "other": torch.nn.Linear(2, 2)})
    assert set(parent.state_dict()) == {f"module.{k}" for k in trainable} | {"other.weight", "other.bias"}


def test_buffers_left_out_of_checkpoints_are_constants(arch):
    """A checkpoint drops buffers; that loses nothing only if no buffer holds state: they equal a fresh model's."""
    a = build_tiny(arch)
    torch.manual_seed(123)
    b = type(a).from_config(OmegaConf.load(type(a).default_config_path("tiny")).model)
    buffers = dict(a.named_buffers())
    persistent = {k for k in a.full_state_dict() if k in buffers}
    assert persistent  # the Q-Former's position_ids
    for key in persistent:
        assert torch.equal(buffers[key], dict(b.named_buffers())[key])


def test_load_state_dict_takes_a_trainable_only_or_a_full_state_dict(arch):
    source = build_tiny(arch)
    with torch.no_grad():
        source.proj.weight.mul_(3.0)
    target = build_tiny(arch)
    frozen_before = {k: v.clone() for k, v in target.full_state_dict().items() if k not in target.state_dict()}
    target.load_state_dict(source.state_dict())  # strict, trainable only
    torch.testing.assert_close(target.proj.weight, source.proj.weight)
    for key, value in frozen_before.items():
        assert torch.equal(target.full_state_dict()[key], value)
    other = build_tiny(arch)
    other.load_state_dict(source.full_state_dict())  # strict, everything
    for key, value in source.full_state_dict().items():
        assert torch.equal(other.full_state_dict()[key], value)


def test_strict_load_refuses_an_unexpected_key(arch):
    model = build_tiny(arch)
    state = {**model.state_dict(), "Qformer.cls.predictions.bias": torch.zeros(3)}
    with pytest.raises(CheckpointKeyError, match="unexpected keys.*Qformer.cls.predictions.bias"):
        model.load_state_dict(state)


def test_strict_load_refuses_a_missing_trainable_parameter(arch):
    model = build_tiny(arch)
    proj = model.adapter.proj_attr
    state = {k: v for k, v in model.state_dict().items() if k != f"{proj}.weight"}
    with pytest.raises(CheckpointKeyError, match=f"lacks trainable parameters of this model: {proj}.weight"):
        model.load_state_dict(state)
    result = model.load_state_dict(state, strict=False)  # PyTorch's non-strict load, unchanged
    assert f"{proj}.weight" in result.missing_keys and not result.unexpected_keys


def test_finetuned_file_without_the_trainable_weights_is_refused(arch, tmp_path):
    path = tmp_path / "empty.pth"
    torch.save({"model": {}}, path)
    with pytest.raises(CheckpointKeyError, match="empty.pth: lacks trainable parameters"):
        build_tiny(arch, finetuned=str(path))


# --------------------------------------------------------------------- where each weight came from


def build_demo(**overrides):
    from lavis.common.registry import registry

    cls = registry.get_model_class("vislinginstruct_vicuna")
    cfg = OmegaConf.load(cls.default_config_path("demo")).model
    for key, value in overrides.items():
        OmegaConf.update(cfg, key, value)
    torch.manual_seed(0)
    return cls.from_config(cfg)


def test_weight_sources_name_the_file_of_every_parameter(tmp_path):
    init = tmp_path / "init.pth"
    torch.save({"model": build_demo().full_state_dict()}, init)
    proj = tmp_path / "proj.pth"
    torch.save({"model": build_demo().state_dict()}, proj)
    model = build_demo(checkpoint=str(init), finetuned=str(proj))
    names = [n for n, _ in model.named_parameters()]
    assert set(model.weight_sources) == set(names) and model.unloaded_parameters() == []
    assert {model.weight_sources[n] for n in names if n.startswith("llm_proj.")} == {str(proj)}
    assert {model.weight_sources[n] for n in names if not n.startswith("llm_proj.")} == {str(init)}
    model.check_weights_loaded("evaluate")


def test_a_demo_model_without_weights_is_refused_and_tiny_is_not():
    model = build_demo()
    with pytest.raises(ValueError, match=r"cannot evaluate: .*visual_encoder \(\d+ of \d+ tensors\).*"
                                         r"Qformer .*model.checkpoint or model.hf_checkpoint.*llm_proj"):
        model.check_weights_loaded("evaluate")
    build_tiny("vislinginstruct_vicuna").check_weights_loaded("evaluate")  # random on purpose


def test_only_a_finetuned_projection_names_the_frozen_parts_as_missing(tmp_path):
    proj = tmp_path / "proj.pth"
    torch.save({"model": build_demo().state_dict()}, proj)
    model = build_demo(finetuned=str(proj))
    with pytest.raises(ValueError, match="cannot evaluate") as err:
        model.check_weights_loaded("evaluate")
    message = str(err.value)
    for group in ("visual_encoder", "ln_vision", "query_tokens", "Qformer", "llm_model"):
        assert group in message
    assert "llm_proj" not in message


def test_training_needs_only_the_frozen_weights_from_files():
    everything_trains = build_demo(freeze_qformer=False, freeze_llm=False, **{"vision.freeze": False})
    everything_trains.check_weights_loaded("train", frozen_only=True)  # the demo's stage A, from scratch
    with pytest.raises(ValueError, match="cannot train"):
        build_demo().check_weights_loaded("train", frozen_only=True)
