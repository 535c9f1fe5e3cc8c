"""One device choice for everything that runs the network: `--device auto|cpu|cuda|cuda:N`.

Every command that renders, trains, inverts, decodes or searches by photo takes the same flag and
resolves it here, so "auto" means the same everywhere (the first CUDA device when there is one)
and an impossible choice is one clear error before any work starts.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

CHOICES = "auto, cpu, cuda or cuda:N"
ENV = "ASSETS2VEC_DEVICE"
"""the app's device (set by `assets2vec app --device`); also the default of `Catalog.open`"""


class DeviceError(ValueError):
    """A device that does not exist here, or a spelling that is not one."""


def resolve_device(spec: str | torch.device | None = "auto") -> torch.device:
    """The torch device `spec` names here: "auto" (or None) is CUDA when available, else the CPU."""
    import torch  # here, not at the top: every command's parser uses this module, and --help should stay quick

    if isinstance(spec, torch.device):
        spec = str(spec)
    text = "auto" if spec is None else str(spec).strip().lower()
    if text == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "cuda" or (text.startswith("cuda:") and text[5:].isdigit()):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r}: no CUDA device is available here; use cpu (or auto)")
        index = int(text[5:]) if ":" in text else None
        if index is not None and index >= torch.cuda.device_count():
            raise DeviceError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
        return torch.device(text)
    raise DeviceError(f"device {spec!r}: expected {CHOICES}")


def default_device() -> torch.device:
    """What "no device given" means for the API and the app: `ASSETS2VEC_DEVICE`, else auto."""
    return resolve_device(os.environ.get(ENV) or "auto")


def add_device_argument(parser, what: str = "the network runs on") -> None:
    """The `--device` flag, spelt and documented alike on every command."""
    parser.add_argument("--device", default="auto", metavar="DEVICE",
                        help=f"where {what}: {CHOICES} (default: auto, the GPU when there is one)")


def model_device(model) -> "torch.device":
    """The device a network's weights are on (any torch module: nerfstudio's models and test doubles alike)."""
    import torch

    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def describe(device: torch.device) -> str:
    """"cpu" or "cuda:0 (NVIDIA H200)": for logs and reports."""
    import torch

    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def gpu_utilisation(device: torch.device) -> float | None:
    """The GPU's utilisation in percent over the driver's last sample period, or None (CPU, or no NVML)."""
    import torch

    if device.type != "cuda":
        return None
    try:
        return float(torch.cuda.utilization(device))
    except Exception:  # NVML missing or not permitted: the figure is a nicety, never a failure
        return None


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (for honest timings); nothing on the CPU."""
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)
