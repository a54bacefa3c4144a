"""mmengine checkpoints save, load and resume under torch >= 2.6 (paploss.mmdet.checkpoint)."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import pytest
import torch

pytest.importorskip("mmdet")
pytest.importorskip("sklearn")

from mmengine.config import Config  # noqa: E402
from mmengine.logging.history_buffer import HistoryBuffer  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint  # noqa: E402

import paploss.mmdet  # noqa: E402,F401  (installs the loader)
from paploss.mmdet import checkpoint  # noqa: E402
from paploss.mmdet._common import set_data_root  # noqa: E402
from paploss.proxy import generate_proxy_dataset  # noqa: E402

CONFIG = Path(__file__).resolve().parents[1] / "studies" / "configs" / "proxy_retinanet_paploss.py"
TORCH_2_6 = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 6)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("proxy") / "data"
    generate_proxy_dataset(root, seed=11, num_train=12, num_eval=4, num_val=4)
    return root


def _cfg(data_root: Path, work_dir: Path, max_epochs: int, **extra) -> Config:
    cfg = Config.fromfile(str(CONFIG))
    set_data_root(cfg, data_root)
    cfg.work_dir = str(work_dir)
    cfg.train_dataloader.batch_size = 4  # 3 iterations per epoch
    cfg.train_cfg.max_epochs = max_epochs
    cfg.train_cfg.val_interval = 100  # no evaluation: this is about checkpoints
    cfg.default_hooks.checkpoint = dict(type="CheckpointHook", interval=1)
    cfg.default_hooks.visualization = dict(type="DetVisualizationHook", draw=False)
    cfg.default_hooks.logger.interval = 1
    cfg.log_level = "WARNING"
    cfg.merge_from_dict(extra)
    return cfg


def _weights(runner: Runner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in runner.model.state_dict().items()}


def test_loader_is_installed_and_idempotent() -> None:
    assert CheckpointLoader._get_checkpoint_loader("/some/file.pth") is checkpoint.load_from_local
    assert checkpoint.install()
    assert checkpoint.install()
    assert CheckpointLoader._get_checkpoint_loader("/some/file.pth") is checkpoint.load_from_local
    # remote schemes keep mmengine's loaders
    assert CheckpointLoader._get_checkpoint_loader("torchvision://resnet50").__name__ == (
        "load_from_torchvision"
    )


def test_save_and_resume_training(data_root: Path, tmp_path: Path) -> None:
    straight = Runner.from_cfg(_cfg(data_root, tmp_path / "straight", max_epochs=2))
    straight.train()
    expected = _weights(straight)

    first = Runner.from_cfg(_cfg(data_root, tmp_path / "resumed", max_epochs=1))
    first.train()
    ckpt = tmp_path / "resumed" / "epoch_1.pth"
    assert ckpt.is_file()
    if TORCH_2_6:  # the problem being fixed: plain torch.load refuses mmengine's checkpoint
        with pytest.raises(pickle.UnpicklingError):
            torch.load(ckpt)

    loaded = _load_checkpoint(str(ckpt), map_location="cpu")
    assert loaded["meta"]["epoch"] == 1 and loaded["meta"]["iter"] == 3
    buffer = loaded["message_hub"]["log_scalars"]["train/loss_paploss"]
    assert isinstance(buffer, HistoryBuffer) and len(buffer.data[0]) == 3
    assert buffer.mean() == pytest.approx(float(buffer.data[0].mean()))

    second = Runner.from_cfg(
        _cfg(data_root, tmp_path / "resumed", max_epochs=2, resume=True, load_from=str(ckpt))
    )
    second.train()
    assert second.epoch == 2 and second.iter == 6
    history = second.message_hub.get_scalar("train/loss_paploss").data[0]
    assert len(history) == 6  # the resumed HistoryBuffer continued
    resumed = _weights(second)
    assert resumed.keys() == expected.keys()
    for key, value in expected.items():  # 2 epochs == 1 epoch + resume + 1 epoch
        torch.testing.assert_close(resumed[key], value, rtol=1e-4, atol=1e-5, msg=key)
    assert (tmp_path / "resumed" / "epoch_2.pth").is_file()


def test_load_from_without_resume(data_root: Path, tmp_path: Path) -> None:
    first = Runner.from_cfg(_cfg(data_root, tmp_path / "a", max_epochs=1))
    first.train()
    weights = _weights(first)
    runner = Runner.from_cfg(_cfg(data_root, tmp_path / "b", max_epochs=1))
    runner.load_checkpoint(str(tmp_path / "a" / "epoch_1.pth"))
    for key, value in _weights(runner).items():
        torch.testing.assert_close(value, weights[key], msg=key)


class _Reduce:
    """Pickles as ``fn(*args)``: stands in for a malicious checkpoint entry."""

    def __init__(self, fn, *args) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


@pytest.mark.parametrize(
    "payload",
    [
        _Reduce(getattr, HistoryBuffer, "_set_default_statistics"),  # private attribute
        _Reduce(getattr, Runner, "from_cfg"),  # another class
        _Reduce(print, "boom"),  # a global outside the allowlist
    ],
)
def test_loader_still_refuses_foreign_globals(payload: _Reduce, tmp_path: Path) -> None:
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": {"x": payload}}, path)
    with pytest.raises(pickle.UnpicklingError):
        checkpoint.load_from_local(str(path))


def test_restricted_getattr() -> None:
    assert checkpoint.history_buffer_attribute(HistoryBuffer, "mean") is HistoryBuffer.mean
    for obj, name in ((HistoryBuffer, "__init__"), (io, "open"), (HistoryBuffer, 3)):
        with pytest.raises(pickle.UnpicklingError):
            checkpoint.history_buffer_attribute(obj, name)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        checkpoint.load_from_local(str(tmp_path / "nope.pth"))
