"""One device choice for everything that runs the network: `--device auto|cpu|cuda|cuda:N`.

Every command that renders, trains, inverts, decodes or searches by photo takes the same flag and
resolves it here, so "auto" means the same everywhere (the first CUDA device when there is one)
and an impossible choice is one clear error before any work starts.
"""

from __future__ import annotations

import functools
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


BF16_ENV = "ASSETS2VEC_BF16"
"""1 or 0 forces bfloat16 autocast on or off; unset, `fast_bf16` decides from the hardware"""
# CPU instruction sets that compute in bfloat16 natively (x86 flag names as /proc/cpuinfo spells them).
# Without one of them oneDNN emulates bf16 and autocast is several times SLOWER than fp32.
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:  # not Linux: no flags to read, so no claim of native bf16
        return frozenset()
    return frozenset()


def fast_bf16(device: torch.device | str) -> bool:
    """Whether bfloat16 autocast speeds the network up on `device`.

    A GPU that supports bf16, or a CPU with native bf16 instructions, runs the MLPs faster in
    bf16; a CPU without them (AVX2 only) emulates it and runs them several times slower than in
    fp32, so there the networks run in fp32. The answer depends only on the hardware (and
    `ASSETS2VEC_BF16`), never on a timing, so one machine always computes the same way.
    """
    import torch

    forced = os.environ.get(BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    if forced:
        raise DeviceError(f"{BF16_ENV}={forced!r}: expected 1 (bf16 on), 0 (off) or unset (decided by the hardware)")
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(_cpu_flags() & set(NATIVE_BF16_FLAGS))
    return False


def autocast(device: torch.device | str, enabled: bool = True):
    """bfloat16 autocast on `device` where it is fast there (`fast_bf16`), else a no-op context."""
    import torch

    device = torch.device(device)
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled and fast_bf16(device))


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
