"""src.model and src.checkpoint: shapes, the original CNN state_dict, safe and strict loading, ViT coverage."""

from __future__ import annotations

import hashlib
import os
import shutil
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

from src.checkpoint import (
    CheckpointError,
    ModelInfo,
    load_model,
    read_checkpoint,
    recorded_checksums,
    save_checkpoint,
)
from src.features import ORIGINAL_MEAN, ORIGINAL_STD
from src.model import CNN, ViT, build_model
from tests.helpers import REPO, describe, run_module

SMALL_VIT = {"embed_dim": 64, "depth": 2, "num_heads": 4}


def randomised_cnn(seed: int) -> CNN:
    """A CNN whose weights and batch-norm buffers all differ from a fresh one's."""
    torch.manual_seed(seed)
    model = CNN()
    with torch.no_grad():
        for name, buffer in model.named_buffers():
            if name.endswith("running_mean"):
                buffer.normal_(0, 0.5)
            elif name.endswith("running_var"):
                buffer.uniform_(0.5, 2.0)
            elif name.endswith("num_batches_tracked"):
                buffer.fill_(1234)
    return model.eval()


def original_layout_state_dict(model: CNN) -> OrderedDict:
    """The original CNN_Ai-SPY.pth layout: the used layers plus unused conv6/bn6/conv7/bn7, in its key order."""
    ours = model.state_dict()
    unused = OrderedDict()
    for conv, bn, c_in, c_out in (("conv6", "bn6", 256, 512), ("conv7", "bn7", 512, 1024)):
        unused[f"{conv}.weight"] = torch.randn(c_out, c_in, 2, 2)
        unused[f"{conv}.bias"] = torch.randn(c_out)
        for suffix in ("weight", "bias", "running_mean", "running_var"):
            unused[f"{bn}.{suffix}"] = torch.rand(c_out)
        unused[f"{bn}.num_batches_tracked"] = torch.tensor(7)
    state = OrderedDict()
    for key, value in ours.items():
        if key.startswith("fc1."):
            state.update((k, v) for k, v in unused.items() if k not in state)
        state[key] = value
    return state


def test_cnn_shapes_and_parameter_count():
    model = CNN().eval()
    shapes = []
    for i in range(1, 6):
        getattr(model, f"bn{i}").register_forward_hook(lambda m, inp, out: shapes.append(tuple(out.shape[1:])))
    out = model(torch.randn(3, 1, 1025, 94))
    assert out.shape == (3, 2)
    # Conv outputs block by block, as traced in the original (before pooling).
    assert shapes == [(16, 1026, 95), (32, 257, 25), (64, 86, 9), (128, 44, 5), (256, 23, 3)]
    assert sum(p.numel() for p in model.parameters()) == 637_182


def test_original_layout_has_the_original_keys():
    state = original_layout_state_dict(CNN())
    assert len(state) == 53
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    assert sum(v.numel() for k, v in state.items() if not k.endswith(buffers)) == 3_263_230
    assert list(state)[-4:] == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]


def test_original_cnn_state_dict_loads_and_gives_the_same_outputs(tmp_path: Path):
    source = randomised_cnn(1)
    path = tmp_path / "CNN_Ai-SPY.pth"
    torch.save(original_layout_state_dict(source), path)

    model, info = load_model(path)
    loaded_again, _ = load_model(path, "cnn")

    x = torch.randn(4, 1, 1025, 94)
    with torch.no_grad():
        expected = source(x)
        torch.testing.assert_close(model(x), expected, rtol=0, atol=0)
        torch.testing.assert_close(loaded_again(x), expected, rtol=0, atol=0)
        assert not torch.allclose(CNN().eval()(x), expected)  # a fresh model differs: the weights were used
    assert not model.training
    assert (info.architecture, info.stats_mean, info.stats_std) == ("cnn", ORIGINAL_MEAN, ORIGINAL_STD)
    assert (info.labels, info.sample_rate, info.clip_seconds) == (("ai", "human"), 16000, 3)


def test_original_state_dict_with_a_wrong_shape_is_refused(tmp_path: Path):
    state = original_layout_state_dict(CNN())
    state["fc1.weight"] = torch.randn(100, 2000)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad\.pth: weights do not fit the cnn architecture.*fc1\.weight"):
        load_model(tmp_path / "bad.pth")


def test_original_state_dict_with_a_missing_key_is_refused(tmp_path: Path):
    state = original_layout_state_dict(CNN())
    del state["bn3.running_var"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match="bn3.running_var"):
        load_model(tmp_path / "bad.pth")


def test_toolkit_checkpoint_round_trip(tmp_path: Path):
    torch.manual_seed(0)
    source = ViT(**SMALL_VIT).eval()
    info = ModelInfo("vit", SMALL_VIT, -60.5, 14.25, threshold=0.4, trained_on={"note": "unit test"})
    path = tmp_path / "vit.pth"
    save_checkpoint(path, source, info, epoch=3)

    payload = read_checkpoint(path)
    assert payload["epoch"] == 3 and payload["info"]["config"] == SMALL_VIT
    model, loaded = load_model(path, "vit")
    assert loaded == info
    x = torch.randn(2, 1, 1025, 94)
    with torch.no_grad():
        torch.testing.assert_close(model(x), source(x), rtol=0, atol=0)


def test_wrong_architecture_is_refused(tmp_path: Path):
    path = tmp_path / "cnn.pth"
    save_checkpoint(path, CNN(), ModelInfo("cnn"))
    with pytest.raises(CheckpointError, match="holds a CNN model, not a VIT"):
        load_model(path, "vit")
    original = tmp_path / "original.pth"
    torch.save(original_layout_state_dict(CNN()), original)
    with pytest.raises(CheckpointError, match="holds a CNN model, not a VIT"):
        load_model(original, "vit")


def test_checkpoint_for_another_input_contract_is_refused(tmp_path: Path):
    path = tmp_path / "cnn.pth"
    save_checkpoint(path, CNN(), ModelInfo("cnn", sample_rate=22050))
    with pytest.raises(CheckpointError, match="sample_rate is 22050"):
        load_model(path)
    save_checkpoint(path, CNN(), ModelInfo("cnn", labels=("human", "ai")))
    with pytest.raises(CheckpointError, match="labels"):
        load_model(path)
    save_checkpoint(path, CNN(), ModelInfo("cnn", input_shape=(1, 128, 94)))
    with pytest.raises(CheckpointError, match=r"input_shape is \(1, 128, 94\), this toolkit needs \(1, 1025, 94\)"):
        load_model(path)
    save_checkpoint(path, CNN(), ModelInfo("cnn", clip_seconds=4))
    with pytest.raises(CheckpointError, match="clip_seconds is 4, this toolkit needs 3"):
        load_model(path)


def test_checkpoint_whose_weights_do_not_fit_its_config_is_refused(tmp_path: Path):
    path = tmp_path / "vit.pth"
    save_checkpoint(path, ViT(**SMALL_VIT), ModelInfo("vit", {**SMALL_VIT, "embed_dim": 32}))
    with pytest.raises(CheckpointError, match="weights do not fit the vit architecture"):
        load_model(path)


class Payload:
    """Pickles to a call of os.system: loading it unsafely would run a shell command."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_not_run(tmp_path: Path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": CNN().state_dict(), "info": {"architecture": "cnn"}, "x": Payload(marker)}, path)

    with pytest.raises(CheckpointError, match=r"refused: .*system.*could run code"):
        load_model(path)
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(path)
    assert not marker.exists()

    # The payload is real: an unsafe load would have run it.
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    "content",
    [torch.zeros(3), 5, [1, 2, 3], "text", {"weights": torch.zeros(2)}, {"state_dict": {}}],
    ids=["tensor", "int", "list", "str", "other-dict", "no-info"],
)
def test_foreign_checkpoint_contents_are_refused(tmp_path: Path, content):
    path = tmp_path / "foreign.pth"
    torch.save(content, path)
    with pytest.raises(CheckpointError, match="not a checkpoint of this toolkit"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"not a zip file at all", b"PK\x03\x04broken zip", bytes(range(256))])
def test_unreadable_files_are_refused(tmp_path: Path, content: bytes):
    path = tmp_path / "broken.pth"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(path)


def test_missing_weights_file(tmp_path: Path):
    with pytest.raises(CheckpointError, match="weights file not found"):
        load_model(tmp_path / "nope.pth")


def test_build_model_rejects_unknown_architecture():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("rnn")


@pytest.fixture(scope="module")
def small_vit() -> ViT:
    torch.manual_seed(0)
    return ViT(**SMALL_VIT).eval()


def test_vit_output_shape(small_vit: ViT):
    with torch.no_grad():
        assert small_vit(torch.randn(3, 1, 1025, 94)).shape == (3, 2)


@pytest.mark.parametrize(
    "region",
    [(slice(None), slice(84, 94)), (slice(1024, 1025), slice(None)), (slice(1024, 1025), slice(93, 94))],
    ids=["last-10-frames", "last-frequency-bin", "last-bin-last-frame"],
)
def test_vit_sees_the_whole_clip(small_vit: ViT, region):
    torch.manual_seed(1)
    x = torch.randn(2, 1, 1025, 94)
    changed = x.clone()
    changed[:, :, region[0], region[1]] += 3.0
    with torch.no_grad():
        before, after = small_vit(x), small_vit(changed)
    assert (before - after).abs().max() > 1e-4


def test_cnn_sees_the_last_frames():
    model = randomised_cnn(2)
    x = torch.randn(1, 1, 1025, 94)
    changed = x.clone()
    changed[..., 84:] += 3.0
    with torch.no_grad():
        assert (model(x) - model(changed)).abs().max() > 1e-4


def test_shipped_weights_are_checked_against_their_recorded_checksum(tmp_path: Path):
    import hashlib

    from src.checkpoint import set_threshold

    path = tmp_path / "CNN.pth"
    save_checkpoint(path, CNN(), ModelInfo("cnn"))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  CNN.pth\n")
    load_model(path)  # recorded and matching: loads
    with pytest.raises(CheckpointError, match="copy the file elsewhere"):
        set_threshold(path, 0.7)  # shipped weights are not rewritten in place
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        load_model(path)
    (tmp_path / "SHA256SUMS").write_text(f"{digest}  other.pth\n")  # not listed: no check
    with pytest.raises(CheckpointError) as not_listed:
        load_model(path)
    assert "checksum" not in str(not_listed.value)


SHIPPED = REPO / "pretrained_weights"


def test_shipped_weights_match_their_recorded_checksums():
    recorded = recorded_checksums(SHIPPED)
    assert sorted(recorded) == ["CNN_Ai-SPY.pth", "ViT_Ai-SPY.pth"]
    for name, digest in recorded.items():
        assert hashlib.sha256((SHIPPED / name).read_bytes()).hexdigest() == digest, name


def test_corrupted_shipped_weights_are_refused_by_the_command(tmp_path: Path):
    # One byte flipped inside the weights (not the zip structure): only the checksum can tell.
    for name in ("CNN_Ai-SPY.pth", "SHA256SUMS"):
        shutil.copy(SHIPPED / name, tmp_path / name)
    weights = tmp_path / "CNN_Ai-SPY.pth"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    result = run_module("src.inference_CNN", REPO / "assets" / "sample_ai.mp3", "--model", weights, "--no-progress")
    assert result.returncode == 2 and result.stdout == "", describe(result)
    assert f"error: {weights}: checksum mismatch: {tmp_path / 'SHA256SUMS'} records" in result.stderr
    assert "Traceback" not in result.stderr
