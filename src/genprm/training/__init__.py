"""GenPRM supervised fine-tuning (method part 5): config, loss mask, trainer.

- :mod:`genprm.training.config`   :class:`TrainingConfig` (the ``train`` section);
- :mod:`genprm.training.masking`  tokenization and the loss mask (what the GenPRM generates);
- :mod:`genprm.training.sft`      :func:`train_sft` through trl's ``SFTTrainer`` (LoRA or full).

Nothing heavy is imported here: torch, trl and peft load when training starts.
"""

from genprm.training.config import LoraSettings, TrainingConfig
from genprm.training.masking import tokenize_example, trained_text
from genprm.training.sft import build_dataset, loss_history, train_sft

__all__ = ["LoraSettings", "TrainingConfig", "tokenize_example", "trained_text", "build_dataset", "loss_history",
           "train_sft"]
