"""What decides a host's float paths on the CPU, for a run's environment.json.

Two hosts with the same code, torch and seed train bitwise the same weights only when the
kernels they dispatch to are the same. Those are chosen at run time from the CPU's instruction
sets (ATen's vectorised kernels, oneDNN convolutions, MKL's sgemm, numpy's OpenBLAS), its vendor
(MKL picks other code paths on AMD than on Intel), the thread count and a few environment
variables that cap or pin them. :func:`host_fingerprint` records those, cheaply and without
raising, so that two run directories say whether their numbers can be expected to agree bitwise.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import re

__all__ = ["ISA_FLAGS", "host_fingerprint", "native_bf16"]

#: /proc/cpuinfo flags that select kernels in ATen, oneDNN, MKL or OpenBLAS.
ISA_FLAGS = ("sse4_1", "sse4_2", "avx", "fma", "f16c", "avx2", "avx512f", "avx512dq", "avx512bw", "avx512vl",
             "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")

#: Environment variables that change a dispatch or a thread count, by prefix or name.
_ENV_PREFIXES = ("ATEN_", "DNNL_", "ONEDNN_", "MKL_", "OPENBLAS_", "OMP_", "KMP_", "GOMP_", "TORCH_MKLDNN")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} off Linux)."""
    fields: dict[str, str] = {}
    with contextlib.suppress(OSError, UnicodeDecodeError), open("/proc/cpuinfo", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields


def native_bf16() -> bool | None:
    """Whether this CPU has bfloat16 arithmetic instructions (x86: avx512_bf16 or amx_bf16; Arm: bf16), from
    /proc/cpuinfo; None where that cannot be read (off Linux)."""
    cpu = _cpuinfo()
    flags = cpu.get("flags", cpu.get("Features"))
    if flags is None:
        return None
    return bool({"avx512_bf16", "amx_bf16", "bf16"} & set(flags.split()))


def _openblas_core() -> str:
    """The kernel family numpy's OpenBLAS (DYNAMIC_ARCH) picked on this CPU, e.g. 'Zen' or 'SkylakeX'."""
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/self/maps", encoding="utf-8") as handle:
            libs = {line.split()[-1] for line in handle if "openblas" in line.lower() and ".so" in line}
        for lib in sorted(libs):
            handle_ = ctypes.CDLL(lib, mode=os.RTLD_NOLOAD | os.RTLD_GLOBAL)
            for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename64_",
                           "openblas_get_corename"):
                function = getattr(handle_, symbol, None)
                if function is not None:
                    function.restype = ctypes.c_char_p
                    return (function() or b"").decode(errors="replace")
    return ""


def _numpy_blas() -> dict[str, str]:
    """numpy's BLAS name, version and build configuration, and the core it runs on."""
    info: dict[str, str] = {}
    with contextlib.suppress(Exception):
        import numpy

        info["numpy"] = numpy.__version__
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        info["numpy_blas"] = f"{blas.get('name', '')} {blas.get('version', '')}".strip()
        info["numpy_blas_config"] = str(blas.get("openblas configuration", ""))
        core = _openblas_core()
        if core:
            info["numpy_blas_core"] = core
    return info


def _torch_info() -> dict[str, str]:
    """torch's version, vectorised-kernel capability, BLAS, oneDNN and intra-op threads."""
    info: dict[str, str] = {}
    with contextlib.suppress(Exception):
        import torch

        info["torch"] = torch.__version__
        info["torch_cpu_capability"] = str(torch.backends.cpu.get_cpu_capability())
        info["torch_threads"] = str(torch.get_num_threads())
        config = torch.__config__.show()
        blas = re.search(r"BLAS_INFO=(\w+)", config)
        info["torch_blas"] = blas.group(1) if blas else ""
        mkl = re.search(r"Math Kernel Library Version ([^\s-]+)", config)
        info["torch_mkl"] = mkl.group(1) if mkl and torch.backends.mkl.is_available() else "no"
        dnnl = re.search(r"MKL-DNN (v[\w.]+)", config)
        usable = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
        info["torch_onednn"] = (dnnl.group(1) if dnnl else "yes") if usable else "no"
    return info


def host_fingerprint() -> dict[str, str]:
    """What decides this host's CPU float paths, as strings: CPU model and vendor, the kernel-selecting
    ISA flags present, torch's version, CPU capability, BLAS, oneDNN and threads, numpy's BLAS and its
    core, and the dispatch/thread environment variables that are set. Cheap; never raises."""
    cpu = _cpuinfo()
    flags = set(cpu.get("flags", "").split())
    fingerprint = {
        "cpu_model": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_vendor": cpu.get("vendor_id", ""),
        "cpu_family_model": f"{cpu.get('cpu family', '?')}/{cpu.get('model', '?')}" if cpu else "",
        "cpu_count": str(os.cpu_count() or ""),
        "isa_flags": " ".join(flag for flag in ISA_FLAGS if flag in flags),
        "machine": platform.machine(),
    }
    with contextlib.suppress(Exception):
        fingerprint.update(_torch_info())
        fingerprint.update(_numpy_blas())
        fingerprint.update({f"env:{key}": value for key, value in sorted(os.environ.items())
                            if key.startswith(_ENV_PREFIXES)})
    return fingerprint
