"""The world's tokenizer: a small byte-level BPE trained locally and deterministically.

- every digit is a token of its own (numbers are read digit by digit);
- the GenPRM tags (``<analyze>`` ...) and ``Yes`` / ``No`` are single added tokens;
- ChatML-style turns (``<|im_start|>role\\n ... <|im_end|>``) with a chat template that marks
  assistant content with ``{% generation %}`` so trainers can build assistant-only masks.

:func:`train_tokenizer` returns a ``transformers.PreTrainedTokenizerFast``; ``save_pretrained``
writes the standard Hugging Face files, which ``AutoTokenizer`` and vLLM load unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable

from genprm.conversation import TAGS

__all__ = ["SPECIAL_TOKENS", "ADDED_TOKENS", "CHAT_TEMPLATE", "train_tokenizer"]

BOS, EOS, PAD = "<|endoftext|>", "<|im_end|>", "<|pad|>"
SPECIAL_TOKENS = [BOS, "<|im_start|>", EOS, PAD]
ADDED_TOKENS = [*TAGS, "Yes", "No"]

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 768):
    """Train the BPE on ``texts`` (deterministic for the same texts) and wrap it for transformers."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in ADDED_TOKENS])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        chat_template=CHAT_TEMPLATE,
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )
