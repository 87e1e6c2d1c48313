"""A real byte-level BPE tokenizer trained offline on a fixed built-in English corpus."""

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ["<pad>", "<s>", "<image>", "</s>"]
"""Ids 0..3: padding, begin of sequence, the Llava image placeholder, end of sequence.

The end id is not 2 on purpose: CLIP's text model treats eos_token_id == 2 as a legacy checkpoint and pools
at the largest token id instead of at the end token."""

VOCAB_SIZE = 1024

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}<image>{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ eos_token }}\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""`<s>`, then `<|role|>\\ncontent</s>\\n` per message (image parts become `<image>`); `<|assistant|>\\n` opens
a reply. Tokenize chat text with `add_special_tokens=False` (or `apply_chat_template(tokenize=True)`)."""

_WORDS = """
the a an of and or but not no yes is are was were be been being have has had do does did will would
can could should may might must shall to in on at by for with from into onto over under above below
left right top bottom middle center next near far behind front between inside outside up down out
i you he she it we they me him her us them my your his its our their this that these those what which
who whom whose where when why how all any both each few more most other some such only own same so
than too very just one two three four five six seven eight nine ten first second last new old good bad
great small large big little long short high low red green blue yellow black white gray orange purple
pink brown circle square triangle star cross shape shapes image picture photo color colour of the
question answer user assistant system there here then now today time year day way man woman child
world life hand part place case week company number group problem fact movie film book story food
service product place staff price quality love hate like liked loved enjoyed terrible awful wonderful
amazing boring excellent poor fine nice happy sad best worst really quite pretty rather well better
positive negative review text label class true false cat dog bird car house tree water sky sun
""".split()

_SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "A red circle is to the left of a blue square.",
    "What shape is at the top of the image? A green triangle.",
    "This movie was great and I really enjoyed it!",
    "The food was terrible and the service was slow.",
    "Question: where is the yellow star? Answer: below the purple cross.",
    "Hello, how are you today? I am fine, thank you.",
    "user: describe the picture. assistant: there are two shapes in the picture.",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 2024, and punctuation: . , ; : ! ? ' \" ( ) [ ] - _ / * + =",
]


def corpus() -> list[str]:
    """The fixed training corpus: the built-in sentences plus every word in plain and capitalised form."""
    return _SENTENCES + [" ".join(_WORDS), " ".join(word.capitalize() for word in _WORDS)] * 3


def tiny_tokenizer(add_eos: bool = False, model_max_length: int = 512) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE (vocab 1024, deterministic) and wrap it with bos/eos/pad and a chat template.

    Byte-level means every input string encodes without unknown tokens; `<image>` is a special token.
    Encoding adds `<s>` in front, and `</s>` at the end when `add_eos` (text encoders such as CLIP pool there).
    """
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(corpus(), trainer=trainer)
    end = " </s>" if add_eos else ""
    backend.post_processor = processors.TemplateProcessing(
        single=f"<s> $A{end}",
        pair=f"<s> $A{end} <s> $B{end}",
        special_tokens=[("<s>", backend.token_to_id("<s>")), ("</s>", backend.token_to_id("</s>"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"},
        chat_template=CHAT_TEMPLATE,
        model_max_length=model_max_length,
    )
