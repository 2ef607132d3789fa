"""Local transformers model folders from GGUF files that ship inside Python packages.

Some PyPI packages carry a quantized model as a ``.gguf`` data file. :func:`find_gguf` finds
that file in an installed distribution without importing it (``importlib.metadata`` lists its
files), and :func:`convert_gguf` dequantizes it with transformers (the ``gguf`` package reads
it) and saves model, tokenizer and chat template as a normal folder that the ``vllm`` and
``hf`` engines load::

    from genprm.gguf import convert_package_gguf
    convert_package_gguf("some-package", "models/some-model", dtype="bfloat16")

or, from the shell, ``genprm model gguf --package some-package --out models/some-model``.

The folder is written atomically (a temp sibling folder renamed over ``out``) and
deterministically: the same package, file and dtype give the same bytes, so DVC's hash of the
folder is stable. ``gguf_source.json`` in the folder names the package, its version, the file,
the file's sha256 and the dtype. Dequantization is exact in float32; bfloat16 rounds the
dequantized weights once more.
"""

from __future__ import annotations

import hashlib
import json
import logging
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["DTYPES", "GgufSourceError", "find_gguf", "convert_gguf", "convert_package_gguf"]

log = logging.getLogger(__name__)

DTYPES = ("bfloat16", "float16", "float32")
SOURCE_FILE = "gguf_source.json"


class GgufSourceError(LookupError):
    """No (single) GGUF file to convert: the package is missing, holds none, or holds several."""


def find_gguf(package: str, file: str | None = None) -> Path:
    """The path of the ``.gguf`` file (named ``file``, or the only one) in installed distribution ``package``.

    Raises :class:`GgufSourceError` naming the package and listing what it holds when it is not
    installed, holds no ``.gguf`` file, holds no file named ``file``, or holds several and
    ``file`` does not choose.
    """
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        raise GgufSourceError(f"package {package!r} is not installed (pip install {package})") from None
    files = sorted(str(f) for f in dist.files or [])
    ggufs = [f for f in files if f.endswith(".gguf")]
    if file is not None:
        chosen = [f for f in ggufs if f == file or Path(f).name == file]
        if not chosen:
            raise GgufSourceError(
                f"package {package!r} {dist.version} has no GGUF file {file!r}; its GGUF files: {ggufs or 'none'}"
            )
        ggufs = chosen
    if not ggufs:
        shown = ", ".join(files[:20]) + (f", ... ({len(files)} files)" if len(files) > 20 else "")
        raise GgufSourceError(f"package {package!r} {dist.version} holds no .gguf file; it holds: {shown or 'nothing'}")
    if len(ggufs) > 1:
        raise GgufSourceError(f"package {package!r} {dist.version} holds several GGUF files, choose one: {ggufs}")
    path = Path(dist.locate_file(ggufs[0]))
    if not path.is_file():
        raise GgufSourceError(f"package {package!r} {dist.version} lists {ggufs[0]} but {path} is missing")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def convert_gguf(gguf: str | Path, out: str | Path, dtype: str = "bfloat16", source: dict[str, Any] | None = None) -> Path:
    """Dequantize GGUF file ``gguf`` into a transformers folder ``out`` (model, tokenizer, chat template).

    ``dtype`` is one of :data:`DTYPES`. ``source`` (e.g. the package and its version) is written
    to ``gguf_source.json`` beside the file name, its sha256 and the dtype. ``out`` is replaced
    whole, atomically; on an error it is left as it was. Returns ``out``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from genprm.records import replace_dir, write_json

    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r}: choose one of {', '.join(DTYPES)}")
    gguf, out = Path(gguf), Path(out)
    if not gguf.is_file():
        raise GgufSourceError(f"GGUF file {gguf} does not exist")
    log.info("dequantizing %s to %s (%s)", gguf, out, dtype)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True), dtype=getattr(torch, dtype)
    )
    if tokenizer.chat_template is None:
        log.warning("%s has no chat template: chat requests cannot be rendered for this model", gguf.name)
    with replace_dir(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / SOURCE_FILE, {**(source or {}), "file": gguf.name, "sha256": _sha256(gguf), "dtype": dtype})
        tmp.chmod(0o755)  # temp folders and files are private; a model folder is for every reader
        for f in tmp.iterdir():
            f.chmod(0o644)
    n_params = sum(p.numel() for p in model.parameters())
    log.info("wrote %s: %s, %.1fM parameters, %s", out, type(model).__name__, n_params / 1e6, dtype)
    return out


def convert_package_gguf(package: str, out: str | Path, file: str | None = None, dtype: str = "bfloat16") -> Path:
    """:func:`find_gguf` in ``package`` then :func:`convert_gguf` into ``out``; returns ``out``."""
    gguf = find_gguf(package, file)
    source = {"package": package, "version": metadata.version(package)}
    return convert_gguf(gguf, out, dtype=dtype, source=source)
