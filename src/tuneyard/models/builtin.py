"""Builtin base models, built locally from nothing: no download, no hub.

`build_tiny_lm` writes a 2-layer Llama-style causal LM with a byte-level
tokenizer (the 256 byte symbols, no merges) into a directory that
`AutoModelForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained` load
offline. It is what the tests, the demo and CPU-only installs train.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"
CHAT_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|end|>")

# Assistant turns sit inside {% generation %} so that apply_chat_template(...,
# return_assistant_tokens_mask=True) can mark exactly the tokens to learn,
# including the closing <|end|> (the model must learn to stop).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{% else %}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

# The files whose presence means a build finished (the rename is atomic, so a
# directory at the final path is complete unless someone else wrote it).
_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def is_complete(path: Path) -> bool:
    return all((path / name).is_file() for name in _REQUIRED)


def build_tokenizer(*, chat: bool = False):
    """A byte-level `PreTrainedTokenizerFast`: one token per byte plus specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {symbol: i for i, symbol in enumerate(alphabet)}
    # BPE without merges keeps every byte a token of its own.
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [BOS, EOS, PAD, *(CHAT_TOKENS if chat else ())]
    tok.add_special_tokens(specials)
    bos_id = tok.token_to_id(BOS)
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, bos_id)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        model_max_length=512,
        padding_side="right",
    )
    # The template is set for both variants: a completion model can still be
    # given chat data; the chat variant just has dedicated role tokens.
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_lm(path: Path, *, seed: int = 0, chat: bool = False) -> Path:
    """Write the tiny LM to `path` (atomically, once) and return `path`.

    The same seed always gives the same weights, so two machines building
    `builtin:tiny-lm` train the same base model.
    """
    path = Path(path)
    if is_complete(path):
        return path
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = build_tokenizer(chat=chat)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        # Larger than Llama's 0.02: with 64 dims behind a final RMSNorm, 0.02
        # embeddings cap the logits near ±1, so a LoRA adapter (which cannot
        # grow the frozen tied embeddings) could never get the loss far below
        # uniform. 0.1 starts near-uniform and leaves LoRA room to learn.
        initializer_range=0.1,
    )
    # Seed a private generator state so building never disturbs the caller's RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    stop = [tokenizer.eos_token_id]
    if chat:
        stop.append(tokenizer.convert_tokens_to_ids("<|end|>"))
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop if len(stop) > 1 else stop[0],
        pad_token_id=tokenizer.pad_token_id,
    )

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        try:
            os.rename(tmp, path)
        except OSError:
            # Another process finished first (or an incomplete dir is in the way).
            if not is_complete(path):
                shutil.rmtree(path, ignore_errors=True)
                os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path
