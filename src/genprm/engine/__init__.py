"""One generation interface over vLLM, transformers and OpenAI-compatible servers.

Every stage that writes text goes through a :class:`Generator` made by :func:`create_generator`,
so a run moves from a tiny CPU model to a large model on GPUs, or to a served teacher, by
configuration alone::

    from genprm.engine import GenerationRequest, create_generator

    gen = create_generator("vllm", model="path/to/model", dtype="float32")   # or "hf", "openai"
    outs = gen.generate([GenerationRequest(prompt="Step 1:", temperature=0.0, max_tokens=32)])
    yes, no = gen.score_continuations("... Is the step correct (Yes/No)?", [" Yes", " No"])

Importing this package is cheap: vLLM, torch and transformers load when a backend is created.
"""

from genprm.engine.base import Completion, EngineError, FinishReason, GenerationRequest, Generator
from genprm.engine.registry import backend_names, create_generator, register_backend, settings_model
from genprm.engine.settings import BackendSettings, HfSettings, OpenAISettings, VllmSettings

__all__ = [
    "Completion",
    "EngineError",
    "FinishReason",
    "GenerationRequest",
    "Generator",
    "create_generator",
    "backend_names",
    "register_backend",
    "settings_model",
    "BackendSettings",
    "HfSettings",
    "OpenAISettings",
    "VllmSettings",
]
