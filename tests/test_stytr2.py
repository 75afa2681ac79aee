"""StyTr²: shapes, CAPE, K-style blending, training, and conversion of the published release."""
from __future__ import annotations

import pytest
import torch

from stylemix.models.convert import ConversionError, stytr2_to_state
from stylemix.models.decoder import DecoderConfig, decoder_plan
from stylemix.models.registry import create_model, list_models
from stylemix.models.stytr2 import CAPE, Attention, StyTr2Config, StyTr2Model
from stylemix.models.vgg import conv_shapes, layer_names


def tiny_config(**kw) -> StyTr2Config:
    base = dict(width=32, heads=4, encoder_depth=1, decoder_depth=2, mlp_ratio=2.0, cape_grid=6,
                decoder=DecoderConfig(arch="vgg19", from_tap="relu4_1", width=0.125))
    return StyTr2Config(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny() -> StyTr2Model:
    torch.manual_seed(0)
    return StyTr2Model(tiny_config()).eval()


def test_registered():
    assert "stytr2" in list_models()
    assert isinstance(create_model("stytr2", tiny_config()), StyTr2Model)


@pytest.mark.parametrize("size", [(32, 32), (40, 64), (36, 52), (64, 24)])
def test_output_has_the_content_size(tiny, size):
    content, style = torch.rand(2, 3, *size), torch.rand(1, 3, 48, 40)
    with torch.no_grad():
        codes = tiny.style_code(style)
        out = tiny(content, codes)
    assert codes[0].tokens.shape == (6 * 5, 32)  # one token per 8x8 patch of the style
    assert out.shape == content.shape and torch.isfinite(out).all()
    assert float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("grid", [(3, 5), (6, 6), (10, 7), (25, 31)])
def test_cape_follows_the_token_grid(grid):
    torch.manual_seed(0)
    cape = CAPE(16, grid=6)
    pos = cape(torch.randn(2, 16, *grid))
    assert pos.shape == (2, 16, *grid) and torch.isfinite(pos).all()


def test_cape_is_content_aware_and_in_the_content_tokens(tiny):
    grid = tiny.embed_grid(torch.rand(1, 3, 40, 56))
    assert grid.shape == (1, 32, 5, 7)
    with torch.no_grad():
        tokens, pos = tiny.content_memory(grid)
        other = tiny.cape(tiny.embed_grid(torch.rand(1, 3, 40, 56)))
    assert tokens.shape == pos.shape == (1, 35, 32)
    assert not torch.allclose(pos, other.flatten(2).transpose(1, 2))  # positions depend on the content


def test_weights_one_zero_reproduce_the_single_style():
    torch.manual_seed(1)
    model = StyTr2Model(tiny_config()).eval()
    content = torch.rand(1, 3, 32, 48)
    with torch.no_grad():
        a, b = model.style_code(torch.rand(2, 3, 40, 32))
        single = model(content, [a])
        assert torch.equal(model(content, [a, b], [1, 0]), single)
        assert torch.equal(model(content, [b, a], [0.0, 3.0]), single)
        tokens, pos = model.content_memory(model.embed_grid(content))
        one = model.transfer(tokens, pos, [a.tokens[None]])
        both = model.transfer(tokens, pos, [a.tokens[None], b.tokens[None]], torch.full((2, 1, 1), 0.5))
    assert (both - one).abs().max() > 1e-2  # the second style does change the stylised tokens


def test_attention_with_a_zero_weight_ignores_that_style():
    torch.manual_seed(0)
    attn = Attention(16, 4, 0.0).eval()
    q, k1, k2 = torch.randn(2, 7, 16), torch.randn(2, 9, 16), torch.randn(1, 5, 16)
    single = attn(q, [k1], [k1])
    blended = attn(q, [k1, k2], [k1, k2], torch.tensor([1.0, 0.0])[:, None, None])
    torch.testing.assert_close(blended, single, rtol=0, atol=1e-5)


def _union_softmax(attn: Attention, q, styles, bias_fn) -> torch.Tensor:
    """Reference: one softmax over the union of every style's keys, bias per style from bias_fn(k, logits_k)."""
    heads = lambda x: x.unflatten(-1, (attn.heads, -1)).transpose(1, 2)  # noqa: E731  (b, nh, n, e)
    qh = heads(attn.q(q))
    logits, values = [], []
    for i, s in enumerate(styles):
        lk = qh @ heads(attn.k(s)).transpose(-1, -2) / qh.shape[-1] ** 0.5  # (b, nh, n, m_k)
        logits.append(lk + bias_fn(i, lk))
        values.append(heads(attn.v(s)))
    p = torch.cat(logits, -1).softmax(-1)
    out = p @ torch.cat(values, 2)
    return attn.out(out.transpose(1, 2).flatten(2)), p


def test_normalised_blend_gives_each_style_exactly_its_weight():
    torch.manual_seed(0)
    attn = Attention(16, 4, 0.0).eval()
    q, s1, s2 = torch.randn(1, 6, 16), torch.randn(1, 10, 16), 3 * torch.randn(1, 4, 16)
    w = torch.tensor([0.3, 0.7])
    ours = attn(q, [s1, s2], [s1, s2], w[:, None, None])
    ref, p = _union_softmax(attn, q, [s1, s2], lambda i, lk: w[i].log() - lk.logsumexp(-1, keepdim=True))
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-5)
    torch.testing.assert_close(p[..., :10].sum(-1), torch.full((1, 4, 6), 0.3), rtol=0, atol=1e-6)


def test_normalised_blend_does_not_depend_on_a_styles_token_count():
    # Style B repeated twice has the same attention on its own, but twice the partition function:
    # a plain log-weight bias on the union (the reference below) hands it more of the mass; the blend does not.
    torch.manual_seed(0)
    q, a, b = torch.randn(1, 6, 16), torch.randn(1, 8, 16), torch.randn(1, 8, 16)
    b2, w = torch.cat([b, b], 1), torch.tensor([0.5, 0.5])
    attn = Attention(16, 4, 0.0).eval()
    torch.testing.assert_close(attn(q, [a, b], [a, b], w[:, None, None]), attn(q, [a, b2], [a, b2], w[:, None, None]),
                               rtol=0, atol=1e-6)
    plain = [_union_softmax(attn, q, styles, lambda i, lk: w[i].log())[0] for styles in ([a, b], [a, b2])]
    assert (plain[0] - plain[1]).abs().max() > 1e-3


def test_alpha_zero_is_the_content_stylised_with_itself(tiny):
    content = torch.rand(1, 3, 32, 40)
    with torch.no_grad():
        codes = tiny.style_code(torch.rand(1, 3, 32, 32))
        grid = tiny.embed_grid(content)
        tokens, pos = tiny.content_memory(grid)
        rec = tiny.decode(tiny.transfer(tokens, pos, [tiny.style_memory(grid)]), (4, 5)).clamp(0, 1)
        torch.testing.assert_close(tiny(content, codes, alpha=0.0), rec, rtol=0, atol=1e-6)
        assert torch.equal(tiny(content, codes, alpha=1.0), tiny(content, codes))


def test_spatial_weights_of_one_style_everywhere_equal_that_style(tiny):
    content = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        codes = tiny.style_code(torch.rand(2, 3, 32, 32))
        mask = torch.zeros(2, 1, 1, 32, 32)
        mask[0] = 1.0
        torch.testing.assert_close(tiny(content, codes, mask), tiny(content, codes[:1]), rtol=0, atol=1e-5)
        mask[0, ..., 16:], mask[1, ..., 16:] = 0.0, 1.0  # left half style 0, right half style 1
        half = tiny(content, codes, mask)
    assert torch.isfinite(half).all() and half.shape == content.shape


def test_bad_weights_and_configs_are_refused(tiny):
    codes = tiny.style_code(torch.rand(2, 3, 32, 32))
    with pytest.raises(ValueError, match="2 weights for 1 styles"):
        tiny(torch.rand(1, 3, 32, 32), codes[:1], [0.5, 0.5])
    with pytest.raises(ValueError, match="alpha"):
        tiny(torch.rand(1, 3, 32, 32), codes, alpha=1.5)
    with pytest.raises(ValueError, match="divisible by heads"):
        StyTr2Model(tiny_config(width=30))


# --- losses and training ------------------------------------------------------------------------

def test_identity_loss_is_zero_for_a_perfect_reconstruction():
    from stylemix.training.losses import identity_loss

    x = torch.rand(2, 3, 8, 8)
    feats = {"a": torch.rand(2, 4, 4, 4), "b": torch.rand(2, 8, 2, 2)}
    pixel, feature = identity_loss(x, x, feats, feats)
    assert float(pixel) == 0 and float(feature) == 0
    pixel, feature = identity_loss(x + 0.5, x, {k: v + 1 for k, v in feats.items()}, feats)
    assert float(pixel) == pytest.approx(0.25) and float(feature) == pytest.approx(2.0)


class _OnePair:
    def __init__(self, content, style):
        self.pair = (content, style)

    def batch(self, step):
        return self.pair


@pytest.mark.slow
def test_a_few_training_steps_reduce_the_loss():
    from stylemix.training.data import DataConfig
    from stylemix.training.stytr2_task import StyTr2LossConfig, StyTr2Task

    torch.manual_seed(0)
    model = StyTr2Model(tiny_config(dropout=0.0, encoder=StyTr2Config().encoder))
    content, style = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    task = StyTr2Task(model, DataConfig(), StyTr2LossConfig(relative=True), channels_last=False,
                      batches=_OnePair(content, style))
    params = [p for p in model.parameters() if p.requires_grad]
    assert params and not any(p.requires_grad for p in model.encoder.parameters())
    opt = torch.optim.Adam(params, lr=1e-3)
    seen = []
    for step in range(8):
        loss, logs = task.loss(step)
        assert set(logs) == {"content", "style", "identity_pixel", "identity_feature", "batch"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen.append(float(loss.detach()))
    assert seen[-1] < 0.8 * seen[0], seen


def test_training_cli_prints_and_checks_its_config(capsys):
    import json

    from stylemix.training.cli import main

    args = ["--model", "stytr2", "--out", "unused", "--print-config"]
    assert main([*args, "--set", "model.width=64", "--set", "loss.relative=true"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["model"]["width"] == 64 and cfg["loss"]["relative"] is True
    assert main([*args, "--set", "model.nope=1"]) == 2
    assert "unknown field 'nope'" in capsys.readouterr().err


# --- conversion of the published release --------------------------------------------------------

def fake_release(d: int = 512, hidden: int = 2048, enc_depth: int = 1, dec_depth: int = 2, patch: int = 8):
    """State dicts with the release's key names and shapes (vgg_normalised, decoder, transformer, embedding)."""
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g) * 0.05  # noqa: E731
    vgg, idx = {"0.weight": r(3, 3, 1, 1), "0.bias": r(3)}, 1  # Sequential: 1x1 conv, then pad/conv/relu, pools
    shapes = {n: (i, o) for n, i, o in conv_shapes("vgg19")}
    for name in layer_names("vgg19"):
        if name.startswith("conv"):
            i, o = shapes[name]
            vgg[f"{idx + 1}.weight"], vgg[f"{idx + 1}.bias"] = torch.zeros(o, i, 3, 3), r(o)  # zeros: cheap
            idx += 2
        else:
            idx += 1
    decoder, idx = {}, 0  # pad, conv, relu ... upsample
    for kind, i, o in decoder_plan(DecoderConfig("vgg19", "relu4_1")):
        if kind == "conv":
            decoder[f"{idx + 1}.weight"], decoder[f"{idx + 1}.bias"] = r(o, i, 3, 3), r(o)
            idx += 3
        else:
            idx += 1

    def attn(p):
        return {f"{p}.in_proj_weight": r(3 * d, d), f"{p}.in_proj_bias": r(3 * d),
                f"{p}.out_proj.weight": r(d, d), f"{p}.out_proj.bias": r(d)}

    def block(p, norms):
        out = {f"{p}.linear1.weight": r(hidden, d), f"{p}.linear1.bias": r(hidden),
               f"{p}.linear2.weight": r(d, hidden), f"{p}.linear2.bias": r(d)}
        for n in range(1, norms + 1):
            out[f"{p}.norm{n}.weight"], out[f"{p}.norm{n}.bias"] = 1 + r(d), r(d)
        return out

    trans = {}
    for enc in ("encoder_c", "encoder_s"):
        for i in range(enc_depth):
            trans.update(attn(f"{enc}.layers.{i}.self_attn"), **block(f"{enc}.layers.{i}", 2))
    for i in range(dec_depth):
        trans.update(attn(f"decoder.layers.{i}.self_attn"), **attn(f"decoder.layers.{i}.multihead_attn"),
                     **block(f"decoder.layers.{i}", 3))
    trans.update({"decoder.norm.weight": 1 + r(d), "decoder.norm.bias": r(d),
                  "new_ps.weight": r(d, d, 1, 1), "new_ps.bias": r(d)})
    embedding = {"proj.weight": r(d, 3, patch, patch), "proj.bias": r(d)}
    return vgg, decoder, trans, embedding


@pytest.fixture(scope="module")
def release():
    return fake_release()


@pytest.fixture(scope="module")
def converted(release):
    encoder, state, config = stytr2_to_state(*release)
    model = StyTr2Model(config).eval()
    full = {**{f"encoder.{k}": v for k, v in model.encoder.filter_state(encoder).items()}, **state}
    model.load_state_dict(full, strict=True)  # every key of the model, nothing else
    return model, encoder, state, config


def test_conversion_reads_the_published_shapes(converted):
    _, _, _, config = converted
    assert (config.width, config.heads, config.encoder_depth, config.decoder_depth) == (512, 8, 1, 2)
    assert config.mlp_ratio == 4.0 and config.patch == 8 and config.encoder.name == "vgg19-adain"


def test_conversion_splits_packed_qkv_in_order(release, converted):
    trans, d = release[2], 512
    _, _, state, _ = converted
    packed = trans["decoder.layers.1.multihead_attn.in_proj_weight"]
    for i, name in enumerate("qkv"):
        assert torch.equal(state[f"transformer_decoder.layers.1.attn2.{name}.weight"], packed[i * d:(i + 1) * d])
    assert torch.equal(state["cape.proj.weight"], trans["new_ps.weight"])
    assert torch.equal(state["embed.proj.weight"], release[3]["proj.weight"])


def test_converted_attention_and_encoder_layer_match_torch_reference_modules(release, converted):
    # nn.MultiheadAttention / nn.TransformerEncoderLayer (post-norm, ReLU) use the release's key names,
    # so they load its tensors directly and serve as independent references for our mapping.
    model, trans = converted[0], release[2]
    torch.manual_seed(0)
    x, mem = torch.randn(1, 12, 512), torch.randn(1, 9, 512)
    mha = torch.nn.MultiheadAttention(512, 8, batch_first=True)
    p = "decoder.layers.0.self_attn."
    mha.load_state_dict({k[len(p):]: v for k, v in trans.items() if k.startswith(p)})
    with torch.no_grad():
        ref = mha(x, mem, mem, need_weights=False)[0]
        torch.testing.assert_close(model.transformer_decoder.layers[0].attn1(x, [mem], [mem]), ref, rtol=0, atol=1e-5)
        layer = torch.nn.TransformerEncoderLayer(512, 8, 2048, dropout=0.0, batch_first=True).eval()
        p = "encoder_s.layers.0."
        layer.load_state_dict({k[len(p):]: v for k, v in trans.items() if k.startswith(p)})
        torch.testing.assert_close(model.style_encoder.layers[0](x), layer(x), rtol=0, atol=1e-4)


def test_converted_model_runs_and_round_trips_through_a_weights_dir(converted, tmp_path):
    from stylemix.models.io import save_model_dir
    from stylemix.models.pretrained import load_model

    model, _, state, config = converted
    save_model_dir(model, "stytr2", config, tmp_path / "stytr2", "vgg19-adain", with_encoder=True)
    loaded, meta = load_model(str(tmp_path / "stytr2"))
    assert meta["model"] == "stytr2" and loaded.config == config
    own, back = model.state_dict(), loaded.state_dict()
    assert set(own) == set(back) and all(torch.equal(own[k], back[k]) for k in own)
    with torch.no_grad():
        content = torch.rand(1, 3, 24, 40)
        out = loaded(content, loaded.style_code(torch.rand(1, 3, 32, 32)))
    assert out.shape == content.shape and torch.isfinite(out).all()


def test_conversion_names_what_is_wrong():
    vgg, dec, trans, emb = fake_release(d=512, hidden=64, enc_depth=1, dec_depth=1)
    bad = dict(trans)
    bad["decoder.layers.0.norm3.bias"] = torch.zeros(7)
    with pytest.raises(ConversionError, match=r"decoder\.layers\.0\.norm3\.bias.*\(512,\).*\(7,\)"):
        stytr2_to_state(vgg, dec, bad, emb)
    with pytest.raises(ConversionError, match="unexpected keys.*extra"):
        stytr2_to_state(vgg, dec, {**trans, "extra": torch.zeros(1)}, emb)
    missing = {k: v for k, v in trans.items() if k != "new_ps.bias"}
    with pytest.raises(ConversionError, match="missing key new_ps.bias"):
        stytr2_to_state(vgg, dec, missing, emb)
    with pytest.raises(ConversionError, match="decoder's input 512"):
        stytr2_to_state(vgg, dec, trans, {"proj.weight": torch.zeros(64, 3, 8, 8), "proj.bias": torch.zeros(64)})
    module = {f"module.{k}": v for k, v in trans.items()}  # a DataParallel save converts the same
    assert stytr2_to_state(vgg, dec, module, emb)[1].keys() == stytr2_to_state(vgg, dec, trans, emb)[1].keys()


# --- the product path: CLI conversion, then the Stylizer -----------------------------------------

@pytest.mark.slow
def test_cli_converts_the_release_and_the_stylizer_blends_with_it(tmp_path):
    from stylemix.inference import Stylizer
    from stylemix.inference.cli import main

    files = dict(zip(("vgg", "decoder", "transformer", "embedding"), fake_release(hidden=64, enc_depth=1, dec_depth=1)))
    args = ["weights", "convert", "stytr2", "-o", str(tmp_path / "stytr2")]
    for name, state in files.items():
        torch.save(state, tmp_path / f"{name}.pth")
        args += [f"--{name}", str(tmp_path / f"{name}.pth")]
    assert main(args) == 0
    stylizer = Stylizer.from_pretrained(tmp_path / "stytr2")
    torch.manual_seed(0)
    content, a, b = torch.rand(3, 36, 52), torch.rand(3, 32, 32), torch.rand(3, 40, 24)
    single = stylizer.stylize(content, [a], return_tensor=True)
    assert single.shape == (1, 3, 36, 52) and torch.isfinite(single).all()
    assert torch.equal(stylizer.stylize(content, [a, b], weights=[1, 0], return_tensor=True), single)
    code = stylizer.encode_style(a)
    assert torch.equal(stylizer.stylize(content, [code], return_tensor=True), single)  # cached style tokens


def test_a_missing_stytr2_model_says_how_to_get_one(monkeypatch, tmp_path):
    from stylemix.inference import Stylizer
    from stylemix.models import pretrained
    from stylemix.models.io import WeightsError

    monkeypatch.setattr(pretrained, "shipped_weights", lambda: tmp_path / "weights")  # as if nothing were shipped
    with pytest.raises(WeightsError, match="weights convert stytr2"):
        Stylizer.from_pretrained("stytr2")


def test_statistics_codes_are_refused_with_a_clear_message(tiny):
    from stylemix.models.mixing import StyleCode

    code = StyleCode({"relu4_1": torch.zeros(512)}, {"relu4_1": torch.ones(512)})
    with pytest.raises(ValueError, match="style 1 is a StyleCode.*only suit AdaIN"):
        tiny(torch.rand(1, 3, 32, 32), [code])


def test_a_checkpoint_config_selects_its_training_recipe():
    from stylemix.models.io import WeightsError, to_dict
    from stylemix.training.cli import TrainConfig, recipe_of
    from stylemix.training.stytr2_task import StyTr2TrainConfig

    assert isinstance(recipe_of(to_dict(StyTr2TrainConfig()))[1], StyTr2TrainConfig)
    assert isinstance(recipe_of(to_dict(TrainConfig()))[1], TrainConfig)
    with pytest.raises(WeightsError, match="matches no training recipe"):
        recipe_of({"model": {"width": 8, "skips": []}})
